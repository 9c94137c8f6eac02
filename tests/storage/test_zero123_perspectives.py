"""reference-object's step 2 with `perspectives.generator: zero123` through `genfab run`: the built-in
stage loads Zero123++'s weights (tiny, random, real diffusers and transformers components) and its
custom pipeline from the model location (here the stand-in of tests/fakes/zero123plus-pipeline, whose
grid tells its views apart: not Zero123++'s computation), and writes the six views in Zero123++'s order
with what made them. Step 1 is the stand-in edit stage (a custom stage)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.helpers import ROOT, genfab_run
from tests.reference_object_job import job

STAND_IN_PIPELINE = ROOT / "tests" / "fakes" / "zero123plus-pipeline"
VIEWS = ("perspective_00_azimuth_030__elevation_20", "perspective_01_azimuth_090__elevation_minus10",
         "perspective_02_azimuth_150__elevation_20", "perspective_03_azimuth_210__elevation_minus10",
         "perspective_04_azimuth_270__elevation_20", "perspective_05_azimuth_330__elevation_minus10")


def test_zero123_makes_the_six_views_in_its_order_from_the_model_location(tmp_path: Path) -> None:
    pytest.importorskip("diffusers")
    models = tmp_path / "models"
    writer = subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                             "from scripts.tiny_models import save_zero123; save_zero123(Path(sys.argv[1]))",
                             str(models)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert writer.returncode == 0, writer.stderr
    code = models / "sudo-ai" / "zero123plus-pipeline"
    code.mkdir(parents=True)
    shutil.copy(STAND_IN_PIPELINE / "pipeline.py", code / "pipeline.py")
    doc = job(tmp_path, f"file://{tmp_path}/out", "http://127.0.0.1:9", "llama3.1", models,
              perspectives={"generator": "zero123", "zero123Steps": 3})
    doc["spec"]["customStages"] = [c for c in doc["spec"]["customStages"] if c["name"] != "perspectives"]
    doc["spec"]["onlyStages"] = ["white-background", "perspectives"]
    result = genfab_run(tmp_path, doc, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    folder = tmp_path / "out" / "mug" / "02_perspectives"
    assert sorted(p.stem for p in folder.glob("*.png")) == list(VIEWS)
    for index, view in enumerate(VIEWS):  # the stand-in paints view i's top rows 40 x i: the split kept the order
        pixels = cv2.imread(str(folder / f"{view}.png"))
        assert pixels.shape == (320, 320, 3) and int(np.median(pixels[0])) == 40 * index, view
    summary = json.loads((tmp_path / "out" / "mug" / "_genfab" / "summary.json").read_text())
    rows = {s["name"]: s for s in summary["stages"]}
    assert rows["perspectives"]["producedBy"] == {"zero123: sudo-ai/zero123plus-v1.2": 6}
    markers = [json.loads(m.read_text()) for m in (tmp_path / "out").rglob("_SUCCESS.json")]
    params = [m["extra"]["params"] for m in markers if m["extra"].get("params", {}).get("generator") == "zero123"]
    assert len(params) == 6 and {p["steps"] for p in params} == {3} and {p["guidanceScale"] for p in params} == {4.0}
    assert all(p["models"] == {"zero123": "sudo-ai/zero123plus-v1.2"} for p in params)

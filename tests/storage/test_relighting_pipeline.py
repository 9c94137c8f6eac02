"""DatasetJob `relighting` end to end through `genfab run`: seed 003's exact layout and metadata on
file:// and s3://, bad inputs recorded per sample, and the model-backed paths with tiny models."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from genfab.storage import Storage
from tests.helpers import ROOT, png_header
from tests.storage.test_local_runner import genfab_run, status, target  # noqa: F401  (fixture)
from tests.storage.test_storage import s3_endpoint  # noqa: F401  (fixture)

PORTRAITS = ROOT / "examples" / "data" / "portraits"
STAGE_FILES = {
    "data/stage_1": ("foreground.png", "background.png", "mask.png"),
    "data/stage_2": ("albedo.png",),
    "data/stage_3": ("degraded.png", "params.json"),
    "data/stage_3_5": ("composite.png",),
    "outputs": ("input.png", "albedo.png", "output.png", "foreground.png", "metadata.json"),
}


def job(output: str, inputs: Path, **relighting: Any) -> dict[str, Any]:
    return {"apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob", "metadata": {"name": "relight"},
            "spec": {"type": "relighting", "output": output, "continueOnError": True, "shardSize": 2,
                     "relighting": {"input": {"uri": f"file://{inputs}"}, **relighting}}}


def portraits(tmp_path: Path, names: tuple[str, ...] = ("astronaut", "astronaut_face")) -> Path:
    folder = tmp_path / "inputs"
    folder.mkdir()
    for name in names:
        shutil.copy(PORTRAITS / f"{name}.png", folder / f"{name}.png")
    return folder


def files(run: Storage) -> set[str]:
    return {o.key for o in run.list() if not o.key.startswith("_genfab/") and "/_markers/" not in o.key}


def expected(ids: list[str]) -> set[str]:
    return {f"{folder}/{i}_{name}" for folder, names in STAGE_FILES.items() for i in ids for name in names}


def test_relighting_run_produces_the_seed_layout_and_metadata(
        tmp_path: Path, target: tuple[str, dict[str, str], Storage]) -> None:  # noqa: F811
    uri, env, run = target
    folder = portraits(tmp_path)
    result = genfab_run(tmp_path, job(uri, folder, seed=7), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert status(run)["phase"] == "Succeeded"
    assert files(run) == expected(["astronaut", "astronaut_face"])
    assert run.read_bytes("outputs/astronaut_input.png") == (folder / "astronaut.png").read_bytes()
    meta = json.loads(run.read_bytes("outputs/astronaut_metadata.json"))
    assert meta["sampleId"] == "astronaut" and meta["source"].endswith("inputs/astronaut.png")
    assert meta["files"] == {k: f"astronaut_{k}.png" for k in ("input", "albedo", "output", "foreground")}
    assert set(meta["stages"]) == {"segment", "albedo", "degrade", "recombine"}
    assert meta["stages"]["segment"]["params"]["backend"] == "classical"
    assert meta["stages"]["albedo"]["params"]["method"] in ("retinex", "lab")
    assert 0.15 <= meta["stages"]["albedo"]["params"]["blend"] <= 0.25
    params = json.loads(run.read_bytes("data/stage_3/astronaut_params.json"))
    assert meta["lighting"] == {k: v for k, v in params.items() if k != "sampleId"}
    assert params["method"] in ("softShading", "ambientOnly")
    # composite == input outside the mask, bit for bit
    mask = np.asarray(Image.open(io.BytesIO(run.read_bytes("data/stage_1/astronaut_mask.png"))))
    out = np.asarray(Image.open(io.BytesIO(run.read_bytes("outputs/astronaut_output.png"))))
    src = np.asarray(Image.open(folder / "astronaut.png"))
    assert 0.1 < (mask > 0).mean() < 0.9
    assert np.array_equal(out[mask == 0], src[mask == 0])
    # determinism: the same job and sample give the same bytes, in another run from scratch
    if env:
        return  # once is enough (file://)
    again = genfab_run(tmp_path, job(f"file://{tmp_path}/again", folder, seed=7))
    assert again.returncode == 0, again.stdout
    other = Path(tmp_path / "again")
    for key in ("data/stage_3/astronaut_degraded.png", "outputs/astronaut_output.png",
                "data/stage_2/astronaut_albedo.png"):
        assert (other / key).read_bytes() == run.read_bytes(key), key


def test_bad_inputs_are_recorded_per_sample_and_the_rest_finish(tmp_path: Path) -> None:
    folder = portraits(tmp_path, ("astronaut",))
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    Image.new("L", (64, 64), 128).save(folder / "gray.png")
    (folder / "huge.png").write_bytes(png_header(12000, 9000))  # 108 MP: refused from its header
    Image.new("RGB", (96, 96), (40, 90, 160)).save(folder / "empty.png")  # nobody to segment
    result = genfab_run(tmp_path, job(f"file://{tmp_path}/out", folder))
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = tmp_path / "out"
    summary = json.loads((run_dir / "_genfab" / "summary.json").read_text())
    assert summary["phase"] == "PartiallySucceeded"
    assert summary["dropped"] == 4
    rows = list(csv.DictReader((run_dir / "_genfab" / "dropped_samples.csv").read_text().splitlines()))
    reasons = {r["sample_id"]: r["reason"] for r in rows if r["stage"] == "segment"}
    assert reasons == {"broken": "Unreadable", "gray": "Grayscale", "huge": "TooLarge", "empty": "EmptyMask"}
    assert (run_dir / "outputs" / "astronaut_output.png").is_file()
    seg = {s["name"]: s for s in summary["stages"]}["segment"]
    assert (seg["succeeded"], seg["failed"]) == (1, 4)


def test_large_inputs_run_at_the_working_size_and_say_so(tmp_path: Path) -> None:
    folder = portraits(tmp_path, ("astronaut",))
    width, height = Image.open(folder / "astronaut.png").size
    doc = job(f"file://{tmp_path}/out", folder, input={"uri": f"file://{folder}", "maxSide": 200})
    result = genfab_run(tmp_path, doc)
    assert result.returncode == 0, result.stdout + result.stderr
    out = tmp_path / "out"
    small = (200, round(height * 200 / width)) if width >= height else (round(width * 200 / height), 200)
    for name in ("data/stage_1/astronaut_mask.png", "data/stage_3_5/astronaut_composite.png",
                 "outputs/astronaut_input.png", "outputs/astronaut_output.png"):
        assert Image.open(out / name).size == small, name
    params = json.loads((out / "outputs/astronaut_metadata.json").read_text())["stages"]["segment"]["params"]
    assert params["inputSize"] == [width, height] and params["workingSize"] == list(small)


def test_model_backed_paths_load_tiny_models_from_the_model_location(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from scripts.tiny_models import save_tiny_blip, save_tiny_depth_anything, save_tiny_sam3

    models = tmp_path / "models"
    save_tiny_sam3(models)
    save_tiny_depth_anything(models)
    save_tiny_blip(models)
    folder = portraits(tmp_path)
    doc = job(f"file://{tmp_path}/out", folder,
              segmentation={"backends": ["sam3", "classical"], "boxThreshold": 0.0},
              degradation={"weights": {"softShading": 1.0, "hardShadow": 0.0, "specular": 0.0, "ambientOnly": 0.0},
                           "softShading": {"normals": "depth-anything"}},
              captioning={"enabled": True})
    doc["spec"]["models"] = {"uri": f"file://{models}"}
    result = genfab_run(tmp_path, doc)
    assert result.returncode == 0, result.stdout + result.stderr
    run = tmp_path / "out"
    assert {s["name"]: s["phase"] for s in json.loads((run / "_genfab" / "summary.json").read_text())["stages"]} == {
        n: "Succeeded" for n in ("segment", "albedo", "degrade", "recombine", "caption", "organize")}
    meta = json.loads((run / "outputs" / "astronaut_metadata.json").read_text())
    assert meta["stages"]["segment"]["params"]["backend"] == "sam3"
    assert meta["lighting"]["normals"] == "depth-anything:depth-anything/Depth-Anything-V2-Small-hf"
    assert meta["caption"] == (run / "data" / "stage_4" / "astronaut_caption.txt").read_text().strip()
    assert meta["caption"]  # random weights still generate tokens

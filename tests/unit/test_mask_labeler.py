"""`genfab mask IMAGE`: reference-object's `inputMask` from one image, as a user runs it (a subprocess):
SAM2 from the model location (here the tiny SAM2 on sam2's CPU stand-in, tests/fakes/packages: the
labeler's own loading and prompting code, not SAM2's computation) and GrabCut, named, with no weights;
each records what made the mask, and bad input is one line with nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.helpers import ROOT, disk_image

FAKES = ROOT / "tests" / "fakes" / "packages"


def _mask(tmp_path: Path, *args: str, models: str | None = None,
          first: tuple[Path, ...] = ()) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GENFAB_MODELS"}
    env["PYTHONPATH"] = os.pathsep.join([*map(str, first), str(FAKES), str(ROOT / "operator"), str(ROOT / "stages"),
                                         str(ROOT)])
    if models:
        env["GENFAB_MODELS"] = models
    return subprocess.run([sys.executable, "-m", "genfab.cli.main", "mask", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def test_grabcut_needs_no_weights_and_says_so(tmp_path: Path) -> None:
    image, truth = disk_image(tmp_path)
    result = _mask(tmp_path, str(image), "--point", "100,80", "--method", "grabcut")
    assert result.returncode == 0, result.stderr
    mask = cv2.imread(str(tmp_path / "mug_mask.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == truth.shape and set(np.unique(mask)) <= {0, 255}
    iou = ((mask > 0) & truth).sum() / ((mask > 0) | truth).sum()
    assert iou > 0.95, iou
    record = json.loads((tmp_path / "mug_mask.png.json").read_text())
    assert record == json.loads(result.stdout)
    assert record["method"] == "grabcut" and record["model"] is None and record["score"] is None
    assert record["prompts"] == {"points": [[100.0, 80.0]], "negative": [], "box": None}


def test_sam2_from_the_model_location_records_its_model_and_score(tmp_path: Path) -> None:
    pytest.importorskip("hydra")
    image, truth = disk_image(tmp_path)
    writer = subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                             "from scripts.tiny_models import save_tiny_sam2; save_tiny_sam2(Path(sys.argv[1]))",
                             str(tmp_path / "models")], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(FAKES), str(ROOT / "stages"),
                                                                              str(ROOT / "operator"), str(ROOT)])})
    assert writer.returncode == 0, writer.stderr
    out = tmp_path / "masks" / "mug.png"
    result = _mask(tmp_path, str(image), "--point", "100,80", "--negative", "10,10", "--box", "50,30,150,130",
                   "--models", f"file://{tmp_path / 'models'}", "-o", str(out))
    assert result.returncode == 0, result.stderr
    record = json.loads(out.with_name("mug.png.json").read_text())
    assert record["method"] == "sam2" and record["model"] == "facebook/sam2.1-hiera-large"
    assert isinstance(record["score"], float) and 0 < record["foregroundRatio"] < 1
    assert record["prompts"] == {"points": [[100.0, 80.0]], "negative": [[10.0, 10.0]],
                                 "box": [50.0, 30.0, 150.0, 130.0]}
    assert cv2.imread(str(out), cv2.IMREAD_UNCHANGED).shape == truth.shape


def test_sam2_without_pytorch_is_one_line_naming_grabcut(tmp_path: Path) -> None:
    """A Python where `import torch` fails as it does without the `segment` extra (a package of that name
    ahead on the path that says so)."""
    hider = tmp_path / "hide" / "torch"
    hider.mkdir(parents=True)
    (hider / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    image, _ = disk_image(tmp_path)
    result = _mask(tmp_path, str(image), "--point", "100,80", models=f"file://{tmp_path}", first=(hider.parent,))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "genfab mask: --method sam2 needs torch, which this Python lacks: pip install 'genfab[segment]', or name the "
        "classical method with --method grabcut (no weights, no PyTorch)"]
    assert not list(tmp_path.glob("*_mask.png"))


@pytest.mark.parametrize(("args", "code", "says"), [
    (("--point", "100,80"), 2, "--method sam2 needs SAM2's weights from a model location"),
    (("--point", "500,80", "--method", "grabcut"), 1, "--point 500,80 is outside the 200x160 image"),
    (("--box", "1,2,3", "--method", "grabcut"), 1, "--box '1,2,3': expected X0,Y0,X1,Y1"),
    (("--box", "150,30,50,130", "--method", "grabcut"), 1, "is not a box inside the 200x160 image"),
    (("--method", "grabcut"), 1, "give the object: at least one --point X,Y or a --box"),
], ids=["sam2-without-weights", "point-outside", "box-not-four-numbers", "box-inverted", "no-prompt"])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, args: tuple[str, ...], code: int, says: str) -> None:
    image, _ = disk_image(tmp_path)
    result = _mask(tmp_path, str(image), *args)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and says in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mug.png"]

"""vistadream through `genfab run` (the real runtime, one subprocess per shard) with tiny random
FluxFill and Depth Pro models from scripts/tiny_models.py, on the CPU: the outpaint and depth stages
and the frames they hand on. The Gaussian stages need gsplat's CUDA kernels (tests/gpu)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("diffusers")
pytest.importorskip("torch")

from scripts.tiny_models import save_vistadream_models

from genfab.stages.common.imaging import decode_png
from genfab.stages.scene.frames import frames_from_npz
from tests.helpers import PORTRAIT, genfab_run


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield save_vistadream_models(tmp_path_factory.mktemp("models"))


def scenejob(out: Path, models: Path, stage: str, only: list[str], **vistadream: Any) -> dict[str, Any]:
    return {"apiVersion": "genfab.dev/v1alpha1", "kind": "SceneJob", "metadata": {"name": "vd-tiny"},
            "spec": {"pipeline": "vistadream", "input": {"image": f"file://{PORTRAIT}"}, "output": f"file://{out}",
                     "models": {"uri": f"file://{models}"}, "onlyStages": only,
                     "vistadream": {"stage": stage, "maxResolution": 64, "expansionPercent": 0.5, "fluxSteps": 2,
                                    **vistadream}}}


def test_outpaint_then_depth_hand_on_the_seeds_two_frames(tmp_path: Path, tiny_models: Path) -> None:
    out = tmp_path / "out"
    result = genfab_run(tmp_path, scenejob(out, tiny_models, "outpaint", ["outpaint", "depth"]))
    assert result.returncode == 0, result.stdout + result.stderr
    sample = out / "astronaut"
    canvas = json.loads((sample / "outpaint/canvas.json").read_text())
    fitted = decode_png((sample / "outpaint/input.png").read_bytes())
    assert fitted.shape == (64, 64, 3) and (canvas["input_width"], canvas["input_height"]) == (64, 64)
    assert (canvas["width"], canvas["height"]) == (96, 96) and (canvas["left"], canvas["top"]) == (16, 16)
    mask = decode_png((sample / "outpaint/mask.png").read_bytes()) > 127
    painted = decode_png((sample / "outpaint/outpaint.png").read_bytes())
    np.testing.assert_array_equal(painted[16:80, 16:80], fitted)  # the input survives the fill exactly
    assert mask.sum() == 96 * 96 - 64 * 64
    frames = {f.name: f for f in frames_from_npz((sample / "depth/frames.npz").read_bytes())}
    assert sorted(frames) == ["input", "outpaint"]
    inner, outer = frames["input"], frames["outpaint"]
    assert inner.inpaint.all() and (outer.inpaint == mask).all()
    assert not (outer.inpaint_wo_edge & ~outer.inpaint).any()  # new splats only where painted
    np.testing.assert_array_equal(inner.dpt, outer.dpt[16:80, 16:80])  # one depth pass, cropped
    assert inner.intrinsic[0, 2] == pytest.approx(32.0) and outer.intrinsic[0, 2] == pytest.approx(48.0)
    assert inner.intrinsic[0, 0] == outer.intrinsic[0, 0]
    info = json.loads((sample / "depth/depth.json").read_text())
    assert info["fovSource"] == "model" and info["frames"] == ["input", "outpaint"]
    assert info["dptConfMask"] == "valid depth (the backend has no confidence)"  # said, not implied
    summary = {s["name"]: s for s in json.loads((out / "_genfab/summary.json").read_text())["stages"]}
    assert summary["depth"]["producedBy"] == {"depth-pro:apple/DepthPro-hf": 1}  # which model made the depth
    markers = sorted(p.relative_to(out).as_posix() for p in out.rglob("_SUCCESS.json"))
    assert markers == ["astronaut/depth/_SUCCESS.json", "astronaut/outpaint/_SUCCESS.json"]
    params = json.loads((out / "astronaut/outpaint/_SUCCESS.json").read_text())["extra"]["params"]
    assert params["fluxRuntime"] == []  # compile (the default) applies on CUDA only: nothing on the CPU


def test_no_outpaint_builds_the_input_frame_alone(tmp_path: Path, tiny_models: Path) -> None:
    out = tmp_path / "out"
    result = genfab_run(tmp_path, scenejob(out, tiny_models, "no-outpaint", ["depth"], depthBackend="depth-pro"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (out / "astronaut" / "outpaint").exists()
    (frame,) = frames_from_npz((out / "astronaut/depth/frames.npz").read_bytes())
    assert frame.name == "input" and frame.rgb.shape == (64, 64, 3) and frame.inpaint.all()
    np.testing.assert_array_equal(frame.cam_T_world, np.eye(4))


def test_a_missing_inpainter_fails_the_stage_naming_its_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = genfab_run(tmp_path, scenejob(out, tmp_path / "empty", "outpaint", ["outpaint"]))
    assert result.returncode == 1
    log = (out / "_genfab/logs/outpaint/shard-00000.log").read_text()
    assert "black-forest-labs/FLUX.1-Fill-dev" in log and "hf download" in log

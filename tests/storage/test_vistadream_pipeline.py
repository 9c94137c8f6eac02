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

from genfab.stages.common.imaging import decode_png
from genfab.stages.scene.frames import frames_from_npz
from genfab.stages.scene.geometry import depth_edges_mask
from tests import made_once
from tests.helpers import PORTRAIT, ROOT, genfab_run


@pytest.fixture(scope="module")
def tiny_models() -> Iterator[Path]:
    yield made_once.tiny_models("save_vistadream_models")  # machine-wide, read-only: copy_of before writing


def scenejob(out: Path, models: Path, stage: str, only: list[str], **vistadream: Any) -> dict[str, Any]:
    return {"apiVersion": "genfab.dev/v1alpha1", "kind": "SceneJob", "metadata": {"name": "vd-tiny"},
            "spec": {"pipeline": "vistadream", "input": {"image": f"file://{PORTRAIT}"}, "output": f"file://{out}",
                     "models": {"uri": f"file://{models}"}, "onlyStages": only,
                     "vistadream": {"stage": stage, "maxResolution": 64, "expansionPercent": 0.5, "fluxSteps": 2,
                                    "depthBackend": "depth-pro",
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
    page = (out / "_genfab/report/index.html").read_text()  # the run's report: input, outpaint, depth
    row = page.split('data-sample="astronaut"', 1)[1].split("</tr>", 1)[0]
    assert row.count("<img ") == 3 and row.count("not made") == 4, row


def test_no_outpaint_builds_the_input_frame_alone(tmp_path: Path, tiny_models: Path) -> None:
    out = tmp_path / "out"
    result = genfab_run(tmp_path, scenejob(out, tiny_models, "no-outpaint", ["depth"], depthBackend="depth-pro"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (out / "astronaut" / "outpaint").exists()
    (frame,) = frames_from_npz((out / "astronaut/depth/frames.npz").read_bytes())
    assert frame.name == "input" and frame.rgb.shape == (64, 64, 3) and frame.inpaint.all()
    np.testing.assert_array_equal(frame.cam_T_world, np.eye(4))


RESEARCH = ROOT / "tests" / "fakes" / "research"


def save_moge_stand_in(models: Path, **config: float) -> None:
    """A MoGe checkpoint in the hub repository's layout (`model.pt`) for the stand-in of
    tests/fakes/research/moge (its config sets the stand-in's field of view and mask threshold)."""
    import torch

    folder = models / "Ruicheng" / "moge-vitl"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"model_config": config, "model": {}}, folder / "model.pt")


def test_moge_gives_its_depth_intrinsics_and_mask_through_the_adapter(tmp_path: Path, tiny_models: Path) -> None:
    """`depthBackend: moge` through `genfab run` on the MoGe stand-in (MoGe's import path and outputs;
    depth 1 + 2 x luminance, a 50 degree view, mask where luminance <= 0.8): the adapter scales MoGe's
    normalised K to pixels, keeps its dense depth and hands its mask on as `dpt_conf_mask` (the input frame's
splats, as the lab's, ignore it); depth.json,
    the marker and the summary say MoGe made it."""
    models = made_once.copy_of(tiny_models, tmp_path / "models")  # the stand-in's weights join them
    save_moge_stand_in(models, fov_x=50.0, mask_threshold=0.8)
    out = tmp_path / "out"
    doc = scenejob(out, models, "no-outpaint", ["depth"], depthBackend="moge", mogeImage="lab/genfab-moge:test")
    result = genfab_run(tmp_path, doc, extra_paths=(RESEARCH,))
    assert result.returncode == 0, result.stdout + result.stderr
    (frame,) = frames_from_npz((out / "astronaut/depth/frames.npz").read_bytes())
    luminance = (frame.rgb.astype(np.float64) / 255.0) @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(frame.dpt, 1.0 + 2.0 * luminance, rtol=1e-4)
    focal = 32.0 / np.tan(np.radians(25.0))
    np.testing.assert_allclose(frame.intrinsic, [[focal, 0, 32], [0, focal, 32], [0, 0, 1]], rtol=1e-5)
    confident = luminance <= 0.8
    assert 0 < confident.sum() < confident.size  # the mask is MoGe's, not "depth > 0"
    np.testing.assert_array_equal(frame.dpt_conf_mask, confident)
    # the input frame adds a splat on every pixel off a depth edge whatever MoGe's confidence, as the lab's
    # _initialize does (its confidence is the frame's dpt_conf_mask alone)
    np.testing.assert_array_equal(frame.inpaint_wo_edge, ~depth_edges_mask(frame.dpt))
    assert (frame.inpaint_wo_edge & ~confident).any()
    info = json.loads((out / "astronaut/depth/depth.json").read_text())
    assert (info["backend"], info["model"], info["dptConfMask"]) == ("moge", "Ruicheng/moge-vitl", "model")
    assert info["fovDegrees"] == pytest.approx(50.0) and info["fovSource"] == "model"
    summary = {s["name"]: s for s in json.loads((out / "_genfab/summary.json").read_text())["stages"]}
    assert summary["depth"]["producedBy"] == {"moge:Ruicheng/moge-vitl": 1}


def test_moge_without_its_code_fails_naming_the_image_to_set(tmp_path: Path, tiny_models: Path) -> None:
    """The MoGe image named but the stage running where `moge` is not installed: one line saying so."""
    models = made_once.copy_of(tiny_models, tmp_path / "models")
    save_moge_stand_in(models)
    doc = scenejob(tmp_path / "out", models, "no-outpaint", ["depth"], depthBackend="moge",
                   mogeImage="lab/genfab-moge:test")
    result = genfab_run(tmp_path, doc)
    assert result.returncode != 0
    assert ("the moge adapter needs the `moge` package, which this stage image does not have"
            in result.stdout + result.stderr)
    assert "set vistadream.mogeImage to an image built from images/moge/Dockerfile" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_a_missing_inpainter_is_refused_before_anything_starts_naming_its_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (tmp_path / "empty").mkdir()
    result = genfab_run(tmp_path, scenejob(out, tmp_path / "empty", "outpaint", ["outpaint"]))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "genfab run: model black-forest-labs/FLUX.1-Fill-dev (stage outpaint of pipeline vistadream) is not in the "
        f"model location file://{tmp_path / 'empty'}: put each in a folder named by its id there (`hf download ID "
        "--local-dir DIR` fetches one on a machine with network; python scripts/tiny_models.py writes tiny random "
        "stand-ins to ./genfab-models), or point spec.models at a location that has it")
    assert not (out / "_genfab/logs").exists()  # nothing started

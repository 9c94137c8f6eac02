"""GPU tier: genfab's VGGT adapter on VGGT's own code (facebookresearch/vggt at the commit
images/vggt/Dockerfile pins, fetched by `scripts/gpu_tier.py --prepare-research`, group `vggt`), not the
stand-in of tests/fakes/research. VGGT-1B at production size with random bf16 weights (no weights can be
downloaded): this checks the interface, the conventions (OpenCV world-to-camera cameras, points in the
first camera's frame, pixel-index intrinsics), the shapes and where the outputs land, and prints time
and peak memory; the geometry itself means nothing."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("needs CUDA", allow_module_level=True)
pytest.importorskip("vggt.models.vggt")

from scripts.tiny_models import save_random_vggt, save_worldexplorer_models  # noqa: E402

from genfab.stages.common.imaging import encode_png  # noqa: E402
from genfab.stages.gaussians.procedural import generate  # noqa: E402
from genfab.stages.models.placement import Placement  # noqa: E402
from tests.helpers import PORTRAIT, ROOT, genfab_run, own_pixel_error  # noqa: E402

PINNED = re.search(r"^ARG VGGT_COMMIT=([0-9a-f]{40})$", (ROOT / "images/vggt/Dockerfile").read_text(), re.M)
SOURCE = f"vggt@{PINNED.group(1)[:12]}" if PINNED else "vggt (unpinned)"
"""What producedBy must say: VGGT at the image's commit (scripts/gpu_tier.py writes pip's metadata)."""


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    save_random_vggt(root)
    return root


def test_vggt_adapter_on_vggts_own_code(tmp_path: Path, models: Path) -> None:
    """Twelve 320 x 240 views of a ray-cast procedural scene with known cameras through the adapter: the
    points, confidences, colours and cameras come back in the contract's shapes (VGGT's crop mode:
    518 wide, 392 high); each frame's points reproject through its own returned camera and intrinsics
    onto the pixels they came from within 0.05 px; each frame's colours are that input frame's pixels
    (order kept); `to_scene` keeps the points above the confidence quantile, in the scene's frame."""
    from vggt.models.vggt import VGGT

    from genfab.stages.worldexplorer.vggt_adapter import Vggt, degenerate_frames, to_scene

    vggt = Vggt(models / "facebook/VGGT-1B", Placement(torch.device("cuda"), torch.bfloat16, "none"))
    assert type(vggt.model) is VGGT  # VGGT's own class, loaded by its own from_pretrained
    parameters = sum(p.numel() for p in vggt.model.parameters())
    assert parameters > 1.0e9, parameters  # VGGT-1B, not a stand-in
    assert vggt.source == SOURCE
    scene = generate(seed=3, n_views=12, width=320, height=240, device="cuda")
    paths = []
    for cam in scene.cameras:
        paths.append(tmp_path / f"{cam.name}.png")
        paths[-1].write_bytes(encode_png(np.round(scene.images[cam.name] * 255).astype(np.uint8)))
    vggt(paths[:2])  # warm-up (kernel selection)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    geometry = vggt(paths)
    torch.cuda.synchronize()
    seconds, peak = time.perf_counter() - started, torch.cuda.max_memory_allocated() / 2**30

    frames, height, width = 12, 392, 518
    assert geometry.points.shape == (frames, height, width, 3)
    assert geometry.confidence.shape == (frames, height, width) and (geometry.confidence >= 1).all()  # expp1
    assert geometry.colors.shape == (frames, height, width, 3)
    assert geometry.cam_T_world.shape == (frames, 4, 4) and geometry.K.shape == (frames, 3, 3)
    rotations = geometry.cam_T_world[:, :3, :3]
    np.testing.assert_allclose(rotations @ rotations.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (frames, 3, 3)),
                               atol=1e-4)
    np.testing.assert_array_equal(geometry.cam_T_world[:, 3], np.broadcast_to([0, 0, 0, 1], (frames, 4)))
    np.testing.assert_allclose(geometry.K[:, :2, 2], np.broadcast_to([width / 2, height / 2], (frames, 2)))
    assert not degenerate_frames(geometry.K).any(), geometry.K[:, [0, 1], [0, 1]]
    error = own_pixel_error(geometry.points, geometry.cam_T_world, geometry.K)
    assert error.max() < 0.05, f"points off their own pixels by up to {error.max():.3f} px"

    import cv2

    for s, cam in enumerate(scene.cameras):  # frame s is input s, resized as VGGT's crop mode does (no crop at 4:3)
        resized = cv2.resize(scene.images[cam.name], (width, height), interpolation=cv2.INTER_CUBIC)
        differences = [np.abs(geometry.colors[t] - resized).mean() for t in range(frames)]
        assert int(np.argmin(differences)) == s and differences[s] < 0.03, (s, differences[s])

    known = np.stack([cam.w2c for cam in scene.cameras])
    points, colors = to_scene(geometry, known, 0.2)
    assert abs(len(points) / geometry.confidence.size - 0.8) < 0.01 and np.isfinite(points).all()
    assert colors.shape == points.shape
    report = {"frames": frames, "size": [width, height], "parameters": parameters, "seconds": round(seconds, 3),
              "peakGiB": round(peak, 2), "ownPixelErrorPx": float(error.max()), "source": vggt.source}
    print(f"\nVGGT-1B through the adapter (random weights): {json.dumps(report)}")


def test_the_expansion_takes_its_geometry_from_vggt(tmp_path: Path, models: Path) -> None:
    """`genfab run` of worldexplorer's scaffold and expansion (tiny FLUX, FluxFill, Depth Pro) with
    `expansion.geometry: vggt` and `vggt.image` set: the expansion stage hands its frames to VGGT's own
    code, img2trajvid/'s points are VGGT's moved into the scene, and the summary's producedBy and the
    sample's params name VGGT at its commit."""
    from genfab.stages.gaussians.loaders import load_scene

    save_worldexplorer_models(models)
    root = tmp_path / "curated"
    root.mkdir()
    (root / "s0.png").write_bytes(PORTRAIT.read_bytes())
    (root / "metadata.json").write_text(json.dumps({"samples": [
        {"index": 0, "prompt": "a quiet reading room", "stylized": {"path": "s0.png"}}]}))
    frames = 8
    doc = {"apiVersion": "genfab.dev/v1alpha1", "kind": "SceneJob", "metadata": {"name": "we-vggt"},
           "spec": {"pipeline": "worldexplorer", "input": {"manifest": (root / "metadata.json").as_uri()},
                    "output": (tmp_path / "out").as_uri(), "models": {"uri": models.as_uri()},
                    "variants": ["stylized"], "onlyStages": ["scaffold", "expansion"],
                    "worldexplorer": {
                        "scaffold": {"method": "scaffold_gen", "selection": "fast", "resolution": 64,
                                     "fluxSteps": 2, "fillSteps": 2, "fluxRuntime": {"compile": "off"}},
                        "expansion": {"method": "walk", "geometry": "vggt", "numFrames": frames,
                                      "iterations": 20, "fillMinHoleRatio": 0.01},
                        "vggt": {"image": "lab/genfab-vggt:test"}}}}
    result = genfab_run(tmp_path, doc, timeout=540)
    assert result.returncode == 0, result.stdout + result.stderr
    out = tmp_path / "out"
    scenes = out / "stylized" / "index_0000" / "scenes"
    info = json.loads((scenes / "expansion.json").read_text())
    assert info["geometry"] == "vggt" and info["frames"]["points"] > 0 and info["vggtDegenerateFrames"] == 0
    scene = load_scene(scenes / "img2trajvid")
    assert len(scene.cameras) == 8 + frames and scene.points is not None
    assert len(scene.points) == info["frames"]["points"]
    summary = {s["name"]: s for s in json.loads((out / "_genfab" / "summary.json").read_text())["stages"]}
    assert summary["expansion"]["producedBy"] == {f"expansion: walk (genfab), geometry: {SOURCE}": 1}
    markers = [json.loads(m.read_text()) for m in (out / "stylized" / "index_0000").rglob("_SUCCESS.json")]
    params = next(m["extra"]["params"] for m in markers if m["extra"].get("params", {}).get("geometry") == "vggt")
    assert params["vggtCode"] == SOURCE  # each sample's own record of the code that made its points
    print(f"\nexpansion with VGGT's geometry: {json.dumps(info['frames'])}, {json.dumps(info['timings'])}")

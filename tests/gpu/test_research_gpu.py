"""GPU tier: genfab's research adapters on the real upstream code, not the stand-ins of
tests/fakes/research: MoGe (microsoft/MoGe with the utils3d commit it pins) and SEVA
(Stability-AI/stable-virtual-camera), at the commits images/moge and images/seva pin, fetched by
`scripts/gpu_tier.py --prepare-research` (group `research`). Production-size architectures with random
weights (no weights can be downloaded): this checks the interfaces, conventions, shapes and where the
outputs land, and prints time and peak memory; the pictures and depths mean nothing."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("needs CUDA", allow_module_level=True)

from genfab.stages.common.imaging import decode_png  # noqa: E402
from genfab.stages.models.placement import Placement  # noqa: E402
from genfab.stages.scene.frames import input_only_frames  # noqa: E402
from genfab.stages.scene.geometry import intrinsics_from_fov, sanitize_depth  # noqa: E402
from tests.helpers import PORTRAIT  # noqa: E402


def _placement() -> Placement:
    return Placement(torch.device("cuda"), torch.bfloat16, "none")


def photo(width: int, height: int) -> np.ndarray:
    """The test photo (256 x 256) resized to a production size."""
    import cv2

    return np.ascontiguousarray(cv2.resize(decode_png(PORTRAIT.read_bytes())[..., :3], (width, height),
                                           interpolation=cv2.INTER_CUBIC))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def _measure(call):  # type: ignore[no-untyped-def]
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result = call()
    torch.cuda.synchronize()
    return result, time.perf_counter() - started, torch.cuda.max_memory_allocated() / 2**30


def test_moge_adapter_gives_moges_own_depth_intrinsics_and_mask(tmp_path: Path) -> None:
    """MoGe-1 ViT-L (random weights) loaded from `model.pt` through the adapter, on a 512 x 384 photo:
    the depth is MoGe's `infer` depth (dense, `apply_mask=False`), K is MoGe's normalised K times
    (W, H) with the principal point at the centre, and the mask becomes `dpt_conf_mask`."""
    pytest.importorskip("moge.model.v1")
    from scripts.tiny_models import save_random_moge

    from genfab.stages.scene.moge_adapter import MoGe

    folder = save_random_moge(tmp_path)
    moge = MoGe(folder, _placement(), 60.0)
    parameters = sum(p.numel() for p in moge.model.parameters())
    assert parameters > 300e6  # ViT-L and its head, not a stand-in
    rgb = photo(512, 384)
    height, width = rgb.shape[:2]
    assert (height, width) == (384, 512)
    moge(rgb)  # warm-up (kernel selection)
    result, seconds, peak = _measure(lambda: moge(rgb))
    image = torch.from_numpy(rgb).cuda().permute(2, 0, 1).float() / 255.0
    upstream = moge.model.infer(image, apply_mask=False, use_fp16=True)
    np.testing.assert_allclose(result.depth, sanitize_depth(upstream["depth"].float().cpu().numpy()),
                               rtol=1e-3, atol=1e-4)
    mask = upstream["mask"].cpu().numpy()
    np.testing.assert_array_equal(result.confidence > 0.5, mask)
    assert result.depth.shape == (height, width) and np.isfinite(result.depth).all()
    if result.fov_source == "model":
        K = upstream["intrinsics"].float().cpu().numpy() * np.array([[width], [height], [1.0]])
        np.testing.assert_allclose(result.K, K, rtol=1e-4)
        assert result.K[0, 2] == pytest.approx(width / 2) and result.K[1, 2] == pytest.approx(height / 2)
    else:  # random weights may give a point map with no usable focal: the prior, said so
        np.testing.assert_allclose(result.K, intrinsics_from_fov(width, height, 60.0))
    (frame,) = input_only_frames(rgb, result.depth, result.K, result.confidence)
    np.testing.assert_array_equal(frame.dpt_conf_mask, mask & (result.depth > 0))
    print(f"\nMoGe-1 ViT-L ({parameters / 1e6:.0f} M parameters, random weights) on {width}x{height}: "
          f"{seconds:.3f} s, peak {peak:.2f} GiB, fov {result.fov_degrees:.1f} ({result.fov_source}), "
          f"mask {mask.mean():.0%}")


def test_seva_adapter_runs_img2trajvid_on_sevas_own_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SEVA at production size (its 1.3B network from `SevaParams()`, Stable Diffusion 2.1's VAE,
    open_clip ViT-H-14; random weights) loaded from the model location through the adapter, with SEVA's
    own AutoEncoder and CLIPConditioner classes: img2trajvid from worldexplorer's eight 576 x 576
    scaffold views to an outward trajectory, as the expansion stage calls it. The targets come back in
    trajectory order, one 576 x 576 frame each, kept in memory (the adapter's default) or read back
    from SEVA's `samples-rgb/`. The default `seva.runtime` (compiled, cuDNN attention, one-token
    cross-attentions as their value) is on and gives SEVA's own frames: the same call with nothing
    applied, writing SEVA's files, differs by less than 40 dB PSNR."""
    pytest.importorskip("seva.eval")
    pytest.importorskip("open_clip")
    from scripts.tiny_models import save_random_seva
    from seva.modules.autoencoder import AutoEncoder
    from seva.modules.conditioner import CLIPConditioner

    from genfab.stages.worldexplorer.scaffold_geometry import cam_T_world
    from genfab.stages.worldexplorer.seva_adapter import PosedView, Seva, seva_autoencoder, seva_conditioner
    from genfab.stages.worldexplorer.trajectories import scaffold_trajectory

    seva_dir, vae_dir, clip_dir = save_random_seva(tmp_path / "models")
    placement = _placement()
    ae, conditioner = seva_autoencoder(vae_dir, placement), seva_conditioner(clip_dir, placement)
    assert isinstance(ae, AutoEncoder) and isinstance(conditioner, CLIPConditioner)  # SEVA's classes
    seva = Seva(seva_dir, placement, ae, conditioner, steps=4, cfg=3.0, camera_scale=2.0)
    side, frames = 576, 24
    K = intrinsics_from_fov(side, side, 60.0)
    views = [np.ascontiguousarray(np.roll(photo(side, side), 64 * v, axis=1)) for v in range(8)]
    inputs = [PosedView(K, cam_T_world(v), views[v]) for v in range(8)]
    targets = [PosedView(K, pose) for pose in scaffold_trajectory("outward", frames, 0.3)]
    work = tmp_path / "work"
    out, seconds, peak = _measure(lambda: seva(inputs, targets, 7, work))
    assert len(out) == frames and all(o.shape == (side, side, 3) and o.dtype == np.uint8 for o in out)
    assert not list(work.rglob("*.png"))  # in memory: no input PNGs, SEVA wrote no frames
    assert len({o.tobytes() for o in out}) > 1  # generated frames, not one copied picture
    assert {"compile=model", "one-token-cross-attention"} <= set(seva.applied)
    from genfab.stages.worldexplorer import seva_speed

    # SEVA's own network and autoencoder, as loaded, writing its files as its own img2trajvid does
    monkeypatch.setattr(seva_speed, "apply", lambda *_: [])
    own = Seva(seva_dir, placement, seva_autoencoder(vae_dir, placement), conditioner, steps=4, cfg=3.0,
               camera_scale=2.0)
    own.in_memory = False
    expected = own(inputs, targets, 7, tmp_path / "own")
    written = sorted((tmp_path / "own" / "seva" / "samples-rgb").glob("*.png"))
    assert [p.name for p in written] == [f"{i:03d}.png" for i in range(frames)]  # SEVA's target order
    for i in (0, frames // 2, frames - 1):
        np.testing.assert_array_equal(expected[i], decode_png(written[i].read_bytes()))
    worst = min(_psnr(a, b) for a, b in zip(out, expected, strict=True))
    assert worst >= 40.0, f"the runtime options changed SEVA's frames: {worst:.1f} dB"
    report = {"frames": frames, "steps": 4, "seconds": round(seconds, 1), "peakGiB": round(peak, 2),
              "applied": seva.applied, "psnrVsOwnDb": round(worst, 1)}
    print(f"\nSEVA img2trajvid through the adapter (random weights): {json.dumps(report)}")

"""genfab's research adapters on the real upstream code at production size (random weights: no weights
can be downloaded here, so the timings and memory are the real architectures', the outputs mean
nothing). Needs CUDA and the code `scripts/gpu_tier.py --prepare-research` carries (`.research/src`
on PYTHONPATH, its wheels installed).

- `moge`: MoGe-1 ViT-L on one image: MoGe's own `MoGeModel.infer` (the baseline, a user's plain call
  at MoGe's defaults) against genfab's adapter (`genfab.stages.scene.moge_adapter.MoGe`: the same call
  with `apply_mask=False`, K in pixels, numpy out), seconds per image and peak GPU memory, side by side.
- `seva`: one worldexplorer expansion sample through genfab's SEVA adapter (eight 576 x 576 scaffold
  views in, `--frames` trajectory frames out, `--steps` steps, SEVA's procedural two-pass img2trajvid):
  seconds and peak GPU memory per sample. The adapter is one `run_one_scene` call (plus PNG writes and
  reads), so SEVA's own cost is the figure; there is no second implementation to compare against.

    python3 scripts/gpu_tier.py --group research --dir .research/wheels   # installs into /tmp/genfab-gpu-site
    export PYTHONPATH=/tmp/genfab-gpu-site:operator:stages:.:.research/src
    python benchmarks/research_adapters.py moge --width 1024 --height 768 --runs 5
    python benchmarks/research_adapters.py seva --frames 120 --steps 50
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from tests.helpers import PORTRAIT

from genfab.stages.common.imaging import decode_png
from genfab.stages.models.placement import Placement


def photo(width: int, height: int) -> np.ndarray:
    return np.ascontiguousarray(cv2.resize(decode_png(PORTRAIT.read_bytes())[..., :3], (width, height),
                                           interpolation=cv2.INTER_CUBIC))


def timed(call: Callable[[], Any], runs: int) -> tuple[float, float]:
    """(median seconds over `runs` after one warm-up, peak GiB allocated during them)."""
    call()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        torch.cuda.synchronize()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), torch.cuda.max_memory_allocated() / 2**30


def moge(args: argparse.Namespace, root: Path) -> list[str]:
    from scripts.tiny_models import save_random_moge

    from genfab.stages.scene.moge_adapter import MoGe

    adapter = MoGe(save_random_moge(root), Placement(torch.device("cuda"), torch.bfloat16, "none"), 60.0)
    rgb = photo(args.width, args.height)
    image = torch.from_numpy(rgb).cuda().permute(2, 0, 1).float() / 255.0
    base_s, base_gib = timed(lambda: adapter.model.infer(image), args.runs)
    ours_s, ours_gib = timed(lambda: adapter(rgb), args.runs)
    return ["| MoGe-1 ViT-L, one image | baseline: `MoGeModel.infer` | genfab adapter | ratio |",
            "| --- | ---: | ---: | ---: |",
            f"| {args.width}x{args.height}, s/image (median of {args.runs}) | {base_s:.3f} | {ours_s:.3f} | "
            f"{ours_s / base_s:.2f}x |",
            f"| peak GPU memory, GiB | {base_gib:.2f} | {ours_gib:.2f} | {ours_gib / base_gib:.2f}x |"]


def seva(args: argparse.Namespace, root: Path) -> list[str]:
    from scripts.tiny_models import save_random_seva

    from genfab.stages.scene.geometry import intrinsics_from_fov
    from genfab.stages.worldexplorer.scaffold_geometry import cam_T_world
    from genfab.stages.worldexplorer.seva_adapter import PosedView, Seva, seva_autoencoder, seva_conditioner
    from genfab.stages.worldexplorer.trajectories import scaffold_trajectory

    seva_dir, vae_dir, clip_dir = save_random_seva(root)
    placement = Placement(torch.device("cuda"), torch.bfloat16, "none")
    started = time.perf_counter()
    model = Seva(seva_dir, placement, seva_autoencoder(vae_dir, placement), seva_conditioner(clip_dir, placement),
                 args.steps, 3.0, 2.0)
    load_s = time.perf_counter() - started
    side = 576
    K = intrinsics_from_fov(side, side, 60.0)
    inputs = [PosedView(K, cam_T_world(v), np.ascontiguousarray(np.roll(photo(side, side), 64 * v, axis=1)))
              for v in range(8)]
    targets = [PosedView(K, pose) for pose in scaffold_trajectory("outward", args.frames, 0.3)]
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    frames = model(inputs, targets, 0, root / "work")
    torch.cuda.synchronize()
    seconds, peak = time.perf_counter() - started, torch.cuda.max_memory_allocated() / 2**30
    assert len(frames) == args.frames
    return ["| SEVA img2trajvid, one expansion sample | value |", "| --- | ---: |",
            f"| views in / frames out / steps | 8 x {side}² / {args.frames} / {args.steps} |",
            f"| seconds per sample | {seconds:.1f} |", f"| seconds per frame | {seconds / args.frames:.2f} |",
            f"| peak GPU memory, GiB | {peak:.2f} |", f"| load (SEVA, VAE, CLIP ViT-H-14), s | {load_s:.1f} |"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=["moge", "seva"])
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--height", type=int, default=768)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--frames", type=int, default=120, help="seva: trajectory frames (expansion.numFrames)")
    parser.add_argument("--steps", type=int, default=50, help="seva: denoising steps (seva.steps)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lines = (moge if args.part == "moge" else seva)(args, Path(tmp))
    extra = f", open_clip {version('open_clip_torch')}" if args.part == "seva" else ""
    print("\n".join([*lines, "", f"GPU {torch.cuda.get_device_name()}, torch {torch.__version__}, "
                     f"diffusers {version('diffusers')}{extra}; command: python {' '.join(sys.argv)}"]))


if __name__ == "__main__":
    main()

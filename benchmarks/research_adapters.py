"""genfab's research adapters on the real upstream code at production size (random weights: no weights
can be downloaded here, so the timings and memory are the real architectures', the outputs mean
nothing). Needs CUDA and the code `scripts/gpu_tier.py --prepare-research` carries (`.research/src`
on PYTHONPATH, its wheels installed).

- `moge`: MoGe-1 ViT-L on one image: MoGe's own `MoGeModel.infer` (the baseline, a user's plain call
  at MoGe's defaults) against genfab's adapter (`genfab.stages.scene.moge_adapter.MoGe`: the same call
  with `apply_mask=False`, K in pixels, numpy out), seconds per image and peak GPU memory, side by side.
- `vggt`: VGGT-1B on one worldexplorer expansion's frames (the 8 scaffold views and 120 trajectory
  frames, 576² PNGs): VGGT's own README call (the baseline: `load_and_preprocess_images`, the model
  under bf16 autocast, `pose_encoding_to_extri_intri`, `unproject_depth_map_to_point_map`) against
  genfab's adapter (`genfab.stages.worldexplorer.vggt_adapter.Vggt`, what the expansion stage calls
  with `expansion.geometry: vggt`), seconds per scene and peak GPU memory. The lab's scripts and genfab
  run the same VGGT: this row is the geometry's share of an expansion, on both sides.

SEVA's expansion (SEVA's own `img2trajvid` against the adapter with `worldexplorer.seva.runtime`) is
`benchmarks/seva_speed.py`.

    python3 scripts/gpu_tier.py --group research --dir .research/wheels   # installs into /tmp/genfab-gpu-site
    export PYTHONPATH=/tmp/genfab-gpu-site:operator:stages:.:.research/src
    python benchmarks/research_adapters.py moge --width 1024 --height 768 --runs 5
    python benchmarks/research_adapters.py vggt --frames 128 --width 576 --height 576 --runs 2
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


def vggt(args: argparse.Namespace, root: Path) -> list[str]:
    from scripts.tiny_models import save_random_vggt
    from vggt.utils.geometry import unproject_depth_map_to_point_map  # VGGT's own code (.research/src)
    from vggt.utils.load_fn import load_and_preprocess_images
    from vggt.utils.pose_enc import pose_encoding_to_extri_intri

    from genfab.stages.common.imaging import encode_png
    from genfab.stages.worldexplorer.vggt_adapter import Vggt

    adapter = Vggt(save_random_vggt(root / "models"), Placement(torch.device("cuda"), torch.bfloat16, "none"))
    model = adapter.model  # one loaded model for both sides
    wide = photo(args.width * 2, args.height)
    paths = []
    for i in range(args.frames):  # a sweep across a wider picture: frames that differ, as a trajectory's do
        x = round(i * args.width / max(args.frames - 1, 1))
        paths.append(root / f"frame_{i:04d}.png")
        paths[-1].write_bytes(encode_png(np.ascontiguousarray(wide[:, x:x + args.width])))
    names = [str(p) for p in paths]

    def own() -> Any:  # VGGT's README, as a user's script runs it
        images = load_and_preprocess_images(names).to("cuda")
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            predictions = model(images)
        extrinsic, intrinsic = pose_encoding_to_extri_intri(predictions["pose_enc"], images.shape[-2:])
        depth = predictions["depth"][0].float().cpu().numpy()
        return unproject_depth_map_to_point_map(depth, extrinsic[0].float().cpu().numpy(),
                                                intrinsic[0].float().cpu().numpy())

    base_s, base_gib = timed(own, args.runs)
    ours_s, ours_gib = timed(lambda: adapter(paths), args.runs)
    parameters = sum(p.numel() for p in model.parameters())
    return [f"| VGGT-1B ({parameters:,} parameters, {adapter.source}) | baseline: VGGT's README call | "
            "genfab adapter | ratio |",
            "| --- | ---: | ---: | ---: |",
            f"| {args.frames} frames of {args.width}x{args.height}, s/scene (median of {args.runs}) | "
            f"{base_s:.2f} | {ours_s:.2f} | {ours_s / base_s:.2f}x |",
            f"| peak GPU memory, GiB | {base_gib:.2f} | {ours_gib:.2f} | {ours_gib / base_gib:.2f}x |"]


PARTS = {"moge": moge, "vggt": vggt}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=list(PARTS))
    parser.add_argument("--frames", type=int, default=128, help="vggt: frames per scene")
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--height", type=int, default=768)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lines = PARTS[args.part](args, Path(tmp))
    print("\n".join([*lines, "", f"GPU {torch.cuda.get_device_name()}, torch {torch.__version__}, "
                     f"diffusers {version('diffusers')}; command: python {' '.join(sys.argv)}"]))


if __name__ == "__main__":
    main()

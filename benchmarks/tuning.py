"""DiFix fine-tuning speed: genfab's built-in trainer against a plain eager PyTorch loop of the same
model and losses, and 1 GPU against 2.

The model is SD-Turbo-sized (865M-parameter UNet, SD's VAE with Difix3D's skip convolutions and
decoder LoRA, the 23-layer OpenCLIP-H text tower, full VGG16 for LPIPS and the Gram loss) with
random weights (`scripts/tiny_models.py --full-size` layout; `--tiny` uses the tiny stand-ins). The
data are synthetic triplets (degraded view + reference -> target) at each size.

- eager: `Options(fast=False)`: the same training step in eager mode, float32 master weights under
  bf16 autocast (both sides), contiguous tensors, PyTorch's default AdamW, the prompt encoded every
  step as Difix3D does, images decoded in the training process.
- genfab: `Options(fast=True)`: channels-last, `torch.compile`, fused AdamW, TF32, cached prompt
  embeddings, decoding in DataLoader worker processes overlapping the step.

Both run in this process, one after the other, batch 1 per GPU (Difix3D's setting), with a
reference view (2 views per image). Images/s are measured over the last `--steps` steps after
`--warmup` steps (compilation is in the warm-up). Scaling: `torchrun --nproc-per-node 1` and `2`
of the genfab side; efficiency = images/s on 2 GPUs / (2 x images/s on 1 GPU).

    python benchmarks/tuning.py [--tiny] [--sizes 512x512,576x1024] [--steps 30] [--warmup 10] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def synthetic_data(folder: Path, height: int, width: int, count: int = 16) -> Path:
    """Smooth random images: target, a degraded copy (blur + noise), and a shifted reference."""
    rng = np.random.default_rng(0)
    train = {}
    for i in range(count):
        low = rng.random((height // 16, width // 16, 3)).astype(np.float32)
        target = np.asarray(Image.fromarray((low * 255).astype(np.uint8)).resize((width, height),
                                                                              Image.Resampling.BICUBIC))
        noisy = np.clip(target.astype(np.float32) + rng.normal(0, 20, target.shape), 0, 255).astype(np.uint8)
        paths = {}
        for name, arr in (("target_image", target), ("image", noisy), ("ref_image", np.roll(target, 8, axis=1))):
            path = folder / f"{i:03d}_{name}.jpg"
            Image.fromarray(arr).save(path, quality=95)
            paths[name] = str(path)
        train[f"s{i:03d}"] = {**paths, "prompt": "remove degradation"}
    data = folder / "data.json"
    data.write_text(json.dumps({"train": train, "test": dict(list(train.items())[:2])}))
    return data


def hyper(height: int, width: int, steps: int, workers: int) -> Any:
    from genfab.stages.tuning.trainer import Hyper

    return Hyper(resolution=height, width=width, max_steps=steps, checkpoint_every=10_000_000, eval_every=10_000_000,
                 batch_size=1, mixed_precision="bf16", gram_warmup_steps=0, dataloader_workers=workers)


def measure(result: Any, warmup: int) -> float:
    ends = result.step_ends
    return (len(ends) - warmup) * result.images_per_step / (ends[-1] - ends[warmup - 1])


def run_one(fast: bool, models: Path, data: Path, height: int, width: int, steps: int, warmup: int,
            out: Path, ddp: dict[str, Any] | None = None, compile: bool | None = None) -> dict[str, Any]:
    import torch

    from genfab.stages.tuning.trainer import Options, TrainerIO, train

    torch.cuda.empty_cache()
    base = models / "stabilityai/sd-turbo"
    result = train(hyper(height, width, steps + warmup, 4), base, models / "genfab/vgg16-lpips", data, TrainerIO(out),
                   Options(fast=fast, compile=compile, final_checkpoint=False, ddp=ddp or {}))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rate = measure(result, warmup)
    return {"imagesPerSecond": rate, "perGpu": rate / world, "peakGiB": result.peak_memory_bytes / 2**30,
            "world": world, "lossFirst": result.losses[0]["total"], "lossLast": result.losses[-1]["total"]}


def worker(args: argparse.Namespace) -> None:
    """One torchrun rank of the scaling runs: rank 0 writes the result."""
    h, w = (int(v) for v in args.size.split("x"))
    found = run_one(True, Path(args.models), Path(args.data), h, w, args.steps, args.warmup,
                    Path(args.out) / f"scaling-{os.environ.get('WORLD_SIZE')}", json.loads(args.ddp),
                    False if args.no_compile else None)
    if os.environ.get("RANK", "0") == "0":
        Path(args.result).write_text(json.dumps(found))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny stand-in models (a smoke run, not a measurement)")
    parser.add_argument("--sizes", default="512x512,576x1024")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--gpus", type=int, default=2, help="GPUs for the scaling run (0: skip it)")
    parser.add_argument("--scaling-only", action="store_true", help="skip the eager/genfab comparison")
    parser.add_argument("--ddp", default="{}", help="JSON overrides of the trainer's DDP settings (Options.ddp)")
    parser.add_argument("--no-compile", action="store_true", help="the scaling runs without torch.compile")
    parser.add_argument("--write", action="store_true", help="append the table to benchmarks/results/tuning.md")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--models", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--size", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    import torch
    from scripts.tiny_models import save_tuning_models

    root = Path(tempfile.mkdtemp(prefix="genfab-tuning-bench-"))
    started = time.monotonic()
    models = save_tuning_models(root / "models", full_size=not args.tiny)
    print(f"models written in {time.monotonic() - started:.0f} s ({'tiny' if args.tiny else 'SD-Turbo size'})",
          flush=True)
    rows = []
    scaling = []
    for size in args.sizes.split(","):
        h, w = (int(v) for v in size.split("x"))
        folder = root / f"data-{size}"
        folder.mkdir()
        data = synthetic_data(folder, h, w)
        if not args.scaling_only:
            eager = run_one(False, models, data, h, w, args.steps, args.warmup, root / f"eager-{size}")
            print("eager", size, eager, flush=True)
            fast = run_one(True, models, data, h, w, args.steps, args.warmup, root / f"genfab-{size}")
            print("genfab", size, fast, flush=True)
            rows.append((size, eager, fast))
        if args.gpus > 1 and torch.cuda.device_count() >= args.gpus:
            per = {}
            for n in (1, args.gpus):
                result = root / f"scaling-{size}-{n}.json"
                cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={n}", __file__, "--worker",
                       "--models", str(models), "--data", str(data), "--size", size, "--steps", str(args.steps),
                       "--warmup", str(args.warmup), "--out", str(root), "--result", str(result), "--ddp", args.ddp,
                       *(["--no-compile"] if args.no_compile else [])]
                subprocess.run(cmd, check=True)
                per[n] = json.loads(result.read_text())
                print("scaling", size, n, per[n], flush=True)
            scaling.append((size, per[1], per[args.gpus], args.gpus))
    table = report(rows, scaling, args)
    print(table)
    if args.write:
        with (ROOT / "benchmarks" / "results" / "tuning.md").open("a") as fh:
            fh.write(table + "\n")


def report(rows: list[tuple[str, dict[str, Any], dict[str, Any]]],
           scaling: list[tuple[str, dict[str, Any], dict[str, Any], int]], args: argparse.Namespace) -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    lines = [f"### {'tiny stand-in' if args.tiny else 'SD-Turbo size, random weights'} on {gpu}", "",
             f"torch {torch.__version__}, diffusers {version('diffusers')}, accelerate {version('accelerate')}, "
             f"peft {version('peft')}, Python {platform.python_version()}; batch 1 per GPU, 2 views (reference), "
             f"{args.steps} measured steps after {args.warmup} warm-up steps.",
             f"Command: `python benchmarks/tuning.py --sizes {args.sizes} --steps {args.steps} --warmup {args.warmup}"
             f"{' --tiny' if args.tiny else ''}{' --scaling-only' if args.scaling_only else ''}`", ""]
    if rows:
        lines += ["| size (HxW) | eager images/s | genfab images/s | speed-up | eager peak GiB | genfab peak GiB |",
                  "| --- | --- | --- | --- | --- | --- |"]
    for size, eager, fast in rows:
        lines.append(f"| {size} | {eager['perGpu']:.2f} | {fast['perGpu']:.2f} | "
                     f"**{fast['perGpu'] / eager['perGpu']:.2f}x** | {eager['peakGiB']:.1f} | {fast['peakGiB']:.1f} |")
    if scaling:
        lines += ["", "| size (HxW) | 1 GPU images/s | N GPUs images/s | per GPU | scaling efficiency |",
                  "| --- | --- | --- | --- | --- |"]
        for size, one, many, n in scaling:
            lines.append(f"| {size} | {one['imagesPerSecond']:.2f} | {many['imagesPerSecond']:.2f} ({n} GPUs) | "
                         f"{many['perGpu']:.2f} | **{many['imagesPerSecond'] / (n * one['imagesPerSecond']):.2f}** |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

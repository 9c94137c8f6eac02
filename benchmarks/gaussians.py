"""3DGS training: genfab's `gaussians` stage vs a plain gsplat loop, and multi-scene packing.

Run on a CUDA GPU (gsplat compiles its kernels on first use):

    python benchmarks/gaussians.py --steps 7000 --size 256 --views 32 --out benchmarks/results/gaussians.md

Side by side in one process, on the same procedural scene (ray-cast, not splatted) and step count:
(a) genfab's trainer (`genfab.stages.gaussians.train`), (b) a plain loop following gsplat's simple
trainer defaults: its learning rates, DefaultStrategy, the 30k-step schedule scaled to the run,
images moved to the GPU each step, torchmetrics SSIM, plain Adam, the loss read every step for the
progress bar. Then 8 small scenes: packed on one GPU vs one after another (scenes per GPU-hour).
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "operator"), str(ROOT / "stages")]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from genfab.stages.gaussians import procedural  # noqa: E402
from genfab.stages.gaussians.cameras import SceneData, scene_scale  # noqa: E402
from genfab.stages.gaussians.core import TrainSettings, init_splats, seed_everything  # noqa: E402
from genfab.stages.gaussians.losses import Lpips, psnr, ssim  # noqa: E402
from genfab.stages.gaussians.train import SceneTrainer, train_scenes  # noqa: E402

LPIPS = Lpips()
"""The evaluation's LPIPS, from `--lpips-model` (nothing is downloaded)."""

def memory_baseline(device: torch.device) -> int:
    """Frees what earlier runs left and restarts the peak counter; a run's peak is reported above
    this baseline, so neither loop is charged for the other's leftovers."""
    gc.collect()
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    return torch.cuda.memory_allocated(device)


OnStep = Callable[[int, dict[str, torch.nn.Parameter]], None]
"""Called after each training step with the step index and the parameters (profiling hooks)."""


def plain_gsplat_loop(scene: SceneData, images: dict[str, np.ndarray], s: TrainSettings,
                      device: torch.device, on_step: OnStep | None = None) -> dict[str, Any]:
    """The baseline: gsplat's simple trainer written out plainly (no genfab code in the loop)."""
    from gsplat import rasterization
    from gsplat.strategy import DefaultStrategy
    from torchmetrics.image import StructuralSimilarityIndexMeasure

    seed_everything(s.seed)
    base = memory_baseline(device)
    started = time.perf_counter()
    train, test = scene.split(s.test_every)
    scale = scene_scale(scene.cameras)
    gen = torch.Generator(device=device).manual_seed(s.seed)
    params = init_splats(scene, s, device, gen)
    lrs = {"means": 1.6e-4 * scale, "scales": 5e-3, "quats": 1e-3, "opacities": 5e-2, "sh0": 2.5e-3,
           "shN": 2.5e-3 / 20}
    optimizers = {k: torch.optim.Adam([{"params": params[k], "lr": lr, "name": k}], eps=1e-15)
                  for k, lr in lrs.items()}
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizers["means"], gamma=0.01 ** (1.0 / s.steps))
    strategy = DefaultStrategy(absgrad=False, **s.schedule())
    state = strategy.initialize_state(scene_scale=scale)
    ssim_metric = StructuralSimilarityIndexMeasure(data_range=1.0).to(device)
    cpu_images = [torch.from_numpy(images[c.name]).float() for c in train]  # like a DataLoader's batches
    background = torch.tensor(s.background, device=device)[None] if s.background is not None else None
    order = torch.Generator().manual_seed(s.seed)
    perm: list[int] = []
    for step in range(s.steps):
        if not perm:
            perm = torch.randperm(len(train), generator=order).tolist()
        i = perm.pop()
        cam = train[i]
        pixels = cpu_images[i].to(device)[None]
        viewmat = torch.as_tensor(cam.w2c, dtype=torch.float32, device=device)[None]
        K = torch.as_tensor(cam.K, dtype=torch.float32, device=device)[None]
        colors = torch.cat([params["sh0"], params["shN"]], 1)
        renders, _, info = rasterization(
            means=params["means"], quats=params["quats"], scales=torch.exp(params["scales"]),
            opacities=torch.sigmoid(params["opacities"]), colors=colors, viewmats=viewmat, Ks=K,
            width=cam.width, height=cam.height, sh_degree=min(step // s.sh_interval(), s.sh_degree),
            packed=False, backgrounds=background)
        strategy.step_pre_backward(params, optimizers, state, step, info)
        l1 = torch.nn.functional.l1_loss(renders, pixels)
        ssim_value = ssim_metric(renders.permute(0, 3, 1, 2), pixels.permute(0, 3, 1, 2))
        loss = l1 * (1 - s.ssim_lambda) + (1 - ssim_value) * s.ssim_lambda
        loss.backward()
        _ = loss.item()  # the simple trainer's progress bar shows the loss every step
        for opt in optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        scheduler.step()
        strategy.step_post_backward(params, optimizers, state, step, info, packed=False)
        if on_step is not None:
            on_step(step, params)
    torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated(device) - base
    lpips = LPIPS
    psnrs, ssims, lpipss = [], [], []
    with torch.no_grad():
        for cam in test:
            vm = torch.as_tensor(cam.w2c, dtype=torch.float32, device=device)[None]
            K = torch.as_tensor(cam.K, dtype=torch.float32, device=device)[None]
            pred = rasterization(means=params["means"], quats=params["quats"], scales=torch.exp(params["scales"]),
                                 opacities=torch.sigmoid(params["opacities"]),
                                 colors=torch.cat([params["sh0"], params["shN"]], 1), viewmats=vm, Ks=K,
                                 width=cam.width, height=cam.height, sh_degree=s.sh_degree, packed=False,
                                 backgrounds=background)[0].clamp(0, 1)
            gt = torch.from_numpy(images[cam.name]).float().to(device)[None]
            psnrs.append(psnr(pred, gt))
            ssims.append(float(ssim(pred.permute(0, 3, 1, 2), gt.permute(0, 3, 1, 2))))
            lpipss.append(lpips(pred.permute(0, 3, 1, 2), gt.permute(0, 3, 1, 2)))
    return {"seconds": seconds, "steps_per_second": s.steps / seconds, "peak_bytes": peak,
            "psnr": float(np.mean(psnrs)), "ssim": float(np.mean(ssims)),
            "lpips": None if None in lpipss else float(np.mean(lpipss)), "gaussians": len(params["means"])}


def genfab_stage(scene: SceneData, images: dict[str, np.ndarray], s: TrainSettings,
                 device: torch.device, on_step: OnStep | None = None) -> dict[str, Any]:
    seed_everything(s.seed)
    base = memory_baseline(device)
    started = time.perf_counter()
    trainer = SceneTrainer(scene, images, s, device)
    for step in range(s.steps):
        trainer.step()
        if on_step is not None:
            on_step(step, trainer.params)
    torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated(device) - base
    metrics, _ = trainer.evaluate(LPIPS, images)
    return {"seconds": seconds, "steps_per_second": s.steps / seconds, "peak_bytes": peak,
            "psnr": metrics["psnr"], "ssim": metrics["ssim"], "lpips": metrics["lpips"],
            "gaussians": metrics["num_gaussians"]}


def packing(n_scenes: int, steps: int, size: int, views: int, device: torch.device) -> dict[str, Any]:
    scenes = []
    for i in range(n_scenes):
        sc = procedural.generate(100 + i, n_views=views, width=size, height=size, n_points=5000, device=device)
        scenes.append((sc.scene_data(), sc.images))
    s = TrainSettings(steps=steps, sh_degree=3, cap_max=200_000, background=procedural.BACKGROUND)
    out: dict[str, Any] = {}
    for mode in ("sequential", "batched"):
        seed_everything(s.seed)
        base = memory_baseline(device)
        started = time.perf_counter()
        results = train_scenes(scenes, s, device, packing=mode, evaluate=True, lpips=LPIPS)
        seconds = time.perf_counter() - started
        peak = torch.cuda.max_memory_allocated(device) - base
        out[mode] = {"seconds": seconds, "scenes_per_gpu_hour": n_scenes / seconds * 3600, "peak_bytes": peak,
                     "gaussians": [len(r.splats) for r in results],
                     "psnr": float(np.mean([r.metrics["psnr"] for r in results]))}
    return out


def fmt_mib(b: float) -> str:
    return f"{b / 2**20:.0f} MiB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=7000)
    ap.add_argument("--size", type=int, nargs="+", default=[256], help="image width and height (several: one "
                    "comparison each)")
    ap.add_argument("--views", type=int, default=32)
    ap.add_argument("--pack-scenes", type=int, default=8)
    ap.add_argument("--pack-steps", type=int, default=2000)
    ap.add_argument("--pack-size", type=int, default=96)
    ap.add_argument("--seeds", type=int, nargs="+", default=[7, 8, 9], help="one procedural scene per seed; "
                    "the table shows means (one run's PSNR moves by ~0.1 dB with gsplat's float atomics)")
    ap.add_argument("--out", type=Path, default=None, help="write the markdown table here")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--lpips-model", type=Path, default=None,
                    help="an AlexNet LPIPS model folder (gaussians.lpipsModel's layout); without it LPIPS is n/a")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks/gaussians.py needs a CUDA GPU")
    device = torch.device("cuda")
    global LPIPS
    LPIPS = Lpips.load(args.lpips_model, device, "no LPIPS model folder given")
    import gsplat

    comparisons = []
    names = ("plain gsplat loop", "genfab gaussians stage")
    loops = dict(zip(names, (plain_gsplat_loop, genfab_stage), strict=True))
    for size in args.size:
        per_seed: list[dict[str, dict[str, Any]]] = []
        for n, seed in enumerate(args.seeds):
            scene = procedural.generate(seed, n_views=args.views, width=size, height=size, device=device)
            data, images = scene.scene_data(), scene.images
            s = TrainSettings(steps=args.steps, background=procedural.BACKGROUND)
            if n == 0:  # warm-up: gsplat's kernels load and cuBLAS initialises outside the timed runs
                train_scenes([(data, images)], TrainSettings(steps=50), device, packing="sequential",
                             evaluate=False)
            order = names if n % 2 == 0 else names[::-1]  # alternate which loop runs first
            per_seed.append({name: loops[name](data, images, s, device) for name in order})
        runs = {name: {k: (None if any(r[name][k] is None for r in per_seed)
                           else float(np.mean([r[name][k] for r in per_seed])))
                       for k in per_seed[0][name]} for name in names}
        comparisons.append((size, per_seed, runs))
    pack = packing(args.pack_scenes, args.pack_steps, args.pack_size, max(8, args.views // 2), device) \
        if args.pack_scenes else {}
    gpu = torch.cuda.get_device_name(device)
    sizes = " ".join(str(v) for v in args.size)
    lines = [
        "# 3DGS training: genfab `gaussians` stage vs plain gsplat loop",
        "",
        f"GPU: {gpu}; torch {torch.__version__}; gsplat {gsplat.__version__}; Python {platform.python_version()}.",
        f"Command: `python benchmarks/gaussians.py --steps {args.steps} --size {sizes} --views {args.views} "
        f"--seeds {' '.join(map(str, args.seeds))} --pack-scenes {args.pack_scenes} "
        f"--pack-steps {args.pack_steps} --pack-size {args.pack_size}`",
        "",
        f"Scenes: procedural (seeds {' '.join(map(str, args.seeds))}; numbers are means over them), "
        f"{args.views} views, every 8th held out, {args.steps} steps, white background, 8-bit images; the same "
        "data, step count and initial points for both loops, which run in alternating order. Peak GPU memory "
        "is the training run's peak above what was allocated before it.",
        "",
        "| size | | wall s | steps/s | peak GPU memory | test PSNR | test SSIM | test LPIPS | Gaussians |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for size, _, runs in comparisons:
        for name, r in runs.items():
            lp = f"{r['lpips']:.4f}" if r["lpips"] is not None else "n/a"
            lines.append(f"| {size}² | {name} | {r['seconds']:.1f} | {r['steps_per_second']:.0f} | "
                         f"{fmt_mib(r['peak_bytes'])} | {r['psnr']:.2f} | {r['ssim']:.4f} | {lp} | "
                         f"{r['gaussians']:,.0f} |")
        base, ours = runs["plain gsplat loop"], runs["genfab gaussians stage"]
        lines.append(f"| {size}² | **genfab / plain** | **{ours['seconds'] / base['seconds']:.2f}x** | "
                     f"{ours['steps_per_second'] / base['steps_per_second']:.2f}x | "
                     f"**{ours['peak_bytes'] / base['peak_bytes']:.2f}x** | "
                     f"**{ours['psnr'] - base['psnr']:+.2f} dB** | "
                     f"{ours['ssim'] - base['ssim']:+.4f} | | |")
    lines += ["", "Targets: wall <= 0.8x, peak memory <= 1.0x, PSNR >= plain - 0.1 dB.", "",
              "Per scene (genfab / plain):", "",
              "| size | seed | wall | peak memory | test PSNR | Gaussians |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for size, per_seed, _ in comparisons:
        for seed, r in zip(args.seeds, per_seed, strict=True):
            base, ours = r["plain gsplat loop"], r["genfab gaussians stage"]
            lines.append(f"| {size}² | {seed} | {ours['seconds'] / base['seconds']:.2f}x | "
                         f"{ours['peak_bytes'] / base['peak_bytes']:.2f}x | {ours['psnr'] - base['psnr']:+.2f} dB | "
                         f"{ours['gaussians'] / base['gaussians']:.3f}x |")
    if pack:
        lines += pack_table(args, pack)
    if comparisons[0][2]["plain gsplat loop"]["lpips"] is None:
        lines += ["", f"LPIPS: n/a — {LPIPS.reason} (pass --lpips-model); PSNR and SSIM are computed."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    if args.json:
        args.json.write_text(json.dumps({"runs": {c[0]: c[1] for c in comparisons}, "packing": pack, "gpu": gpu},
                                        indent=1, default=str))


def pack_table(args: argparse.Namespace, pack: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"## Multi-scene packing: {args.pack_scenes} scenes, {args.pack_steps} steps each, "
        f"{args.pack_size}x{args.pack_size}",
        "",
        "| | wall s | scenes per GPU-hour | peak GPU memory | mean test PSNR |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for mode in ("sequential", "batched"):
        r = pack[mode]
        lines.append(f"| {mode} | {r['seconds']:.1f} | {r['scenes_per_gpu_hour']:.0f} | {fmt_mib(r['peak_bytes'])} "
                     f"| {r['psnr']:.2f} |")
    gain = pack["batched"]["scenes_per_gpu_hour"] / pack["sequential"]["scenes_per_gpu_hour"]
    lines.append(f"| **ratio batched / sequential** | | **{gain:.2f}x** | | |")
    return lines


if __name__ == "__main__":
    main()

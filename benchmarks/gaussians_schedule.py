"""Why held-out PSNR collapses under gsplat's full 30,000-step schedule on the procedural scenes (both
trainers: benchmarks/results/gaussians.md). genfab's trainer at its defaults on one scene, measured at
checkpoints along the run: held-out PSNR over all pixels and split into the background (the scene's
white, where a ray meets no geometry) and the geometry, the render's opacity on each, the training
views' PSNR, and where the Gaussians are (inside the scene's bounds, outside them, near a camera).
`--background white` trains the same scene with the known white background composited behind the
splats (`gaussians.background`), so nothing has to paint the sky; `black` is both trainers' default,
as the comparison runs them. One process per background.

    python3 benchmarks/gaussians_schedule.py --scene 768x96 --seed 1 --steps 30000 --every 2500 \
        --background black --background white --builds .gpucache/builds.tgz --out DIR

On the GPU machine, carrying .gpuwheels, .bench and .gpucache (the same set-up as
gaussians_simple_trainer.py run). Prints one table per background (`--out DIR`: also writes it, with a
held-out view's render beside its ground truth at each checkpoint).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import gaussians_simple_trainer as gst
import numpy as np

NEAR_CAMERA = 1.0
"""A Gaussian this close to a camera's centre is in front of that camera only (the scene's objects
stand 4.5 units away)."""
BOUNDS = (2.5 + 0.5, -0.5, 3.5)
"""The scene's extent (procedural.GROUND_RADIUS plus a margin; lowest and highest z): Gaussians
outside it stand for nothing in the scene but the background."""


def view_metrics(trainer: Any, images: dict[str, np.ndarray], cams: list[Any]) -> dict[str, float]:
    """Mean per-view PSNR over all pixels, the background's and the geometry's, and the mean opacity of
    the render on each."""
    rows = []
    for cam in cams:
        rgb, alpha = trainer.render_views([cam])
        gt = images[cam.name]
        background = (gt == 255).all(-1)
        err = ((rgb[0] - gt.astype(np.float32) / 255) ** 2).mean(-1)
        a = alpha[0, ..., 0]

        def psnr(mse: float) -> float:
            return -10 * math.log10(max(mse, 1e-12))

        rows.append((psnr(float(err.mean())),
                     psnr(float(err[background].mean())) if background.any() else math.nan,
                     psnr(float(err[~background].mean())),
                     float(background.mean()),
                     float(a[background].mean()) if background.any() else math.nan,
                     float(a[~background].mean())))
    m = np.nanmean(np.array(rows), axis=0)
    keys = ("psnr", "psnr_background", "psnr_geometry", "background_share", "alpha_background", "alpha_geometry")
    return dict(zip(keys, (float(v) for v in m), strict=True))


def where_gaussians_are(trainer: Any) -> dict[str, float]:
    import torch

    means = trainer.params["means"].detach()
    centers = torch.as_tensor(np.stack([c.center for c in trainer.scene.cameras]), dtype=means.dtype,
                              device=means.device)
    nearest = torch.cdist(means, centers).amin(1)
    radius, low, high = BOUNDS
    outside = (means[:, :2].norm(dim=1) > radius) | (means[:, 2] < low) | (means[:, 2] > high)
    return {"gaussians": len(means), "outside_bounds": float(outside.float().mean()),
            "near_camera": float((nearest < NEAR_CAMERA).float().mean())}


def side_by_side(trainer: Any, images: dict[str, np.ndarray], cam: Any, path: Path) -> None:
    import cv2

    rgb, _ = trainer.render_views([cam])
    pair = np.concatenate([images[cam.name], (rgb[0] * 255).round().astype(np.uint8)], axis=1)
    scale = 384 / cam.height
    small = cv2.resize(pair, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(path), cv2.cvtColor(small, cv2.COLOR_RGB2BGR))


def child(args: argparse.Namespace) -> int:
    """One run in its own process: a JSON line per checkpoint."""
    import torch

    from genfab.stages.gaussians.core import TrainSettings
    from genfab.stages.gaussians.loaders import load_scene
    from genfab.stages.gaussians.stage import read_images
    from genfab.stages.gaussians.train import SceneTrainer

    device = torch.device("cuda")
    scene = load_scene(args.scene_dir)
    images = read_images(args.scene_dir, scene.cameras)
    background = None if args.background == "black" else [1.0, 1.0, 1.0]
    s = TrainSettings(steps=args.steps, background=background)
    trainer = SceneTrainer(scene, images, s, device)
    train_sample = trainer.train_cams[:: max(1, len(trainer.train_cams) // 8)][:8]
    out = Path(args.out) if args.out else None
    for i in range(1, s.steps + 1):
        trainer.step()
        if i % args.every and i != s.steps:
            continue
        with torch.no_grad():
            held = view_metrics(trainer, images, trainer.test_cams)
            train = view_metrics(trainer, images, train_sample)
            row = {"step": i, **held, "train_psnr": train["psnr"], **where_gaussians_are(trainer)}
            if out is not None:
                side_by_side(trainer, images, trainer.test_cams[0], out / f"{args.background}-{i:05d}.png")
        print(json.dumps(row), flush=True)
    return 0


def table(background: str, rows: list[dict[str, Any]]) -> str:
    lines = [f"**background {background}**", "",
             "| step | held-out PSNR | on background | on geometry | render opacity on background | "
             "on geometry | training views' PSNR | Gaussians | outside the scene's bounds | within "
             f"{NEAR_CAMERA:g} of a camera |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['step']:,} | {r['psnr']:.2f} | {r['psnr_background']:.2f} | {r['psnr_geometry']:.2f} | "
                     f"{r['alpha_background']:.3f} | {r['alpha_geometry']:.3f} | {r['train_psnr']:.2f} | "
                     f"{r['gaussians']:,} | {r['outside_bounds']:.1%} | {r['near_camera']:.1%} |")
    share = rows[-1]["background_share"] if rows else math.nan
    lines += ["", f"(the background is {share:.0%} of the held-out views' pixels)"]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scene", default="768x96", help="SIZExVIEWS[-black] (gaussians_simple_trainer.py's)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--steps", type=int, default=30000)
    parser.add_argument("--every", type=int, default=2500)
    parser.add_argument("--background", action="append", choices=["black", "white"])
    parser.add_argument("--builds", help="compiled kernels (as gaussians_simple_trainer.py run --builds)")
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "genfab-simple-trainer"))
    parser.add_argument("--out", help="folder for the tables and the held-out renders")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--scene-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.background = args.background[0]
        return child(args)
    tier = gst.gpu_tier()
    work = Path(args.work)
    env = gst.install(work / "site", tier, Path(args.builds) if args.builds else None)
    sys.path[:0] = env["PYTHONPATH"].split(os.pathsep)
    if not tier.build(env):
        return 1
    folder = work / "scenes" / f"{args.scene}-{args.seed}"
    gst.write_scene(args.scene, args.seed, folder)
    out = Path(args.out) if args.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    text = [f"{args.scene}, seed {args.seed}, {args.steps:,} steps, genfab's trainer at its defaults; "
            + gst.machine_line(), f"Command: `{gst.command_line()}`", ""]
    for background in args.background or ["black"]:
        command = [sys.executable, __file__, "--child", "--scene-dir", str(folder), "--steps", str(args.steps),
                   "--every", str(args.every), "--background", background, *(["--out", str(out)] if out else [])]
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit("schedule: the run failed:\n" + "\n".join(done.stderr.splitlines()[-15:]))
        rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        text += [table(background, rows), ""]
        print(text[-2], flush=True)
    if out is not None:
        (out / "schedule.md").write_text("\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())

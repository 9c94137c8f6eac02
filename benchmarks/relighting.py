"""Relighting stages: images/s per stage at 1024², and the fast Retinex against a straightforward one.

CPU (the classical path), in one process and with the stage's worker pool (`cpu_workers()`), on
1024x1024 upscales of the bundled portraits. The Retinex comparison runs the same Multi-Scale
Retinex twice in this process: once with the pyramid blur the stage uses, once with OpenCV's
GaussianBlur at full sigma (the reference), and reports the speed ratio and the largest difference.
On a machine with CUDA, the model-backed stages need production-size models; see the results file
for what was and was not measured.

    python benchmarks/relighting.py                 # prints the table
    python benchmarks/relighting.py --write         # also writes benchmarks/results/relighting.md
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from genfab.api.relighting import DegradationConfig, MaskCleanup
from genfab.api.relighting_params import AlbedoParams
from genfab.stages.common.imaging import to_float
from genfab.stages.relighting import albedo as ops
from genfab.stages.relighting import blur, degradation
from genfab.stages.relighting.albedo import RETINEX_VARIANT
from genfab.stages.relighting.albedo_stage import compute_albedo
from genfab.stages.relighting.degrade_stage import compute_degraded
from genfab.stages.relighting.images import decode, decode_color, encode
from genfab.stages.relighting.matte import alpha_of, person_region
from genfab.stages.relighting.recombine_stage import compute_composite
from genfab.stages.relighting.segment_stage import classical_mask, split_and_encode
from genfab.stages.runtime.parallel import CpuPool, cpu_workers

ROOT = Path(__file__).resolve().parent.parent
SIDE = 1024
DEGRADATION = {
    "weights": {"softShading": 0.8, "hardShadow": 0.0, "specular": 0.0, "ambientOnly": 0.2},
    "softShading": {"ambient": {"min": 0.6, "max": 0.85}, "shadowPatterns": True},
    "hardShadow": {"patterns": ["perlin"], "strength": {"min": 0.3, "max": 0.7}},
    "specular": {"shininess": {"min": 8.0, "max": 64.0}, "strength": {"min": 0.1, "max": 0.4}},
}
ALBEDO = {"methods": [{"name": "retinex", "probability": 1.0}], "blend": {"min": 0.15, "max": 0.25},
          "retinexScales": [15.0, 80.0, 250.0]}


def segment_job(job: dict[str, Any]) -> dict[str, Any]:
    mask = classical_mask(job)["mask"]
    return split_and_encode({**job, "mask": mask, "backend": "classical", "info": {}, "cleanup": MaskCleanup().pair(),
                             "refine": False})


def inputs(n: int) -> list[np.ndarray]:
    files = sorted((ROOT / "examples" / "data" / "portraits").glob("*.png"))
    return [cv2.resize(cv2.imread(str(files[i % len(files)])), (SIDE, SIDE), interpolation=cv2.INTER_CUBIC)
            for i in range(n)]


def timed(pool: CpuPool, fn: Callable[[dict[str, Any]], dict[str, Any]],
          jobs: list[dict[str, Any]]) -> tuple[float, list[Any]]:
    start = time.perf_counter()
    out = pool.map(fn, jobs)
    seconds = time.perf_counter() - start
    bad = [o for o in out if isinstance(o, Exception)]
    if bad:
        raise bad[0]
    return len(jobs) / seconds, out


def run(n: int) -> tuple[list[tuple[str, float, float]], dict[str, float]]:
    images = inputs(n)
    workers = cpu_workers()
    rows = []
    serial, pooled = CpuPool(1), CpuPool(workers)
    pooled.map(segment_job, [{"id": "warm", "image": images[0][:64, :64], "seed": 0}] * workers)  # start workers
    seg_jobs = [{"id": f"s{i}", "image": img, "seed": i} for i, img in enumerate(images)]
    one, _ = timed(serial, segment_job, seg_jobs)
    many, seg = timed(pooled, segment_job, seg_jobs)
    rows.append(("segment (classical: cascades + GrabCut + matte)", one, many))
    fgs = [decode(r["files"][f"s{i}_foreground.png"]) for i, r in enumerate(seg)]
    bgs = [decode(r["files"][f"s{i}_background.png"]) for i, r in enumerate(seg)]
    masks = [decode(r["files"][f"s{i}_mask.png"]) for i, r in enumerate(seg)]  # stage 1's, as the stages read it
    alb_jobs = [{"id": f"s{i}", "foreground": fg, "mask": person_region(m),
                 "params": AlbedoParams(method="retinex", variant=RETINEX_VARIANT, blend=0.2, seed=i),
                 "scales": ALBEDO["retinexScales"]} for i, (fg, m) in enumerate(zip(fgs, masks, strict=True))]
    one, _ = timed(serial, compute_albedo, alb_jobs)
    many, alb = timed(pooled, compute_albedo, alb_jobs)
    rows.append(("albedo (Multi-Scale Retinex 15/80/250 + blend)", one, many))
    albedos = [decode(r["files"][f"s{i}_albedo.png"]) for i, r in enumerate(alb)]
    soft = DegradationConfig.model_validate(
        {**DEGRADATION, "weights": {"softShading": 1.0, "hardShadow": 0.0, "specular": 0.0, "ambientOnly": 0.0}})
    deg_jobs = [{"id": f"s{i}", "albedo": a, "mask": alpha_of(fg) > 0, "params": degradation.draw_params(soft, i)}
                for i, (a, fg) in enumerate(zip(albedos, fgs, strict=True))]
    one, _ = timed(serial, compute_degraded, deg_jobs)
    many, deg = timed(pooled, compute_degraded, deg_jobs)
    rows.append(("degrade (soft shading, classical normals, Perlin)", one, many))
    degs = [decode(r["files"][f"s{i}_degraded.png"]) for i, r in enumerate(deg)]
    rec_jobs = [{"id": f"s{i}", "composite": "soft", "foreground": fg, "mask": m, "background": bg, "degraded": d}
                for i, (fg, bg, d, m) in enumerate(zip(fgs, bgs, degs, masks, strict=True))]
    one, _ = timed(serial, compute_composite, rec_jobs)
    many, _ = timed(pooled, compute_composite, rec_jobs)
    rows.append(("recombine (composite + PNG encode)", one, many))
    pooled.close()
    # decode cost for reference: what every stage pays per input
    data = [encode(img) for img in images]
    start = time.perf_counter()
    for d in data:
        decode_color(d)
    rows.append(("(PNG decode + checks, per input)", n / (time.perf_counter() - start), float("nan")))
    # fast vs straightforward Retinex, same inputs, same process
    fg = fgs[0]
    mask, image = alpha_of(fg) > 0, to_float(fg[..., :3])
    reps = 3
    start = time.perf_counter()
    for _ in range(reps):
        fast = ops.multiscale_retinex(image, mask, ALBEDO["retinexScales"], blur.fast_blur)
    t_fast = (time.perf_counter() - start) / reps
    start = time.perf_counter()
    ref = ops.multiscale_retinex(image, mask, ALBEDO["retinexScales"], blur.exact_blur)
    t_ref = time.perf_counter() - start
    retinex = {"fast_s": t_fast, "reference_s": t_ref, "speedup": t_ref / t_fast,
               "max_abs_diff": float(np.abs(fast - ref).max()), "mean_abs_diff": float(np.abs(fast - ref).mean()),
               "workers": float(workers)}
    return rows, retinex


def table(rows: list[tuple[str, float, float]], retinex: dict[str, float], n: int) -> str:
    w = int(retinex["workers"])
    lines = [f"| stage (CPU, {SIDE}², {n} images) | images/s, 1 process | images/s, pool of {w} | pool / 1 |",
             "| --- | ---: | ---: | ---: |"]
    for name, one, many in rows:
        if np.isnan(many):
            lines.append(f"| {name} | {one:.2f} | | |")
        else:
            lines.append(f"| {name} | {one:.2f} | {many:.2f} | {many / one:.2f}× |")
    lines += ["", f"| Multi-Scale Retinex at {SIDE}² (one image) | seconds |", "| --- | ---: |",
              f"| reference: `cv2.GaussianBlur` at full sigma | {retinex['reference_s']:.3f} |",
              f"| genfab: pyramid blur (`fast_blur`) | {retinex['fast_s']:.3f} |",
              f"| **speed-up** | **{retinex['speedup']:.1f}×** |",
              f"| largest difference of the outputs (0..1 scale) | {retinex['max_abs_diff']:.4f} |",
              f"| mean difference | {retinex['mean_abs_diff']:.5f} |"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    rows, retinex = run(args.images)
    body = table(rows, retinex, args.images)
    print(body)
    if args.write:
        env = (f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
               f"numpy {version('numpy')}, opencv-python-headless {version('opencv-python-headless')}.")
        out = ROOT / "benchmarks" / "results" / "relighting.md"
        out.write_text(f"# Relighting stages\n\n`python benchmarks/relighting.py --write`\n\n{env}\n\n{body}\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()

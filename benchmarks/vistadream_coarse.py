"""vistadream's coarse loop, its Gaussian parts alone: the scene as genfab grew it before and as it grows it now.

The coarse stage's seconds that are not a model's (benchmarks/results/vistadream.md §5: the 500-step
trainings, the candidates' hole masks) on one scene, side by side in one process on one GPU:

- `before`: every Gaussian of the scene trains in every 500-step training, and each of the
  `nFrames x coarseDenseMultiplier` candidate poses is drawn by its own `render` (colour, depth and
  opacity read back per pose);
- `now`: as the lab's `GS_Train_Tool` does, a training moves only the Gaussians its view added (the
  scene's earlier Gaussians stay as their own training left them: `GrowingScene(freeze_trained=True)`),
  and the candidates' hole ratios come from one rasterisation of 20 poses at a time, opacity only
  (`GrowingScene.hole_ratios`).

The scene: one synthetic 608x448 view (the outpainting canvas of a 512x384 input: a textured, smoothly
curved surface about 2 m away, every pixel supervised), trained 100 steps (the gaussians stage), then
genfab's own `expand` at the lab's defaults (8 views added, 100 candidate poses of the spiral trajectory,
32 px margin, 500 steps each, `coarseFallbackMode: closest`). The fill and the depth model are stand-ins
(noise in the holes; the surface's depth with noise), not timed: their seconds are the models' (§5).
Both loops get the same views' pictures; the scenes they grow differ (different trainings), so the
number of Gaussians added is printed beside the seconds.

    python benchmarks/vistadream_coarse.py [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "operator"), str(ROOT / "stages")]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from genfab.stages.gaussians.core import TrainSettings  # noqa: E402
from genfab.stages.scene import geometry  # noqa: E402
from genfab.stages.scene.depth import DepthResult  # noqa: E402
from genfab.stages.scene.frames import input_only_frames  # noqa: E402
from genfab.stages.scene.growing import HOLE_ALPHA, GrowingScene, scene_scale  # noqa: E402
from genfab.stages.vistadream.coarse_stage import View, expand, view_geometry  # noqa: E402
from genfab.stages.vistadream.selection import Policy  # noqa: E402
from genfab.stages.vistadream.trajectory import scene_extent, trajectory  # noqa: E402

WIDTH, HEIGHT = 608, 448
VIEWS, CANDIDATES, STEPS, INIT_STEPS, MARGIN = 8, 100, 500, 100, 32


def surface(width: int, height: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A photo-like texture and a smooth depth (metres) for it."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([128 + 100 * np.sin(xx / 47), 128 + 100 * np.cos(yy / 31), 128 + 60 * np.sin((xx + yy) / 23)], -1)
    rgb = np.clip(rgb + rng.normal(0, 12, rgb.shape), 0, 255).astype(np.uint8)
    depth = (2.0 + 0.4 * np.sin(xx / width * 3) * np.cos(yy / height * 2)).astype(np.float32)
    return rgb, depth


def timed(owner: Any, name: str, seconds: dict[str, float], sync: bool = True) -> None:
    """Replace `owner.name` by a wrapper adding its wall seconds (after a CUDA sync) to `seconds[name]`."""
    method: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        torch.cuda.synchronize()
        started = time.perf_counter()
        out = method(*args, **kwargs)
        torch.cuda.synchronize()
        seconds[name] += time.perf_counter() - started
        return out
    setattr(owner, name, wrapper)


def per_pose_ratios(scene: GrowingScene) -> Callable[..., list[float]]:
    """The candidates as they were drawn before: one `render` per pose (the scene's own, not a timed
    wrapper: their seconds are the candidates')."""
    render = scene.render

    def ratios(poses: np.ndarray, K: np.ndarray, width: int, height: int) -> list[float]:
        return [float((render(pose, K, width, height).alpha < HOLE_ALPHA).mean()) for pose in poses]
    return ratios


def grow(variant: str, settings: TrainSettings) -> dict[str, Any]:
    device = torch.device("cuda")
    rgb, depth = surface(WIDTH, HEIGHT, 0)
    K = geometry.intrinsics_from_fov(WIDTH, HEIGHT, 60.0)
    first = input_only_frames(rgb, depth, K)[0]
    scene = GrowingScene(settings, device, scene_scale(depth), freeze_trained=variant == "now")
    seconds: dict[str, float] = defaultdict(float)
    if variant == "before":
        scene.hole_ratios = per_pose_ratios(scene)  # type: ignore[method-assign]
    for name in ("hole_ratios", "train", "add_frame", "render"):
        timed(scene, name, seconds)
    scene.add_frame(first)
    scene.train(INIT_STEPS)
    init = {k: round(v, 3) for k, v in seconds.items()}
    seconds.clear()
    rng = np.random.default_rng(1)

    def fill(rgb: np.ndarray, mask: np.ndarray, seed: int) -> np.ndarray:
        out = rgb.copy()
        out[mask] = rng.integers(0, 256, (int(mask.sum()), 3), dtype=np.uint8)
        return out

    def predict(rgb: np.ndarray) -> DepthResult:
        h, w = rgb.shape[:2]
        return DepthResult(surface(w, h, 2)[1] + rng.normal(0, 0.01, (h, w)).astype(np.float32), view.K)

    Kv, width, height = view_geometry(first, MARGIN)
    view = View(Kv, width, height)
    extent = scene_extent(depth, K, 50.0)
    poses = trajectory("spiral", CANDIDATES, extent, 0.3, 0.4)
    policy = Policy(0.05, 0.25, 1, "closest")
    torch.cuda.synchronize()
    started = time.perf_counter()
    summary, _ = expand(scene, poses, view, policy, VIEWS, STEPS, fill, predict, 0)
    torch.cuda.synchronize()
    wall = time.perf_counter() - started
    return {"variant": variant, "init": init, "seconds": {k: round(v, 3) for k, v in seconds.items()},
            "wall": round(wall, 3), "views": len(summary.frames),
            "added": [f.added_splats for f in summary.frames], "splats": len(scene), "view": [width, height],
            "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)}


def same_ratios(settings: TrainSettings) -> float:
    """The largest difference between the batched hole ratios and the per-pose ones (same scene, poses)."""
    rgb, depth = surface(WIDTH, HEIGHT, 0)
    K = geometry.intrinsics_from_fov(WIDTH, HEIGHT, 60.0)
    first = input_only_frames(rgb, depth, K)[0]
    scene = GrowingScene(settings, torch.device("cuda"), scene_scale(depth))
    scene.add_frame(first)
    scene.train(INIT_STEPS)
    Kv, width, height = view_geometry(first, MARGIN)
    poses = trajectory("spiral", CANDIDATES, scene_extent(depth, K, 50.0), 0.3, 0.4)
    batched = scene.hole_ratios(poses, Kv, width, height)
    single = per_pose_ratios(scene)(poses, Kv, width, height)
    return float(np.max(np.abs(np.array(batched) - np.array(single))))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    import gsplat

    settings = TrainSettings()  # the gaussians block's defaults, as vistadream reads them
    warm = grow("now", settings)  # the kernels' first launches, not counted
    del warm
    runs = {v: grow(v, settings) for v in ("before", "now")}
    gap = same_ratios(settings)
    b, n = runs["before"], runs["now"]
    lines = [f"GPU {torch.cuda.get_device_name()}, torch {torch.__version__}, gsplat {gsplat.__version__}, "
             f"Python {platform.python_version()}",
             f"{VIEWS} views added ({n['view'][0]}x{n['view'][1]}), {CANDIDATES} candidates, "
             f"{STEPS} steps each; batched and per-pose hole ratios differ by at most {gap:.2e}", "",
             "| part | before s | now s | now / before |", "| --- | ---: | ---: | ---: |"]
    for part, label in (("hole_ratios", "candidates' hole ratios (8 x 100 poses)"),
                        ("train", f"trainings ({VIEWS} x {STEPS} steps)"), ("add_frame", "new Gaussians"),
                        ("render", "the chosen views' renders")):
        bs, ns = b["seconds"].get(part, 0.0), n["seconds"].get(part, 0.0)
        lines.append(f"| {label} | {bs:.2f} | {ns:.2f} | {ns / bs:.2f}x |" if bs else f"| {label} | - | {ns:.2f} | |")
    lines.append(f"| **the loop's wall** | {b['wall']:.2f} | {n['wall']:.2f} | **{n['wall'] / b['wall']:.2f}x** |")
    lines += ["", f"Gaussians at the end: before {b['splats']:,} (added {sum(b['added']):,}), "
              f"now {n['splats']:,} (added {sum(n['added']):,}); peak {n['peak_gib']} GiB"]
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "ratio_gap": gap, "table": lines}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

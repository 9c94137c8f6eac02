"""Where a 3DGS training step's time and memory go: genfab's trainer vs the plain gsplat loop.

Companion to benchmarks/gaussians.py (same scene, settings and loops). Run on a CUDA GPU:

    python benchmarks/gaussians_profile.py --steps 3000 --size 384 --views 24

For each loop it prints: host time per step in windows of the run, the step and Gaussian count at
which peak GPU memory was reached, and a torch.profiler breakdown of one window by phase (gsplat
rasterization, loss, backward, Adam, densification strategy): host time, GPU kernel time and the
number of host<->device synchronisations per step.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "operator"), str(ROOT / "stages"), str(ROOT / "benchmarks")]

import torch  # noqa: E402
from gaussians import genfab_stage, plain_gsplat_loop  # noqa: E402

from genfab.stages.gaussians import core, procedural, train  # noqa: E402
from genfab.stages.gaussians.core import TrainSettings  # noqa: E402


def with_ssim(name: str) -> Callable[..., dict[str, Any]]:
    """genfab's trainer with another SSIM implementation from losses.py (for comparisons)."""
    def run(*args: Any, **kwargs: Any) -> dict[str, Any]:
        from genfab.stages.gaussians import losses

        saved, core.ssim = core.ssim, getattr(losses, name)
        try:
            return genfab_stage(*args, **kwargs)
        finally:
            core.ssim = saved
    return run


def with_optimizer_step(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """genfab's trainer with each optimiser stepped by its own `step()` (before `core.adam_steps`)."""
    def plain_steps(optimizers: list[torch.optim.Optimizer]) -> None:
        for opt in optimizers:
            opt.step()
            opt.zero_grad(set_to_none=True)

    saved, core.adam_steps = core.adam_steps, plain_steps  # type: ignore[assignment]
    try:
        return genfab_stage(*args, **kwargs)
    finally:
        core.adam_steps = saved  # type: ignore[assignment]


def with_gsplat_colors(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """genfab's trainer with gsplat evaluating the SH colours (before `core.view_colors`)."""
    saved, train.SceneTrainer.colors_here = train.SceneTrainer.colors_here, False
    try:
        return genfab_stage(*args, **kwargs)
    finally:
        train.SceneTrainer.colors_here = saved


LOOPS: dict[str, Callable[..., dict[str, Any]]] = {
    "plain": plain_gsplat_loop, "genfab": genfab_stage, "genfab-conv": with_ssim("ssim_conv"),
    "genfab-band": with_ssim("ssim_band"), "genfab-optimizer-step": with_optimizer_step,
    "genfab-gsplat-colors": with_gsplat_colors}
PHASES = ("rasterize", "loss", "backward", "adam", "strategy.pre", "strategy.post")


def labelled(label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with torch.profiler.record_function(label):
            return fn(*args, **kwargs)
    return wrapper


def install_labels() -> None:
    """Wrap each phase's entry point in a profiler range (both loops call these by module lookup)."""
    import gsplat
    import torchmetrics.image
    from gsplat.strategy import DefaultStrategy, MCMCStrategy

    gsplat.rasterization = labelled("rasterize", gsplat.rasterization)
    core.image_loss = labelled("loss", core.image_loss)
    ssim_cls = torchmetrics.image.StructuralSimilarityIndexMeasure
    ssim_cls.forward = labelled("loss", ssim_cls.forward)  # type: ignore[method-assign]
    torch.Tensor.backward = labelled("backward", torch.Tensor.backward)  # type: ignore[method-assign]
    torch.optim.Adam.step = labelled("adam", torch.optim.Adam.step)  # type: ignore[method-assign]
    for cls in (DefaultStrategy, MCMCStrategy):
        cls.step_pre_backward = labelled("strategy.pre", cls.step_pre_backward)  # type: ignore[method-assign]
        cls.step_post_backward = labelled("strategy.post", cls.step_post_backward)  # type: ignore[method-assign]


class StopRun(Exception):
    """Ends a profiled run once its window is recorded."""


class StepWatch:
    """Host time per step (the loops synchronise every step inside gsplat, so host time per step is
    the step's wall time) and where peak memory was reached."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.last = device, time.perf_counter()
        self.times: list[float] = []
        self.peak, self.peak_step, self.peak_n = 0, -1, 0

    def __call__(self, step: int, params: dict[str, torch.nn.Parameter]) -> None:
        now = time.perf_counter()
        self.times.append(now - self.last)
        self.last = now
        peak = torch.cuda.max_memory_allocated(self.device)
        if peak > self.peak:
            self.peak, self.peak_step, self.peak_n = peak, step, len(params["means"])


def profile_window(loop: Callable[..., dict[str, Any]], data: Any, images: Any, s: TrainSettings,
                   device: torch.device, start: int, steps: int, trace: Path | None) -> dict[str, Any]:
    prof = torch.profiler.profile(
        activities=[torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA],
        schedule=torch.profiler.schedule(wait=start, warmup=5, active=steps, repeat=1))
    def on_step(step: int, params: dict[str, torch.nn.Parameter]) -> None:
        prof.step()
        if step >= start + 5 + steps:
            raise StopRun

    with prof, contextlib.suppress(StopRun):
        loop(data, images, s, device, on_step=on_step)
    if trace is not None:
        prof.export_chrome_trace(str(trace))
    events = prof.key_averages()
    out: dict[str, Any] = {}
    for phase in PHASES:
        match = [e for e in events if e.key == phase]
        out[phase] = (sum(e.cpu_time_total for e in match) / steps / 1000,
                      sum(e.device_time_total for e in match) / steps / 1000)
    kernels = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA]
    out["gpu_busy_ms"] = sum(e.self_device_time_total for e in kernels) / steps / 1000
    out["kernels"] = sum(e.count for e in kernels) / steps
    out["syncs"] = sum(e.count for e in events if e.key in (
        "cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")) / steps
    out["dtoh"] = sum(e.count for e in events if "DtoH" in e.key or e.key == "aten::_local_scalar_dense") / steps
    out["kernels_top"] = sorted(((e.key, e.self_device_time_total / steps / 1000, e.count / steps) for e in kernels),
                                key=lambda r: -r[1])[:15]
    out["top"] = sorted(((e.key, e.self_cpu_time_total / steps / 1000, e.count / steps) for e in events
                         if e.device_type != torch.autograd.DeviceType.CUDA and e.key not in PHASES),
                        key=lambda r: -r[1])[:25]
    return out


def memory_at_step(loop: Callable[..., dict[str, Any]], data: Any, images: Any, s: TrainSettings,
                   device: torch.device, step: int) -> None:
    """Replays the allocator's trace of one training step: the peak, and what was live at it."""
    record = torch.cuda.memory._record_memory_history
    found: dict[str, Any] = {}

    def on_step(i: int, params: dict[str, torch.nn.Parameter]) -> None:
        if i == step - 1:
            torch.cuda.synchronize(device)
            found["base"], found["n"] = torch.cuda.memory_allocated(device), len(params["means"])
            record(enabled="all", context="all", stacks="python", max_entries=500_000)
        elif i == step:
            torch.cuda.synchronize(device)
            found["snapshot"] = torch.cuda.memory._snapshot()
            record(enabled=None)
            raise StopRun

    with contextlib.suppress(StopRun):
        loop(data, images, s, device, on_step=on_step)
    live: dict[int, tuple[int, str]] = {}
    now = peak = found["base"]
    at_peak: dict[int, tuple[int, str]] = {}
    for event in found["snapshot"]["device_traces"][device.index or 0]:
        if event["action"] == "alloc":
            frames = [f for f in event.get("frames", []) if "/torch/" not in f["filename"]]
            label = f"{Path(frames[0]['filename']).name}:{frames[0]['line']} {frames[0]['name']}" if frames \
                else "<no Python frame: autograd engine>"
            live[event["addr"]] = (event["size"], label)
            now += event["size"]
            if now > peak:
                peak, at_peak = now, dict(live)
        elif event["action"] == "free_requested" and event["addr"] in live:
            now -= live.pop(event["addr"])[0]
    by_label: dict[str, list[int]] = {}
    for size, label in at_peak.values():
        by_label.setdefault(label, []).append(size)
    mib = 2**20
    print(f"  step {step}: {found['n']:,} Gaussians; allocated before the step {found['base'] / mib:.1f} MiB; "
          f"peak in the step {peak / mib:.1f} MiB (+{(peak - found['base']) / mib:.1f}); live at the peak, "
          "allocated during the step:")
    for label, sizes in sorted(by_label.items(), key=lambda kv: -sum(kv[1]))[:14]:
        print(f"    {sum(sizes) / mib:8.2f} MiB  {len(sizes):4d}x  {label[:100]}"
              f"  [{', '.join(f'{v / mib:.2f}' for v in sorted(sizes, reverse=True)[:6])}]")


def time_ssim(height: int, width: int, device: torch.device) -> dict[str, tuple[float, float]]:
    """Forward + backward of each SSIM implementation on one [1, 3, H, W] image: GPU time per call
    (30 calls queued back to back, so host overhead hides) and the memory the call adds at its peak."""
    from torchmetrics.image import StructuralSimilarityIndexMeasure

    from genfab.stages.gaussians import fused_ssim, losses

    metric = StructuralSimilarityIndexMeasure(data_range=1.0).to(device)

    def cudnn(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # `ssim_conv` as it was, on cuDNN
        with torch.backends.cudnn.flags(enabled=True):
            return losses._ssim_from_blurred(losses.conv_blur(losses._stats(a, b)), a.shape[1])

    variants: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
        "torchmetrics": metric, "conv (cuDNN)": cudnn, "conv": losses.ssim_conv, "band": losses.ssim_band,
        "fused (Triton)": fused_ssim.fused_ssim}
    target = torch.rand(1, 3, height, width, device=device)
    out: dict[str, tuple[float, float]] = {}
    for name, fn in variants.items():
        pred = (target + 0.05 * torch.randn_like(target)).clamp(0, 1).requires_grad_()
        for _ in range(5):
            fn(pred, target).backward()
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(30):
            fn(pred, target).backward()
        end.record()
        torch.cuda.synchronize(device)
        out[name] = (start.elapsed_time(end) / 30, (torch.cuda.max_memory_allocated(device) - base) / 2**20)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--views", type=int, default=24)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--window", type=int, nargs="*", default=[700, 2200], help="first step of each profiled "
                    "window (100 steps)")
    ap.add_argument("--trace-dir", type=Path, default=None, help="write Chrome traces here")
    ap.add_argument("--loops", nargs="+", default=["plain", "genfab"], choices=list(LOOPS))
    ap.add_argument("--memory-step", type=int, default=1490, help="replay the allocator trace of this step")
    ap.add_argument("--ssim-sizes", nargs="*", default=["128x128", "384x384", "1024x1024", "1920x1080"])
    args = ap.parse_args()
    device = torch.device("cuda", torch.cuda.current_device())
    for size in args.ssim_sizes:
        w, h = (int(v) for v in size.split("x"))
        print(f"SSIM forward+backward at {size}: GPU ms per call / added peak MiB: " + ", ".join(
            f"{k} {ms:.3f} / {mib:.1f}" for k, (ms, mib) in time_ssim(h, w, device).items()))
    scene = procedural.generate(args.seed, n_views=args.views, width=args.size, height=args.size, device=device)
    data, images = scene.scene_data(), scene.images
    s = TrainSettings(steps=args.steps, background=procedural.BACKGROUND)
    train.train_scenes([(data, images)], TrainSettings(steps=50), device, packing="sequential", evaluate=False)
    for name in args.loops:
        watch = StepWatch(device)
        result = LOOPS[name](data, images, s, device, on_step=watch)
        t = watch.times
        windows = [(a, min(a + 500, len(t))) for a in range(0, len(t), 500)]
        print(f"\n== {name}: {result['seconds']:.2f} s, peak {result['peak_bytes'] / 2**20:.1f} MiB at step "
              f"{watch.peak_step} with {watch.peak_n:,} Gaussians; final {result['gaussians']:,}; "
              f"PSNR {result['psnr']:.2f}")
        print("host ms/step by window: " + ", ".join(
            f"{a}-{b}: {1000 * sum(t[a:b]) / (b - a):.2f}" for a, b in windows))
    if args.memory_step:
        for name in args.loops:
            print(f"\n== {name}: memory")
            memory_at_step(LOOPS[name], data, images, s, device, args.memory_step)
    install_labels()
    for start in args.window:
        for name in args.loops:
            trace = args.trace_dir / f"{name}_{start}.json" if args.trace_dir else None
            r = profile_window(LOOPS[name], data, images, s, device, start, 100, trace)
            print(f"\n== {name}, steps {start}-{start + 100}: GPU busy {r['gpu_busy_ms']:.2f} ms/step, "
                  f"{r['kernels']:.0f} kernels/step, {r['syncs']:.1f} syncs/step, {r['dtoh']:.1f} DtoH/step")
            print("phase            host ms/step   GPU ms/step")
            for phase in PHASES:
                print(f"{phase:16} {r[phase][0]:12.3f} {r[phase][1]:12.3f}")
            for title, rows in (("top GPU kernels", r["kernels_top"]), ("top host ops", r["top"])):
                print(f"{title} (self ms/step, calls/step):")
                for key, ms, calls in rows:
                    print(f"  {key[:90]:90} {ms:8.3f} {calls:6.1f}")


if __name__ == "__main__":
    main()

"""SEVA's expansion: SEVA's own network (as `seva.utils.load_model` builds it, sampled by SEVA's
`img2trajvid` under its autocast) against the same network with genfab's `worldexplorer.seva.runtime`
options applied through the adapter (`genfab.stages.worldexplorer.seva_speed`), on SEVA's own code at
production size with random bf16 weights. Needs CUDA and the code `scripts/gpu_tier.py
--prepare-research` carries (`.research/src` on PYTHONPATH, its wheels installed).

- `step`: one denoiser forward of one 21-frame chunk (2 x 21 latents of 72 x 72: guidance's two halves in
  one batch, as SEVA's `VanillaCFG.prepare_inputs` makes them) per variant: ms per forward (median),
  first-call seconds (compilation), peak memory, and the forward's deviation from SEVA's own.
- `sample`: one worldexplorer expansion sample through the adapter (eight 576² scaffold views in,
  `--frames` outward trajectory frames out; `--task scaffold`: one `single_image` scaffold sample instead,
  the input image in and the rest of a `--frames`-view 360° sweep turning in place out, as the scaffold
  stage asks SEVA for it), `--steps` steps, SEVA's two-pass procedural sampling), SEVA
  as it is first (its input views as PNG paths, its mp4s and PNGs written and the PNGs read back, as
  SEVA's own `img2trajvid` does), then each variant on the same network, inputs and seed, the
  adapter's default `in_memory` (views and frames as arrays, no files): seconds per sample (after a
  one-step warm-up call on a short trajectory that compiles), peak memory, and the frames' PSNR and
  the final latents' cosine against SEVA's own run. A second table splits each sample's time into
  SEVA's network, its autoencoder's encoding and decoding, its CLIP conditioner and the rest (SEVA's
  host-side work: chunking, camera conditioning, copies), each timed between two synchronisations of
  the GPU.
  `--profile DIR` then runs the last variant once more at one step under cProfile (the host-side part
  does not depend on the step count) and writes the stats and their top functions to DIR.

    python3 scripts/gpu_tier.py --group research --dir .research/wheels   # installs into /tmp/genfab-gpu-site
    export PYTHONPATH=/tmp/genfab-gpu-site:operator:stages:.:.research/src
    python benchmarks/seva_speed.py step
    python benchmarks/seva_speed.py sample --frames 120 --steps 50 --variants compile
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import io
import pstats
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genfab.api.scenejob import SevaRuntime
from genfab.stages.worldexplorer import seva_speed

VARIANTS: dict[str, SevaRuntime | None] = {
    "seva": None,
    "rewrite-flash": SevaRuntime(compile="off", attention="flash"),
    "rewrite-cudnn": SevaRuntime(compile="off", attention="cudnn"),
    "compile-flash": SevaRuntime(compile="model", attention="flash"),
    "compile": SevaRuntime(compile="model", attention="cudnn"),
    "compile-all": SevaRuntime(compile="all", attention="cudnn"),
}
"""Name -> the runtime options (None: SEVA's own network, nothing applied)."""
T, SIDE, LATENT = 21, 576, 72


def network() -> Any:
    """SEVA's network as `load_model` makes it (bf16 weights), random, on the GPU, in its wrapper."""
    from seva.model import Seva, SevaParams, SGMWrapper

    torch.manual_seed(0)
    with torch.device("cuda"):
        return SGMWrapper(Seva(SevaParams()).to(torch.bfloat16).eval())


def chunk_inputs() -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """One chunk's denoiser input as SEVA's sampler hands it to the network: (x, timestep index, cond)."""
    g = torch.Generator("cuda").manual_seed(1)
    n = 2 * T
    x = torch.randn(n, 4, LATENT, LATENT, device="cuda", generator=g)
    mask = torch.zeros(n, 1, LATENT, LATENT, device="cuda")
    mask[T:T + 8] = 1.0  # the conditional half's eight input views
    plucker = torch.randn(n, 6, LATENT, LATENT, device="cuda", generator=g)
    cond = {"crossattn": torch.randn(n, 1, 1024, device="cuda", generator=g),
            "concat": torch.cat([mask, plucker], 1), "dense_vector": plucker}
    return x, torch.full((n,), 500, device="cuda"), cond


def timed(call: Callable[[], Any], runs: int) -> tuple[float, float, float, Any]:
    """(first call s, median s of `runs` later calls, peak GiB, the last output)."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    out = call()
    torch.cuda.synchronize()
    first = time.perf_counter() - started
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        out = call()
        torch.cuda.synchronize()
        seconds.append(time.perf_counter() - started)
    return first, statistics.median(seconds), torch.cuda.max_memory_allocated() / 2**30, out


def psnr(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0))


class Breakdown:
    """Seconds spent inside wrapped calls, by part; each call is timed between two synchronisations."""

    PARTS = ("network", "VAE encode", "VAE decode", "CLIP")

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(self, owner: Any, attribute: str, part: str) -> None:
        inner = getattr(owner, attribute)

        def timed(*args: Any, **kwargs: Any) -> Any:
            torch.cuda.synchronize()
            started = time.perf_counter()
            out = inner(*args, **kwargs)
            torch.cuda.synchronize()
            self.seconds[part] += time.perf_counter() - started
            return out

        setattr(owner, attribute, timed)

    def row(self, name: str, total: float) -> str:
        parts = [self.seconds[p] for p in self.PARTS]
        return f"| `{name}` | {' | '.join(f'{s:.1f}' for s in parts)} | {total - sum(parts):.1f} | {total:.1f} |"


def profiled(call: Callable[[], Any], folder: Path, name: str) -> None:
    """Run `call` under cProfile; the stats and the top functions (by own time and by cumulative time)
    go to `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    profile = cProfile.Profile()
    profile.runcall(call)
    torch.cuda.synchronize()
    profile.dump_stats(str(folder / f"{name}.prof"))
    text = io.StringIO()
    for order in ("tottime", "cumulative"):
        pstats.Stats(profile, stream=text).sort_stats(order).print_stats(40)
    (folder / f"{name}.txt").write_text(text.getvalue())
    print(text.getvalue()[:6000], flush=True)


def tuned(args: argparse.Namespace, name: str) -> list[str]:
    """`--cudnn-benchmark`: cuDNN times its convolution algorithms at each new shape and keeps the
    fastest, for every variant but SEVA as it is (SEVA leaves the flag at PyTorch's default, off)."""
    torch.backends.cudnn.benchmark = bool(args.cudnn_benchmark and name != "seva")
    return ["cudnn.benchmark"] if torch.backends.cudnn.benchmark else []


def variant_network(base: Any, name: str) -> tuple[Any, list[str]]:
    wrapper = copy.deepcopy(base)
    options = VARIANTS[name]
    applied = [] if options is None else seva_speed.apply(wrapper.module, options, torch.device("cuda"))
    return wrapper, applied


def kernels(call: Callable[[], Any], name: str) -> None:
    """One more forward under torch.profiler: the GPU time by kernel, largest first (where the time goes)."""
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode(), torch.autocast("cuda"), profile(
            activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], record_shapes=True) as prof:
        call()
        torch.cuda.synchronize()
    print(f"\n{name}: GPU time by kernel, one forward", flush=True)
    events = prof.key_averages()
    kernels_only = [e for e in events if e.device_type.name == "CUDA"]
    print(type(events)(kernels_only).table(sort_by="self_device_time_total", row_limit=25, max_name_column_width=90),
          flush=True)
    # which convolution shapes take the time (the operator with its input shapes, on the GPU below it)
    convolutions = [e for e in prof.key_averages(group_by_input_shape=True) if e.key == "aten::convolution"]
    convolutions.sort(key=lambda e: e.device_time_total, reverse=True)
    print(f"{name}: convolutions by input shapes (GPU time below each call)", flush=True)
    for e in convolutions[:12]:
        print(f"  {e.device_time_total / 1e3:8.3f} ms  x{e.count:<3d} {e.input_shapes}", flush=True)


def step(args: argparse.Namespace) -> list[str]:
    base = network()
    x, t, cond = chunk_inputs()
    rows = ["| variant | applied | ms / forward | vs SEVA | first call s | peak GiB | max abs dev | cosine |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    reference: torch.Tensor | None = None
    base_ms = 0.0
    for name in args.variants:
        wrapper, applied = variant_network(base, name)
        applied += tuned(args, name)
        with torch.inference_mode(), torch.autocast("cuda"):
            first, seconds, peak, out = timed(partial(wrapper, x, t, cond, num_frames=T), args.runs)
        out = out.float()
        if reference is None:
            reference, base_ms = out, seconds * 1e3
        dev, cos = float((out - reference).abs().max()), cosine(out, reference)
        rows.append(f"| `{name}` | {', '.join(applied) or 'SEVA as it is'} | {seconds * 1e3:.1f} | "
                    f"{seconds * 1e3 / base_ms:.3f}x | {first:.1f} | {peak:.2f} | {dev:.2e} | {cos:.6f} |")
        print(rows[-1], flush=True)
        if args.kernels:
            kernels(partial(wrapper, x, t, cond, num_frames=T), name)
        wrapper = None
        torch.cuda.empty_cache()
    return rows


def sample(args: argparse.Namespace, root: Path) -> list[str]:
    from benchmarks.research_adapters import photo
    from scripts.tiny_models import save_random_seva

    from genfab.stages.models.placement import Placement
    from genfab.stages.scene.geometry import intrinsics_from_fov
    from genfab.stages.worldexplorer.scaffold_geometry import cam_T_world
    from genfab.stages.worldexplorer.scaffold_stage import sweep_poses
    from genfab.stages.worldexplorer.seva_adapter import PosedView, Seva, seva_autoencoder, seva_conditioner
    from genfab.stages.worldexplorer.trajectories import scaffold_trajectory

    seva_dir, vae_dir, clip_dir = save_random_seva(root)
    placement = Placement(torch.device("cuda"), torch.bfloat16, "none")
    apply = seva_speed.apply
    seva_speed.apply = lambda *_: []  # type: ignore[assignment]  # the baseline: SEVA's own network
    started = time.perf_counter()
    model = Seva(seva_dir, placement, seva_autoencoder(vae_dir, placement), seva_conditioner(clip_dir, placement),
                 args.steps, 3.0, 2.0)
    load_s = time.perf_counter() - started
    seva_speed.apply = apply  # type: ignore[assignment]
    pristine = copy.deepcopy(model.model.module)
    latents: list[torch.Tensor] = []
    decode = model.ae.decode

    def recording(z: torch.Tensor, *rest: Any) -> Any:  # the final latents of each chunk
        latents.append(z.detach().float().cpu())
        return decode(z, *rest)

    model.ae.decode = recording
    breakdown = Breakdown()
    for owner, attribute, part in ((model.model, "forward", "network"), (model.ae, "encode", "VAE encode"),
                                   (model.ae, "decode", "VAE decode"), (model.conditioner, "forward", "CLIP")):
        breakdown.wrap(owner, attribute, part)
    K = intrinsics_from_fov(SIDE, SIDE, 60.0)
    if args.task == "scaffold":  # the scaffold stage's call: the input image, then the sweep's other views
        poses = sweep_poses(args.frames)
        inputs = [PosedView(K, poses[0], photo(SIDE, SIDE))]
        targets = [PosedView(K, pose) for pose in poses[1:]]
    else:
        inputs = [PosedView(K, cam_T_world(v), np.ascontiguousarray(np.roll(photo(SIDE, SIDE), 64 * v, axis=1)))
                  for v in range(8)]
        targets = [PosedView(K, pose) for pose in scaffold_trajectory("outward", args.frames, 0.3)]
    rows = ["| variant | applied | s / sample | vs SEVA | warm-up s | peak GiB | PSNR vs SEVA | latent cosine |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    parts = ["| variant | " + " s | ".join(Breakdown.PARTS) + " s | rest s | s / sample |",
             "| --- |" + " ---: |" * (len(Breakdown.PARTS) + 2)]
    ref_frames: list[np.ndarray] = []
    ref_latents: torch.Tensor | None = None
    base_s = 0.0
    for name in ["seva", *args.variants]:
        warm = 0.0
        applied: list[str] = []
        # SEVA as it is reads PNGs, writes its mp4s and PNGs and the adapter reads the PNGs back; the
        # variants hand over the same pixels in memory (the adapter's default)
        model.in_memory = name != "seva"
        if name != "seva":
            model.model.module = copy.deepcopy(pristine)
            seva_speed.uncompile_autoencoder(model.ae)
            applied = seva_speed.apply(model.model.module, VARIANTS[name] or SevaRuntime(), torch.device("cuda"),
                                       model.ae) + tuned(args, name)
            started = time.perf_counter()
            # compiles: every chunk has the same shape (21 frames, padded), whatever the trajectory's length
            model.steps = 1
            model(inputs, targets[:args.warm_frames], 0, root / f"warm-{name}")
            model.steps = args.steps
            torch.cuda.synchronize()
            warm = time.perf_counter() - started
        latents.clear()
        breakdown.seconds.clear()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        frames = model(inputs, targets, 0, root / name)
        torch.cuda.synchronize()
        seconds, peak = time.perf_counter() - started, torch.cuda.max_memory_allocated() / 2**30
        z = torch.cat([x.flatten() for x in latents])
        if name == "seva":
            ref_frames, ref_latents, base_s = frames, z, seconds
        assert ref_latents is not None
        quality = min(psnr(a, b, 255.0) for a, b in zip(frames, ref_frames, strict=True))
        applied += ["in memory"] if model.in_memory else []
        rows.append(f"| `{name}` | {', '.join(applied) or 'SEVA as it is'} | {seconds:.1f} | {seconds / base_s:.3f}x | "
                    f"{warm:.1f} | {peak:.2f} | {quality:.2f} | {cosine(z, ref_latents):.6f} |")
        parts.append(breakdown.row(name, seconds))
        print(rows[-1], parts[-1], sep="\n", flush=True)
    if args.profile is not None:
        model.steps = 1
        profiled(lambda: model(inputs, targets, 0, root / "profiled"), args.profile, f"sample-{name}")
    rows += ["", *parts]
    task = (f"a {args.frames}-view sweep (single_image scaffold)" if args.task == "scaffold"
            else f"{args.frames} outward frames (expansion)")
    rows += ["", f"{task}, {args.steps} steps, {len(inputs)} x {SIDE}² views in; SEVA, VAE and CLIP load "
             f"{load_s:.1f} s; PSNR: the lowest over the frames (8-bit PNGs)"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=["step", "sample"])
    parser.add_argument("--variants", type=lambda s: s.split(","), default=None,
                        help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--runs", type=int, default=5, help="step: timed forwards per variant")
    parser.add_argument("--kernels", action="store_true",
                        help="step: print each variant's GPU time by kernel (one more forward under torch.profiler)")
    parser.add_argument("--cudnn-benchmark", action="store_true",
                        help="torch.backends.cudnn.benchmark on for the variants (not for SEVA as it is)")
    parser.add_argument("--task", choices=["expansion", "scaffold"], default="expansion",
                        help="sample: an expansion sample, or a single_image scaffold sample")
    parser.add_argument("--frames", type=int, default=120,
                        help="sample: trajectory frames (expansion.numFrames; --task scaffold: seva.sweepFrames)")
    parser.add_argument("--steps", type=int, default=50, help="sample: denoising steps (seva.steps)")
    parser.add_argument("--warm-frames", type=int, default=24,
                        help="sample: trajectory frames of each variant's one-step warm-up call (compiles)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="sample: cProfile one more one-step run of the last variant into this folder")
    args = parser.parse_args()
    if args.variants is None:
        args.variants = list(VARIANTS) if args.part == "step" else ["compile"]
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    with tempfile.TemporaryDirectory() as tmp:
        lines = step(args) if args.part == "step" else sample(args, Path(tmp))
    print("\n".join(["", *lines, "", f"GPU {torch.cuda.get_device_name()}, torch {torch.__version__}, "
                     f"SEVA fe19948e, diffusers {version('diffusers')}, open_clip {version('open_clip_torch')}; "
                     f"command: python {' '.join(sys.argv)}"]))


if __name__ == "__main__":
    main()

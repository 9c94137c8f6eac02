"""vistadream the lab's way: its GPU work on the lab's code's public origin, part by part, to set beside
genfab's vistadream stages (benchmarks/vistadream_e2e.py) at the same settings and on the same image.

The lab's document is rerun-io/vistadream's `docs/single_img_pipeline.md` with coarse selection options
added; the lab's code is that repository with changes that are not published. Its pipeline
(`SingleImagePipeline`) cannot run here whole: it imports simplecv at 10780d8a and monopriors'
`MogeV1Predictor`, and no snapshot that can be fetched holds either (simplecv's public history is one
commit of August 2024; monoprior's public HEAD predates its MoGe predictor), and it logs to Rerun at
every step. So this script runs the pipeline's GPU work as its `_initialize`, `_coarse` and
`_render_splats` do, in their order and at their sizes, on rerun-io/vistadream's own components at
fed1dcd (the settings are its defaults, which genfab's are):

- outpaint: `FluxInpainting(FluxInpaintingConfig())`: BFL's FLUX code (not diffusers), 25 steps,
  guidance 30, the transformer offloaded to the CPU between fills (its default `offload`; `--no-offload`
  keeps both models on the GPU, a setting a lab with a large GPU can change); one fill of the image
  fitted to 512 with a 0.2 border;
- depth: MoGe v1's own `MoGeModel.infer` at its defaults (what `MogeV1Predictor` wraps), on the
  outpainting;
- gaussians: `Gaussian_Scene` and `GS_Train_Tool(iters=100)` on the input and outpainting frames;
- coarse, `n_frames - 2` = 8 views, each: `_render_for_inpaint` of every pose of
  `_generate_trajectory(scene, n_frames * 10)` and of the chosen one (32 px margin), a fill, a depth
  pass, `Smooth_Connect_Tool._affine_dpt_to_GS`, the masks, `_add_trainable_frame`,
  `GS_Train_Tool(iters=500)`;
- render: `_render_RGBD` over `_generate_trajectory(scene, min(25 x frames, 150))` (150 renders).

Production-size models with random weights: FLUX.1-Fill-dev's 12B transformer and its autoencoder built
by BFL's own classes in bf16 (the transformer) and fp32 (the autoencoder, as its file loads) and handed
to `FluxInpainting` in place of the 24 GB file its `load_flow_model` reads; the empty-prompt embeddings
it reads (`./ckpt/txt.pt`, `vec.pt`) random at T5-XXL's and CLIP-L's shapes; MoGe-1 ViT-L through
`scripts.tiny_models.save_random_moge`. The pictures mean nothing; every part does its real work on the
real shapes. Stand-ins, for imports only: `rerun` (`GS_Train_Tool` imports it and logs only with
`log=True`, which the pipeline never passes; the pipeline's own per-frame logging is left out, which
can only flatter the lab's way) and `simplecv.print_utils` (the spiral trajectory imports `debug_numpy`
and never calls it); `monopriors.depth_utils` is monoprior's own file at its public HEAD. The view
picked among the candidates follows the lab's policy (the largest hole ratio at most 0.25, at least
0.05, not next to a picked pose) with its `closest` fallback, so on random weights every view is added,
as genfab's e2e `coarse` case does (`coarseFallbackMode: closest`). Model loads are not timed: the lab's
way is each part's own time, as everywhere in the cost table; gsplat's kernels are built before the
timed parts (both scripts do, as an image ships them). The result is written after the initial scene
and after each view (`"complete": false`), so a run cut off by its machine's time leaves what it
measured; `compare` then counts the finished views' mean for every planned view and says so.

    .venv/bin/python benchmarks/vistadream_lab.py prepare [--mirrors DIR]    # network: .bench/vistadream-lab
    .venv/bin/python scripts/gpu_tier.py --prepare-research --package moge --package utils3d --mirrors DIR
    python3 benchmarks/vistadream_lab.py run --wheels .gpuwheels-min --json lab.json   # the GPU machine
    python3 benchmarks/vistadream_e2e.py --models /tmp/vd-models --cases coarse --scenes 2 --json genfab.json
    python3 benchmarks/vistadream_lab.py compare lab.json genfab.json          # per stage, genfab / the lab's way
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# run as a script, its own folder leads sys.path, where benchmarks/vistadream.py would hide the lab's package
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
from benchmarks.gaussians_simple_trainer import gpu_tier  # noqa: E402  (scripts/gpu_tier.py, loaded by path)

BENCH = ROOT / ".bench" / "vistadream-lab"
SRC, WHEELS = BENCH / "src", BENCH / "wheels"
VISTADREAM = ("rerun-io/vistadream", "fed1dcd3ad6f41c5b1917bcc60e885b0be9da3a6")
MONOPRIOR = ("pablovela5620/monoprior", "9cf21e1c54cc2e1e7b751d2f2244b001042c65cc")
EXTRA_WHEELS = ["einops==0.8.1", "scikit-learn==1.8.0", "joblib==1.5.3", "threadpoolctl==3.6.0"]
"""What the lab's components import beyond the GPU tier's wheels (jaxtyping, plyfile, omegaconf,
torchmetrics, tqdm) and the GPU image (torch, numpy, scipy, OpenCV, Pillow); only what the image lacks
is installed there."""
STAGES = ("outpaint", "depth", "gaussians", "coarse", "render")
"""genfab's vistadream stages, in order: each part of the lab's way is counted under the stage doing
the same work."""
RERUN_STAND_IN = '''"""Import stand-in for rerun-sdk (genfab benchmarks/vistadream_lab.py): every name is a no-op.
The lab's training imports rerun and logs only with log=True, which its pipeline never passes."""


class _NoOp:
    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _NoOp()

    def __getattr__(self, name):
        return _NoOp()


def __getattr__(name):
    return _NoOp()
'''
SIMPLECV_STAND_IN = '''"""Import stand-in for simplecv's print_utils (genfab benchmarks/vistadream_lab.py): the lab's
spiral trajectory imports debug_numpy and never calls it."""


def debug_numpy(*args, **kwargs):
    return None
'''


def prepare(args: argparse.Namespace) -> int:
    tier = gpu_tier()
    shutil.rmtree(BENCH, ignore_errors=True)
    for folder in (SRC, WHEELS):
        folder.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        tier.extract_upstream(VISTADREAM[0], VISTADREAM[1], ["src/vistadream"], Path(tmp), args.mirrors)
        shutil.copytree(Path(tmp) / "src" / "vistadream", SRC / "vistadream")
        tier.extract_upstream(MONOPRIOR[0], MONOPRIOR[1], ["monopriors/depth_utils.py"], Path(tmp), args.mirrors)
        (SRC / "monopriors").mkdir()
        shutil.copy(Path(tmp) / "monopriors" / "depth_utils.py", SRC / "monopriors" / "depth_utils.py")
    # monopriors' own __init__ turns on beartype for the package: the depth utilities alone are used
    (SRC / "monopriors" / "__init__.py").write_text('"""monoprior\'s depth_utils alone."""\n')
    for gui in ("gradio",):
        shutil.rmtree(SRC / "vistadream" / gui, ignore_errors=True)
    (SRC / "rerun").mkdir()
    (SRC / "rerun" / "__init__.py").write_text(RERUN_STAND_IN)
    (SRC / "rerun" / "blueprint.py").write_text(RERUN_STAND_IN)
    (SRC / "simplecv").mkdir()
    (SRC / "simplecv" / "__init__.py").write_text("")
    (SRC / "simplecv" / "print_utils.py").write_text(SIMPLECV_STAND_IN)
    if tier.pip(tier.download_args(args.python, WHEELS) + EXTRA_WHEELS) != 0:
        sys.exit(f"vistadream-lab: could not download {' '.join(EXTRA_WHEELS)}")
    (BENCH / "pins.json").write_text(json.dumps({VISTADREAM[0]: VISTADREAM[1], MONOPRIOR[0]: MONOPRIOR[1]}))
    size = sum(p.stat().st_size for p in BENCH.rglob("*") if p.is_file()) / 2**20
    print(f"vistadream-lab: {VISTADREAM[0]}@{VISTADREAM[1][:8]}, {MONOPRIOR[0]}@{MONOPRIOR[1][:8]} depth_utils, "
          f"stand-ins for rerun and simplecv.print_utils; {size:.1f} MiB in {BENCH}; carry .bench, .research "
          "(MoGe) and the GPU tier's wheels")
    return 0


def run(args: argparse.Namespace) -> int:
    """Install what the image lacks, then measure in a fresh process with the lab's code on its path."""
    if not (SRC / "vistadream").is_dir():
        sys.exit(f"vistadream-lab: {SRC} is missing: run `prepare` on a machine with network and carry .bench")
    tier = gpu_tier()
    site = Path(args.work) / "site"
    if not (site / ".installed").exists():
        tier.install(Path(args.wheels), site)
        pip = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile", "--upgrade",
               "--target", str(site)]
        subprocess.run([*pip, *map(str, WHEELS.glob("*.whl"))], check=True)
        (site / ".installed").touch()
    env = tier.environment(site)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env["PYTHONPATH"]])
    if not tier.build(env):  # gsplat's kernels before the timed parts (its JIT build is not the lab's way)
        sys.exit("vistadream-lab: gsplat's kernels did not build (see the line above)")
    command = [sys.executable, __file__, "measure", "--work", args.work, "--n-frames", str(args.n_frames)]
    command += [] if args.offload else ["--no-offload"]
    command += ["--json", args.json] if args.json else []
    return subprocess.run(command, env=env).returncode


class Timer:
    """Seconds per genfab stage, each part between two synchronisations of the GPU."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.parts: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, stage: str, part: str) -> Iterator[None]:
        import torch

        torch.cuda.synchronize()
        started = time.perf_counter()
        yield
        torch.cuda.synchronize()
        elapsed = time.perf_counter() - started
        self.seconds[stage] += elapsed
        self.parts[f"{stage}: {part}"] += elapsed


def measure(args: argparse.Namespace) -> int:
    import numpy as np
    import PIL.JpegImagePlugin  # noqa: F401  (the lab's Frame reads the name; its pipeline loads it opening a JPEG)
    import torch
    import vistadream.ops.flux as lab_flux
    from benchmarks.vistadream_e2e import photo
    from monopriors.depth_utils import depth_edges_mask
    from PIL import Image
    from scripts.tiny_models import save_random_moge
    from vistadream.flux.model import Flux
    from vistadream.flux.modules.autoencoder import AutoEncoder
    from vistadream.flux.util import configs
    from vistadream.ops.connect import Smooth_Connect_Tool
    from vistadream.ops.gs.basic import Frame, Gaussian_Scene
    from vistadream.ops.gs.train import GS_Train_Tool
    from vistadream.ops.trajs import _generate_trajectory
    from vistadream.resize_utils import add_border_and_mask, process_image

    from genfab.stages.models.placement import Placement
    from genfab.stages.scene.moge_adapter import MoGe

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    os.chdir(work)  # FluxInpainting reads ./ckpt/txt.pt and ./ckpt/vec.pt
    spec = configs["flux-dev-fill"]
    torch.manual_seed(0)
    started = time.perf_counter()
    with torch.device("cuda"):
        torch.set_default_dtype(torch.bfloat16)  # built in bf16 (24 GB), not fp32 first (48 GB)
        try:
            flow = Flux(spec.params).eval()
        finally:
            torch.set_default_dtype(torch.float32)
        autoencoder = AutoEncoder(spec.ae_params).eval()
    parameters = sum(p.numel() for p in flow.parameters())
    if args.offload:  # FluxInpainting keeps both on the CPU and moves each in for its part of a fill
        flow, autoencoder = flow.cpu(), autoencoder.cpu()
    (work / "ckpt").mkdir(exist_ok=True)
    torch.save(torch.randn(1, 512, spec.params.context_in_dim, dtype=torch.bfloat16), work / "ckpt" / "txt.pt")
    torch.save(torch.randn(1, spec.params.vec_in_dim, dtype=torch.bfloat16), work / "ckpt" / "vec.pt")
    lab_flux.load_flow_model = lambda name, device: flow.to(device)  # its file's classes, random weights
    lab_flux.load_ae = lambda name, device: autoencoder.to(device)
    inpainter = lab_flux.FluxInpainting(lab_flux.FluxInpaintingConfig(offload=args.offload))
    moge = MoGe(save_random_moge(work / "models"), Placement(torch.device("cuda"), torch.bfloat16, "none"), 60.0)
    connector = Smooth_Connect_Tool()
    print(f"models built in {time.perf_counter() - started:.1f} s (FLUX.1-Fill-dev: {parameters:,} parameters)",
          flush=True)

    def depth_of(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """MoGe's own `infer` at its defaults: depth (NaN/inf to 0, as the pipeline does), the mask as
        the confidence, K in pixels."""
        image = torch.from_numpy(np.ascontiguousarray(rgb)).cuda().permute(2, 0, 1).float() / 255.0
        out = moge.model.infer(image)
        depth = out["depth"].float().cpu().numpy()
        depth[~np.isfinite(depth)] = 0
        K = out["intrinsics"].float().cpu().numpy() * np.array([[rgb.shape[1]], [rgb.shape[0]], [1.0]])
        return depth, out["mask"].cpu().numpy() > 0, K

    timer = Timer()
    added: list[dict[str, Any]] = []
    facts: dict[str, Any] = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
                             "python": platform.python_version(),
                             "code": {VISTADREAM[0]: VISTADREAM[1], MONOPRIOR[0]: MONOPRIOR[1]},
                             "views_planned": args.n_frames - 2, "offload": args.offload}

    def record(complete: bool, **more: Any) -> None:
        """The result so far (after the initial scene, each view, the renders): printed, and written to
        --json, so that a run cut off by its machine's time still leaves what it measured."""
        result = {**facts, "complete": complete, "views": added, **more,
                  "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
                  "seconds": {s: round(timer.seconds[s], 2) for s in STAGES},
                  "parts": {k: round(v, 2) for k, v in timer.parts.items()}}
        print(json.dumps(result), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1))

    photo(work / "input.png")
    image = process_image(Image.open(work / "input.png").convert("RGB"), max_dimension=512)
    border = 0.2 / 2.0
    canvas, canvas_mask = add_border_and_mask(image, zoom_all=1.0, zoom_left=border, zoom_right=border,
                                              zoom_up=border, zoom_down=border, overlap=0)
    with timer("outpaint", "fill"):
        outpainted = np.array(inpainter(rgb_hw3=np.array(canvas), mask=np.array(canvas_mask)).convert("RGB"))
    with timer("depth", "MoGe"):
        depth, conf, K = depth_of(outpainted)
    mask = np.array(canvas_mask) > 0
    edges = depth_edges_mask(depth, threshold=0.01)
    scene = Gaussian_Scene()
    scene._add_trainable_frame(Frame(H=outpainted.shape[0], W=outpainted.shape[1],
                                     rgb=outpainted.astype(np.float32) / 255.0, dpt=depth,
                                     intrinsic=K, cam_T_world=np.eye(4), inpaint=mask,
                                     inpaint_wo_edge=mask & ~edges & conf, dpt_conf_mask=conf))
    inside = ~mask
    shape = (image.height, image.width)
    input_K = K.copy()
    input_K[0, 2], input_K[1, 2] = image.width / 2.0, image.height / 2.0
    scene._add_trainable_frame(Frame(H=image.height, W=image.width, rgb=np.array(image).astype(np.float32) / 255.0,
                                     dpt=depth[inside].reshape(shape), intrinsic=input_K, cam_T_world=np.eye(4),
                                     inpaint=np.ones(shape, bool), inpaint_wo_edge=~edges[inside].reshape(shape),
                                     dpt_conf_mask=conf[inside].reshape(shape)))
    with timer("gaussians", "GS_Train_Tool 100"):
        scene = GS_Train_Tool(scene, iters=100)(scene.frames, log=False)
    facts.update(image=[image.width, image.height], canvas=[outpainted.shape[1], outpainted.shape[0]])
    record(False)

    def candidate(pose: np.ndarray, margin: int = 32) -> Any:
        """A frame of the first scene frame's size plus the margin at `pose`, rendered for inpainting."""
        base = scene.frames[0]
        K_view = base.intrinsic.copy()
        K_view[0, 2], K_view[1, 2] = (base.W + margin) / 2.0, (base.H + margin) / 2.0
        return scene._render_for_inpaint(Frame(H=base.H + margin, W=base.W + margin, intrinsic=K_view,
                                               cam_T_world=pose))

    dense = _generate_trajectory(scene, nframes=args.n_frames * 10)
    picked: list[int] = []
    for _ in range(args.n_frames - 2):
        with timer("coarse", "candidate renders"):
            ratios = np.array([float(candidate(pose).inpaint.mean()) for pose in dense])
        index = pick(ratios, picked)
        picked.append(index)
        with timer("coarse", "candidate renders"):
            frame = candidate(dense[index])
        with timer("coarse", "fill"):
            filled = np.array(inpainter(rgb_hw3=(frame.rgb * 255).astype(np.uint8),
                                        mask=frame.inpaint.astype(np.uint8) * 255).convert("RGB"))
        frame.rgb = filled.astype(np.float32) / 255.0
        with timer("coarse", "MoGe"):
            predicted, conf, _ = depth_of(filled)
        with timer("coarse", "depth alignment (CPU)"):
            aligned = connector._affine_dpt_to_GS(render_dpt=frame.dpt, inpaint_dpt=predicted,
                                                  inpaint_msk=frame.inpaint).astype(np.float32)
            frame.dpt = aligned
            frame.inpaint_wo_edge = frame.inpaint & ~depth_edges_mask(aligned, threshold=0.01) & conf
            frame.dpt_conf_mask = conf
        with timer("coarse", "GS_Train_Tool 500"):
            scene._add_trainable_frame(frame, require_grad=True)
            scene = GS_Train_Tool(scene, iters=500)(scene.frames, log=False)
        added.append({"pose": index, "ratio": round(float(ratios[index]), 4), "pixels": int(frame.inpaint.sum())})
        record(False)
    count = min(len(scene.frames) * 25 if len(scene.frames) > 2 else 150, 150)
    with timer("render", "_render_RGBD"):
        for pose in _generate_trajectory(scene, nframes=count):
            rgb, dpt, _ = scene._render_RGBD(Frame(H=image.height, W=image.width, intrinsic=input_K, cam_T_world=pose))
            _ = (rgb.detach().float().cpu().numpy() * 255).astype(np.uint8), dpt.detach().float().cpu().numpy()
    splats = sum(int(gf.xyz.reshape(-1, 3).shape[0]) for gf in scene.gaussian_frames)
    record(True, renders=count, splats=splats)
    return 0


def pick(ratios: Any, picked: list[int], low: float = 0.05, high: float = 0.25) -> int:
    """The lab's choice among the candidate poses: the largest hole ratio in [low, high] not next to a
    picked pose; when none is, the one closest to that band (its `closest` fallback)."""
    import numpy as np

    allowed = np.ones(len(ratios), bool)
    for i in picked:
        allowed[max(i - 1, 0):i + 2] = False
    if not allowed.any():
        allowed[:] = True
    in_band = allowed & (ratios >= low) & (ratios <= high)
    if in_band.any():
        return int(np.argmax(np.where(in_band, ratios, -1.0)))
    distance = np.where(ratios < low, low - ratios, ratios - high)
    return int(np.argmin(np.where(allowed, distance, np.inf)))


def lab_seconds(lab: dict[str, Any]) -> tuple[dict[str, float], str]:
    """Per stage the lab's seconds for one sample, and what a cut-off run's figures are: its coarse
    seconds per finished view times the views planned; the stages it did not reach left out."""
    seconds: dict[str, float] = dict(lab["seconds"])
    if lab.get("complete", True):
        return seconds, ""
    done, planned = len(lab["views"]), lab["views_planned"]
    if done == 0:
        seconds.pop("coarse")
    else:
        seconds["coarse"] = seconds["coarse"] / done * planned
    seconds.pop("render")
    return seconds, (f"The lab's run was cut off after {done} of {planned} coarse views: its coarse seconds are "
                     f"the finished views' mean times {planned}; its renders were not reached.")


def genfab_scene_seconds(row: dict[str, Any]) -> float:
    """A genfab stage's seconds for one scene: on a warm Pod (the mean of its later scenes' own seconds)
    when the run made several in one shard, else its one scene's stage seconds less the model load (the
    process's start and the first scene's warm-up then in it)."""
    own = row.get("sampleSeconds") or []
    if len(own) >= 2:
        return sum(own[1:]) / len(own[1:])
    return float(row["seconds"]) - float(row["modelLoadSeconds"])


def genfab_depth(genfab: dict[str, Any]) -> str:
    """Which depth model genfab's run used: its `depthBackend` setting (runs written before the settings
    were kept, and before MoGe was the default, ran Depth Pro)."""
    backend = (genfab.get("settings") or {}).get("depthBackend", "depth-pro")
    return "from MoGe v1 (`depthBackend: moge`)" if backend == "moge" else f"from `depthBackend: {backend}`"


def compare(args: argparse.Namespace) -> int:
    """One table: per stage the lab's way and genfab's seconds per sample (genfab's without its model
    load, as the lab's way is counted), and the ratio; refused when the two ran on different GPUs."""
    lab = json.loads(Path(args.lab).read_text())
    genfab = json.loads(Path(args.genfab).read_text())
    case = genfab["results"].get("coarse")
    if case is None or "stages" not in case:
        sys.exit(f"vistadream-lab: {args.genfab} holds no successful `coarse` case of vistadream_e2e.py")
    machine = genfab["table"][0]
    if not machine.startswith(f"GPU {lab['gpu']},"):
        sys.exit(f"vistadream-lab: the two ran on different GPUs ({lab['gpu']!r}; {machine!r}): no ratio")
    theirs_by_stage, said = lab_seconds(lab)
    scenes = max(1, *(len(r.get("sampleSeconds") or []) for r in case["stages"].values()))
    ours_means = ("on a warm Pod: its later scenes' mean" if scenes >= 2
                  else "its one scene: the stage's seconds, its load left out")
    lines = [f"| stage | the lab's way s / sample | genfab s / sample ({ours_means}) | genfab / the lab's way |",
             "| --- | ---: | ---: | ---: |"]
    total_lab = total_genfab = 0.0
    for stage in STAGES:
        row = case["stages"].get(stage)
        ours = None if row is None else genfab_scene_seconds(row)
        theirs = theirs_by_stage.get(stage)
        if ours is not None and theirs is not None:  # the total: stages both sides ran
            total_lab += theirs
            total_genfab += ours
        ratio = "-" if ours is None or not theirs else f"{ours / theirs:.2f}x"
        lines.append(f"| {stage} | {'not reached' if theirs is None else f'{theirs:.1f}'} | "
                     f"{'-' if ours is None else f'{ours:.1f}'} | {ratio} |")
    lines.append(f"| **the stages both ran** | **{total_lab:.1f}** | **{total_genfab:.1f}** | "
                 f"**{total_genfab / total_lab:.2f}x** |")
    lines += [f"\n{said}"] if said else []
    # runs of before the option had it on (FluxInpaintingConfig's default)
    offload = "its default offload" if lab.get("offload", True) else "offload=False"
    print("\n".join([f"{lab['gpu']}, torch {lab['torch']}; the lab's way on "
                     + ", ".join(f"{k}@{v[:8]}" for k, v in lab["code"].items()) + f" (FLUX fill: {offload})"
                     + f"; genfab over {scenes} scene(s) in one job; its depth {genfab_depth(genfab)}, "
                     "the lab's from MoGe v1", "", *lines]))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="write .bench/vistadream-lab (a machine with network)")
    p.add_argument("--mirrors", help="local clones, DIR/<owner>+<name>/repo")
    p.add_argument("--python", default="3.12", help="the GPU machine's Python version")
    for name in ("run", "measure"):
        r = sub.add_parser(name, help="the lab's way on the GPU machine" if name == "run" else "(run starts it)")
        r.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "genfab-vistadream-lab"))
        r.add_argument("--n-frames", type=int, default=10, help="the lab's n_frames (n_frames - 2 views added)")
        r.add_argument("--json", help="write the result here")
        r.add_argument("--no-offload", dest="offload", action="store_false",
                       help="FluxInpaintingConfig(offload=False): the fill's models stay on the GPU (its default "
                            "moves them in and out for every fill)")
        if name == "run":
            r.add_argument("--wheels", default=str(ROOT / ".gpuwheels"), help="the GPU tier's wheels")
    c = sub.add_parser("compare", help="per stage: the lab's way (run --json) and genfab (vistadream_e2e.py --json)")
    c.add_argument("lab")
    c.add_argument("genfab")
    args = parser.parse_args()
    return {"prepare": prepare, "run": run, "measure": measure, "compare": compare}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())

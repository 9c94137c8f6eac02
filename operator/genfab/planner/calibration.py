"""The calibration table of `genfab plan --estimate`: what one sample of a stage costs on a GPU kind, as
measured by the benchmarks (benchmarks/results/*.md), with the command that measured it. One row per
(pipeline, stage, settings, GPU kind); the estimate (genfab.planner.estimate) picks the row whose
settings match the planned stage's config and says "not calibrated" where none does, never a guess
from another GPU kind or another method.

Each row holds genfab's defaults at the pipeline's document's settings unless `when` says otherwise.
Seconds are GPU wall seconds per GPU of the stage's Pod: `sample_seconds` per sample once the Pod is
warm; `pod_seconds` once per Pod (model load, torch.compile's warm-up on the first sample, gsplat's
first launches). Where the benchmark measured one sample only, the warm-up sits in `sample_seconds`
(the row's `note` says so) and the estimate is high by it. Rows scale linearly in the settings `scale`
names (3DGS steps, training steps), from the value they were measured at."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GPU_KINDS = ("h100", "h200", "l40s", "a100")
"""GPU kinds `--gpu` takes. A kind here with no rows estimates nothing ("not calibrated on l40s")."""
DEFAULT_GPU = "h100"

WE = "benchmarks/results/worldexplorer.md"
VD = "benchmarks/results/vistadream.md"
RO = "benchmarks/results/reference_object.md"
RL = "benchmarks/results/relighting.md"
TU = "benchmarks/results/tuning.md"
GS = "benchmarks/results/gaussians.md"

Accepted = tuple[Any, ...]


@dataclass(frozen=True)
class Measured:
    """One stage's measured cost on one GPU kind."""

    pipeline: str
    stage: str
    gpu: str
    sample_seconds: float
    """Seconds per sample on a warm Pod (per GPU of the Pod)."""
    pod_seconds: float
    """Seconds once per Pod: model load and the first sample's warm-up over a later one."""
    source: str
    """Where the measurement is written up: `benchmarks/results/<file>.md §<section>`."""
    command: str
    """The command that measured it (on the GPU machine)."""
    when: tuple[tuple[str, Accepted], ...] = ()
    """Settings the row holds for: (dotted path in the stage's config, accepted values); a missing
    setting reads as None (the pipeline's default where the API leaves it unset). `@<stage>.<path>`
    reads another stage's config in the same plan (an upstream stage's setting the cost hangs on)."""
    scale: tuple[tuple[str, float], ...] = ()
    """Settings the seconds are linear in, with the value measured: seconds x setting / measured."""
    unscaled_seconds: float = 0.0
    """Seconds per sample beside `sample_seconds` that `scale` does not reach (a second model after the
    scaled one: VGGT's pass after SEVA's steps)."""
    unscaled_baseline_seconds: float = 0.0
    """The same part of the lab's way (its own call of that second model)."""
    baseline_sample_seconds: float | None = None
    """The lab's way (the eager pipeline, the research code as it is, the plain loop), per sample, in the
    same measurement; None where it was not measured alongside."""
    peak_gib: float | None = None
    """Peak GPU memory of the stage's process."""
    note: str = ""
    cached_pod_seconds: float | None = None
    """Seconds once per Pod when the stage's earlier Pods stored their compiled kernels (the compile
    cache, genfab.stages.runtime.compile_cache): a Pod that starts after one of the stage's Pods ran
    its first sample. None: not measured (every Pod is priced at `pod_seconds`)."""

    def holds_for(self, config: dict[str, Any]) -> bool:
        return all(lookup(config, path) in accepted for path, accepted in self.when)

    def seconds(self, factor: float) -> float:
        """Seconds per sample at a scale factor."""
        return self.sample_seconds * factor + self.unscaled_seconds

    def baseline_seconds(self, factor: float) -> float | None:
        """The lab's way's seconds per sample at a scale factor (None where it was not measured)."""
        if self.baseline_sample_seconds is None:
            return None
        return self.baseline_sample_seconds * factor + self.unscaled_baseline_seconds

    def factor(self, config: dict[str, Any]) -> float | None:
        """The scale factor of `config` (None when a scaled setting is missing or not a number)."""
        factor = 1.0
        for path, measured_at in self.scale:
            value = lookup(config, path)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return None
            factor *= value / measured_at
        return factor


def lookup(config: dict[str, Any], path: str) -> Any:
    """The value at a dotted path (a number indexes a list); None where there is none."""
    node: Any = config
    for part in path.split("."):
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


WE_STAGES = "python benchmarks/worldexplorer_stages.py --samples 2 --gs-steps 7000"
SEVA = "python benchmarks/seva_speed.py sample --frames 120 --steps 50 --variants compile-all --warm-frames 21"
SEVA_SWEEP = ("python benchmarks/seva_speed.py sample --task scaffold --frames 80 --steps 50 --variants compile-all "
              "--warm-frames 21")
VD_E2E_1024 = ("python benchmarks/vistadream_e2e.py --models /tmp/vd-models --cases outpaint,coarse "
               "--set maxResolution=1024 --set fluxSteps=50 --set coarseDenseMultiplier=4 --set trajMaxPercentage=60 "
               "--set nFrames=12")
VD_MEASURED = (("@depth.maxResolution", (1024,)),)
"""The image size vistadream's H100 rows were measured at (the depth stage fits its frame to it; every
later stage's scene is as large)."""
VD_E2E = "python benchmarks/vistadream_e2e.py --models /tmp/vd-models --cases coarse --scenes 3"
VD_LAB = "python3 benchmarks/vistadream_lab.py run --wheels .gpuwheels-min --json lab.json"
VD_BOTH = f"{VD_E2E}; {VD_LAB}"
VD_MOGE = (f"{VD_E2E} --set depthBackend=moge --set mogeImage=genfab-moge:bench; "
           "python3 benchmarks/vistadream_lab.py run --wheels .gpuwheels-min --no-offload --json lab.json")
VD_DEFAULTS = (("@depth.maxResolution", (512,)),)
"""The image size of vistadream's H200 rows: the lab's script's default."""
SEVA_VGGT = ("python benchmarks/seva_speed.py sample --frames 120 --steps 25 --variants compile-all --warm-frames 21; "
             "python benchmarks/research_adapters.py vggt --frames 128 --width 576 --height 576 --runs 2")
GS_576 = "python3 benchmarks/gaussians_simple_trainer.py run --scene 576x128 --steps 7000"
EDIT = "python benchmarks/reference_object.py edit --steps 50 --variants eager,blocks,fp8+blocks"
EDIT_4BIT = "python benchmarks/reference_object.py quantised --steps 20 --runs 2"
EDIT_4BIT_H200 = "python benchmarks/reference_object.py quantised --steps 10 --runs 1"
ANNOTATION = "python benchmarks/reference_object.py annotation --images 64"
RELIGHT = "python3 benchmarks/relighting_gpu.py --images 256 --stages segment degrade"
TUNING = "python benchmarks/tuning.py --sizes 576x1024 --steps 15 --warmup 6 --gpus 0"
EDIT_STAGES = ("white-background", "perspectives", "scenes", "qwen-augmentation")
"""reference-object's stages that run one Qwen-Image-Edit edit per sample at 1024²."""
DEFAULT_EDIT_MODEL = "ovedrive/Qwen-Image-Edit-2509-4bit"
BF16_EDIT_MODELS = ("Qwen/Qwen-Image-Edit-2509", "Qwen/Qwen-Image-Edit")
EDIT_LOSSLESS = (("editRuntime.compile", (None, "blocks")), ("editRuntime.firstBlockCache", (None, 0.0)),
                 ("editRuntime.cfgTruncation", (None, 1.0)))
"""What every edit row was measured at besides its own settings: compiled blocks, no first-block cache,
CFG on every step (the options that change the time)."""
DEQUANTIZED = ("editRuntime.dequantize", (None, "auto", "on"))
"""The default 4-bit export made bf16 at load: on an 80 GB GPU `auto` does it (40.4 GiB peak)."""
LAB_4BIT_50 = round(20.72 * 50 / 20, 2)
"""The lab's way for the default model: the 4-bit export in diffusers' eager pipeline, 20.72 s at 20
steps (H100, §1b) taken to 50 (linear in steps; the two VAE passes, about 0.3 s, are counted 2.5 times)."""
DEPTH_PRO = ("depth.depthBackend", ("depth-pro",))
"""The depth model the depth and coarse rows were measured with (each coarse view has a depth pass):
Depth Pro, chosen."""
MOGE = ("depth.depthBackend", (None, "moge"))
"""The default depth model, the lab's MoGe v1 (unset reads as the default)."""


def flux_exact(runtime: str) -> tuple[tuple[str, Accepted], ...]:
    """A FLUX stage's rows hold for `fluxRuntime` at its lossless default (compiled blocks, bf16, no cache)."""
    return ((f"{runtime}.compile", (None, "blocks")), (f"{runtime}.fp8", (None, "off")),
            (f"{runtime}.firstBlockCache", (None, 0.0)))


CALIBRATION: tuple[Measured, ...] = (
    # worldexplorer, H100: one shard of two samples per stage through genfab's own stage runtime.
    Measured("worldexplorer", "scaffold", "h100", 53.8, 40.7, f"{WE} §2", WE_STAGES,
             when=(("scaffold.method", ("scaffold_gen",)), *flux_exact("scaffold.fluxRuntime")), peak_gib=67.1,
             note="scaffold_gen + automatic selection: 3 FLUX.1-dev views, 4 gaps x 4 FluxFill candidates, CLIP"),
    Measured("worldexplorer", "expansion", "h100", 48.1, 93.5, f"{WE} §2", WE_STAGES,
             when=(("expansion.method", ("walk",)), ("expansion.geometry", (None, "scene")),
                   *flux_exact("scaffold.fluxRuntime")), peak_gib=33.6,
             note="the built-in walk over 120 outward frames; the first sample compiles (+92 s)"),
    Measured("worldexplorer", "expansion", "h100", 138.3, 110.3, f"{WE} §3, §4a", SEVA,
             when=(("expansion.method", (None, "seva")), ("expansion.geometry", ("scene",)),
                   ("seva.runtime.compile", (None, "all"))), scale=(("seva.steps", 50.0),),
             baseline_sample_seconds=288.2, peak_gib=11.95,
             note="SEVA img2trajvid, 120 frames, 50 steps, compile: all; load 15.3 s + 95 s compile per Pod"),
    Measured("worldexplorer", "gaussians", "h100", 48.1, 0.0, f"{WE} §2", WE_STAGES,
             scale=(("gaussians.steps", 7000.0),), peak_gib=2.4,
             note="measured at 7000 steps (1M Gaussians reached): linear in steps"),
    # vistadream, H100: `genfab run` of one sample per stage (the coarse case); the warm-up is in the sample.
    # Measured at maxResolution 1024, 50 fill steps and 4 candidates per coarse view, before the defaults
    # became the lab's script's (512, 25, 10): every row holds for the image size it was measured at.
    Measured("vistadream", "outpaint", "h100", 20.2, 26.7, f"{VD} §2", VD_E2E_1024, peak_gib=29.1,
             when=(*VD_MEASURED, ("flux.fluxSteps", (50,)), *flux_exact("flux.fluxRuntime")),
             note="one sample: its seconds include compile: blocks' warm-up"),
    Measured("vistadream", "depth", "h100", 4.7, 13.4, f"{VD} §2", VD_E2E_1024,
             when=(*VD_MEASURED, DEPTH_PRO), peak_gib=3.7),
    Measured("vistadream", "gaussians", "h100", 8.5, 3.0, f"{VD} §2", VD_E2E_1024, peak_gib=0.5, when=VD_MEASURED,
             note="gsplat prebuilt in the image (a JIT build adds about 90 s once per Pod)"),
    Measured("vistadream", "coarse", "h100", 170.4, 20.1, f"{VD} §2", VD_E2E_1024, peak_gib=31.7,
             when=(*VD_MEASURED, DEPTH_PRO, ("flux.fluxSteps", (50,)), ("coarse.coarseDenseMultiplier", (4,)),
                   ("coarse.nFrames", (12,)), *flux_exact("flux.fluxRuntime")),
             note="10 coarse views (nFrames 12: it was measured when nFrames counted the added views alone): "
                  "40 candidate renders, a fill, a depth pass and 500 steps each"),
    Measured("vistadream", "render", "h100", 20.9, 4.1, f"{VD} §2", VD_E2E_1024, peak_gib=0.7, when=VD_MEASURED),
    # reference-object, H100: one Qwen-Image-Edit edit per sample at 1024², true CFG 4.0.
    *(Measured("reference-object", stage, "h100", 36.11, 37.6, f"{RO} §1, §1b", EDIT,
               when=(("modelPath", (DEFAULT_EDIT_MODEL,)), DEQUANTIZED, ("editRuntime.fp8", ("off",)), *EDIT_LOSSLESS),
               scale=(("steps", 50.0),), baseline_sample_seconds=LAB_4BIT_50, peak_gib=40.4,
               note="the default: the 4-bit export dequantized at load runs the bf16 row's computation (the H200 "
                    "rows show it: 0.74x of its 4-bit eager run, latent cosine 0.99995); per Pod the 4-bit load "
                    "and LoRA (15 s) and compile: blocks' warm-up (22.6 s); the dequantization itself was timed "
                    "only on the H200 (within its 6 s load)")
      for stage in EDIT_STAGES),
    *(Measured("reference-object", stage, "h100", 28.88, 28.1, f"{RO} §1, §1b", EDIT,
               when=(("modelPath", (DEFAULT_EDIT_MODEL,)), DEQUANTIZED, ("editRuntime.fp8", ("rowwise",)),
                     *EDIT_LOSSLESS),
               scale=(("steps", 50.0),), baseline_sample_seconds=LAB_4BIT_50, peak_gib=21.4,
               note="fp8: rowwise on the dequantized export (lossy: latent cosine 0.99969 against bf16); per Pod "
                    "15 s load and LoRA + 13.1 s warm-up")
      for stage in EDIT_STAGES),
    *(Measured("reference-object", stage, "h100", 20.72, 15.0, f"{RO} §1b", EDIT_4BIT,
               when=(("modelPath", (DEFAULT_EDIT_MODEL,)), ("editRuntime.dequantize", ("off",)),
                     ("editRuntime.fp8", ("off",))), scale=(("steps", 20.0),),
               baseline_sample_seconds=20.72, peak_gib=13.2,
               note="the 4-bit export as saved (dequantize: off, or auto without the memory): the lab's way itself; "
                    "measured at 20 steps (linear in steps); load 10 s + LoRA 5 s per Pod")
      for stage in EDIT_STAGES),
    *(Measured("reference-object", stage, "h100", 36.11, 22.6, f"{RO} §1", EDIT,
               when=(("modelPath", BF16_EDIT_MODELS), ("editRuntime.fp8", ("off",)), *EDIT_LOSSLESS),
               scale=(("steps", 50.0),), baseline_sample_seconds=44.80, peak_gib=40.4,
               note="bf16, compile: blocks (lossless): latent cosine 0.99996 against the eager pipeline")
      for stage in EDIT_STAGES),
    *(Measured("reference-object", stage, "h100", 28.88, 13.1, f"{RO} §1", EDIT,
               when=(("modelPath", BF16_EDIT_MODELS), ("editRuntime.fp8", ("rowwise",)), *EDIT_LOSSLESS),
               scale=(("steps", 50.0),), baseline_sample_seconds=44.80, peak_gib=21.4,
               note="fp8: rowwise (lossy): latent cosine 0.99969 against the eager pipeline")
      for stage in EDIT_STAGES),
    Measured("reference-object", "annotation", "h100", round(1 / 3.54, 4), 7.7, f"{RO} §2c", ANNOTATION,
             baseline_sample_seconds=round(1 / 2.18, 4),
             note="SAM ViT-H + SAM2.1 Hiera-L, two model threads: 3.54 images/s (the slowest of three runs)"),
    Measured("reference-object", "annotation", "h200", round(1 / 4.44, 4), 9.4, f"{RO} §2f", ANNOTATION,
             baseline_sample_seconds=round(1 / 2.27, 4),
             note="SAM ViT-H + SAM2.1 Hiera-L, two model threads: 4.44 images/s; 9.4 s load and reference per Pod"),
    # relighting, H100: 256 portraits at 1024², one shard, 8 pool workers.
    Measured("relighting", "segment", "h100", round(1 / 20.44, 4), 22.1, f"{RL} (against the plain loop)", RELIGHT,
             when=(("segmentation.backends.0", ("sam3",)),),
             baseline_sample_seconds=round(1 / 4.53, 4),
             note="SAM3; 8 CPU workers do the masks' clean-up"),
    Measured("relighting", "degrade", "h100", round(1 / 20.68, 4), 14.2, f"{RL} (against the plain loop)", RELIGHT,
             when=(("degradation.softShading.normals", ("depth-anything",)),),
             baseline_sample_seconds=round(1 / 4.80, 4),
             note="Depth Anything V2 Small normals; bound by its CPU work (3 % GPU busy)"),
    # TuningRun, H100: genfab's trainer at 576x1024, 1.79 images/s on one GPU.
    Measured("tuning-difix", "train", "h100", round(1 / 1.79, 4), 300.0, f"{TU} (H100 576x1024)", TUNING,
             scale=(("hyperparameters.maxSteps", 1.0), ("hyperparameters.batchSize", 1.0),
                    ("hyperparameters.gradientAccumulationSteps", 1.0)),
             baseline_sample_seconds=round(1 / 1.42, 4), peak_gib=33.0,
             note="per image per GPU (each node trains maxSteps x batchSize x accumulation images per GPU); "
                  "its 300 s per start is torch.compile's warm-up as seen on an H200 (over 5 min), not measured on "
                  "an H100; 2 GPUs scaled at 0.89 (H200), not counted here"),
    # worldexplorer, H200: the seed's default scaffold, SEVA's 80-view sweep from the input image.
    Measured("worldexplorer", "scaffold", "h200", 84.4, 128.6, f"{WE} §5", SEVA_SWEEP,
             when=(("scaffold.method", (None, "single_image")), ("seva.sweepFrames", (None, 80)),
                   ("seva.runtime.compile", (None, "all"))), scale=(("seva.steps", 50.0),),
             baseline_sample_seconds=172.4, peak_gib=11.95,
             note="SEVA img2trajvid through the adapter, compile: all (60.9 dB against SEVA's own); load 16.2 s + "
                  "112.4 s compile per Pod"),
    # worldexplorer, H200: the seed's default expansion (SEVA's frames, VGGT's points) and 3DGS on its 128 frames.
    Measured("worldexplorer", "expansion", "h200", 70.2, 112.2, f"{WE} §6", SEVA_VGGT,
             when=(("expansion.method", (None, "seva")), ("expansion.geometry", (None, "vggt")),
                   ("seva.runtime.compile", (None, "all"))), scale=(("seva.steps", 25.0),),
             unscaled_seconds=14.55, baseline_sample_seconds=151.1, unscaled_baseline_seconds=13.35, peak_gib=42.8,
             note="SEVA img2trajvid, 120 outward frames at 25 steps (linear in steps), compile: all (60.7 dB against "
                  "SEVA's own), then VGGT-1B on the 8 + 120 frames at 576² (14.55 s against its README call's "
                  "13.35 s; the same at any step count); per Pod SEVA's load 11.0 s + 101.2 s compile (VGGT's load "
                  "not timed)"),
    Measured("worldexplorer", "gaussians", "h200", 26.2, 3.6, f"{GS} (576², 128 views, H200)", GS_576,
             scale=(("gaussians.steps", 7000.0),), baseline_sample_seconds=54.4, peak_gib=0.5,
             note="genfab's 3DGS against gsplat's simple_trainer at its defaults on a 576², 128-view scene (the "
                  "expansion's frames): +0.24 dB held-out PSNR, 0.98x the memory; measured at 7000 steps, linear "
                  "in steps; 3.6 s setup per Pod, gsplat prebuilt in the image"),
    # vistadream, H200, at the lab's script's defaults (512, 25 fill steps, 8 views of 100 candidates):
    # `genfab run` of three images in one job, warm workers, stages streaming, outpaint, depth and coarse in
    # one shared worker, outputs encoded off the stage's thread (§5d): `sample_seconds` is the mean of the
    # later (warm) scenes, `pod_seconds` a worker's model load and its first scene's excess over a warm one
    # (its compilation and first launches). Depth's and coarse's `pod_seconds` are §5c's, where each loaded
    # its own models: an upper bound, since in a shared worker (`genfab run`'s, §5d, and a cluster's shared
    # Job) they pay 2.2 s and 11.5 s, not yet measured on a cluster. The baselines are the lab's
    # way as its script runs (default CPU offload; benchmarks/vistadream_lab.py on rerun-io/vistadream's
    # own components, §5).
    Measured("vistadream", "outpaint", "h200", 1.28, 46.3, f"{VD} §5d", VD_BOTH, peak_gib=27.2,
             when=(*VD_DEFAULTS, ("flux.fluxSteps", (25,)), *flux_exact("flux.fluxRuntime")),
             baseline_sample_seconds=24.24,
             note="a warm worker's fill (compile: blocks, 25 steps at 608x448); per worker the shared worker's "
                  "load of the FLUX fill (20.2 s) and the first fill's compilation (26.1 s more than a warm fill); "
                  "the lab's way: BFL's FLUX fill at "
                  "25 steps with its default CPU offload (the 24 GB transformer moved in and out for each fill; "
                  "2.94 s without it)"),
    Measured("vistadream", "depth", "h200", 0.40, 16.5, f"{VD} §5c, §5d", VD_BOTH, peak_gib=3.7,
             when=(*VD_DEFAULTS, DEPTH_PRO), baseline_sample_seconds=0.91,
             note="Depth Pro and the stage's outputs (§5d); per worker of its own its load 15.1 s (§5c; 2.2 s "
                  "in genfab run's shared worker); the lab's way is another model: MoGe "
                  "v1's own infer"),
    Measured("vistadream", "gaussians", "h200", 0.55, 6.7, f"{VD} §5d", VD_BOTH, peak_gib=0.1, when=VD_DEFAULTS,
             baseline_sample_seconds=1.29,
             note="100 steps with the scene's reads and writes; per worker gsplat's first launches (the first "
                  "scene 7.3 s); the lab's way: GS_Train_Tool's 100 steps alone"),
    Measured("vistadream", "coarse", "h200", 29.75, 42.9, f"{VD} §5c, §5d", VD_BOTH, peak_gib=30.2,
             when=(*VD_DEFAULTS, DEPTH_PRO, ("flux.fluxSteps", (25,)), ("coarse.coarseDenseMultiplier", (10,)),
                   ("coarse.nFrames", (10,)), *flux_exact("flux.fluxRuntime")),
             baseline_sample_seconds=221.84,
             note="8 views, each 100 candidates' hole masks, a fill, a depth pass and 500 steps of the view's "
                  "Gaussians (§5d); per worker of its own the fill's and the depth model's load (22.5 s) and "
                  "compilation (§5c; 11.5 s in genfab run's shared worker, which loaded them); the lab's way: "
                  "its 8 views (the offloaded fills 182.3 s, 500 steps each 35.5 s; 49.76 s in all without the "
                  "offload)"),
    # The same at the default depth model, MoGe v1 (§5e): depth's and coarse's rows; `pod_seconds` is the
    # shared worker's (`genfab run`; a cluster's shared Job runs the same process), MoGe's load and each
    # stage's first scene's excess. The coarse baseline is the lab's script as it runs (§5's, MoGe v1 there too).
    Measured("vistadream", "depth", "h200", 0.26, 4.4, f"{VD} §5e", VD_MOGE, peak_gib=28.1,
             when=(*VD_DEFAULTS, MOGE), baseline_sample_seconds=0.64,
             note="MoGe v1 ViT-L (MoGe's own code at images/moge's commit) and the stage's outputs, in the shared "
                  "worker (its peak is the process's: the FLUX fill is held there); per worker MoGe's load "
                  "3.8 s; the lab's way: MoGe v1's own infer"),
    Measured("vistadream", "coarse", "h200", 27.86, 5.6, f"{VD} §5e", VD_MOGE, peak_gib=29.7,
             when=(*VD_DEFAULTS, MOGE, ("flux.fluxSteps", (25,)), ("coarse.coarseDenseMultiplier", (10,)),
                   ("coarse.nFrames", (10,)), *flux_exact("flux.fluxRuntime")),
             baseline_sample_seconds=221.84,
             note="8 views, each 100 candidates' hole masks, a fill, a MoGe pass and 500 steps of the view's "
                  "Gaussians (§5e); per worker the first scene's excess in the shared worker, which holds the "
                  "fill and MoGe; the lab's way: its 8 views with its default offload (§5; 49.04 s without "
                  "the offload on §5e's machine)"),
    Measured("vistadream", "render", "h200", 1.66, 0.8, f"{VD} §5d", VD_BOTH, peak_gib=0.3, when=VD_DEFAULTS,
             baseline_sample_seconds=0.39,
             note="150 frames rendered, the two videos and the PLY encoded in the background; the lab's way: its "
                  "150 renders copied to the CPU, without its Rerun logging"),
    # reference-object, H200: the default 4-bit export, measured at 10 steps (linear in steps: the two VAE
    # passes, about 0.3 s, are counted steps / 10 times).
    *(Measured("reference-object", stage, "h200", 7.26, 26.4, f"{RO} §1c, §1d", EDIT_4BIT_H200,
               when=(("modelPath", (DEFAULT_EDIT_MODEL,)), DEQUANTIZED, ("editRuntime.fp8", ("off",)), *EDIT_LOSSLESS),
               scale=(("steps", 10.0),), baseline_sample_seconds=9.79, peak_gib=40.4,
               note="the default: dequantized at load, LoRA fused, compile: blocks; latent cosine 0.999952 against "
                    "the 4-bit eager run; per Pod the load, dequantization and LoRA (6 s) and the blocks' "
                    "compilation (20.4 s, 4.7 s from the compile cache: §1d)", cached_pod_seconds=10.7)
      for stage in EDIT_STAGES),
    *(Measured("reference-object", stage, "h200", 5.69, 15.9, f"{RO} §1c", EDIT_4BIT_H200,
               when=(("modelPath", (DEFAULT_EDIT_MODEL,)), DEQUANTIZED, ("editRuntime.fp8", ("rowwise",)),
                     *EDIT_LOSSLESS),
               scale=(("steps", 10.0),), baseline_sample_seconds=9.79, peak_gib=21.4,
               note="fp8: rowwise on the dequantized export (lossy: latent cosine 0.999685 against the 4-bit run); "
                    "per Pod 6 s load + the FP8 blocks' compile (9.9 s, §1c's `edit` run)")
      for stage in EDIT_STAGES),
)

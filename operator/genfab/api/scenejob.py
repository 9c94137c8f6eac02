"""SceneJob: image or prompt -> 3D Gaussian scene (`worldexplorer` and `vistadream`, after the lab's scripts)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator

from genfab.api.base import (
    MODEL,
    RUN_TIME,
    CrdScalars,
    GenfabModel,
    ModelReference,
    Rule,
    at_most_one,
    exactly_one,
    json_depth,
)
from genfab.api.common import CommonSpec
from genfab.api.gaussians import PLY_PATH, GaussiansConfig, ply_path_inside
from genfab.api.types import DnsLabel, InputUri, RelativePath

Variant = Literal["photorealistic", "stylized", "default"]
SampleIndices = Annotated[list[Annotated[int, Field(ge=0, le=999999)]] | None, Field(min_length=1, max_length=100000)]
SampleVariants = Annotated[list[Variant] | None, Field(min_length=1, max_length=3)]
VARIANTS: tuple[Variant, ...] = ("photorealistic", "stylized", "default")


MAX_CURATED_DEPTH = 32
"""Levels a curated sample's own (unknown) keys may nest: they are kept, so they are bounded."""


class CuratedModel(CrdScalars):
    """The lab's worldexplorer script's `metadata.json` keeps its own snake_case keys; unknown keys are kept
    (bounded in depth)."""

    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True)

    @model_validator(mode="before")
    @classmethod
    def _bounded(cls, data: Any) -> Any:
        levels = json_depth(data)
        if levels > MAX_CURATED_DEPTH:
            raise ValueError(f"nested {levels} levels deep; at most {MAX_CURATED_DEPTH}")
        return data


class VariantPaths(CuratedModel):
    """One variant of a sample: `original_path` or `path`, relative to the dataset root."""

    original_path: RelativePath | None = None
    """Image path (preferred key)."""
    path: RelativePath | None = None
    """Image path (alternative key)."""


class ScaffoldHints(CuratedModel):
    """Per-sample scaffold fields of `metadata.json`."""

    input_image: RelativePath | None = None
    """Fallback input image when the sample has no variant paths."""
    prompts: dict[Literal["000", "002", "004", "006"], Annotated[str, Field(max_length=4096)]] | None = None
    """scaffold_gen: this sample's prompt for single cardinal views (`{"002": "...", ...}`), before
    the scaffold's `customPrompts` and `theme` and the sample's `prompt`."""
    theme: str | None = Field(None, max_length=256)
    """scaffold_gen: this sample's theme for WorldExplorer's room templates, before the scaffold's."""


class ExpansionHints(CuratedModel):
    """Per-sample expansion fields of `metadata.json`: they replace `worldexplorer.expansion`'s values
    for this sample (checked against that block's bounds when the expansion runs)."""

    trajectory: str | None = None
    """`outward` or `orbit`."""
    num_frames: int | None = None
    """Frames along the trajectory."""
    distance: float | None = None
    """How far the camera moves, as a fraction of the scene's median depth."""


class CuratedSample(CuratedModel):
    """One entry of `samples[]` in the lab's worldexplorer script's curated_set `metadata.json`."""

    index: int | None = Field(None, ge=0, le=999999)
    """Sample index (`index_XXXX`); defaults to the position in `samples[]`."""
    prompt: str | None = Field(None, max_length=4096)
    """Scene prompt (used by the scaffold_gen method)."""
    photorealistic: VariantPaths | None = None
    """Photorealistic variant image."""
    stylized: VariantPaths | None = None
    """Stylized variant image."""
    scaffold: ScaffoldHints | None = None
    """Scaffold fields (fallback `input_image`, per-view `prompts`, `theme`)."""
    expansion: ExpansionHints | None = None
    """Expansion fields (`trajectory`, `num_frames`, `distance`) for this sample."""


class CuratedManifest(CuratedModel):
    """The lab's worldexplorer script's curated_set `metadata.json`."""

    samples: list[CuratedSample] = Field(max_length=100000)
    """The samples."""


class SceneInput(GenfabModel):
    """Exactly one input form: one image, a `metadata.json` manifest, or inline samples."""

    rules = (
        exactly_one("image", "manifest", "samples"),
        Rule(
            "!has(self.samples) || has(self.datasetUri)",
            "`datasetUri` is required with inline `samples` (their paths are relative to it)",
            "datasetUri",
            lambda m: m.samples is None or m.dataset_uri is not None,
        ),
    )

    image: InputUri | None = None
    """One input image; it becomes sample `index_0000` of variant `default`."""
    manifest: InputUri | None = None
    """URI of a curated_set `metadata.json`; sample paths are relative to its folder."""
    samples: list[CuratedSample] | None = Field(None, min_length=1, max_length=10000)
    """Inline samples in the `metadata.json` format."""
    dataset_uri: InputUri | None = None
    """Dataset root for inline `samples`."""


class FluxRuntime(GenfabModel):
    """How genfab's FluxFill core runs. `compile` and `attention` change speed, not results (up to
    floating-point order); `fp8` and `firstBlockCache` trade a small, measured deviation for speed and
    are off by default (benchmarks/results/vistadream.md has the numbers). The memory mode for 24-48 GB
    GPUs is the stage's `offload` (`stages.<name>.offload: model` or `group`)."""

    rules = (
        Rule(
            "!(self.compile == 'full' && self.firstBlockCache > 0.0)",
            "firstBlockCache needs compile: blocks or off (its hooks cannot run inside one CUDA graph of the "
            "whole transformer)",
            "firstBlockCache",
            lambda m: not (m.compile == "full" and m.first_block_cache > 0),
        ),
    )

    compile: Literal["off", "blocks", "full"] = "blocks"
    """torch.compile of the transformer on CUDA: `blocks` compiles its two repeated block types once
    each (diffusers' regional compilation: seconds at Pod start, nearly all of the speed) and, without
    firstBlockCache or offload, replays each denoising step as one CUDA graph; with either `blocks` or
    `full` the VAE's group norms are compiled too and each attention's query/key norm, rotary
    embedding and layout run as one Triton pass (same numerics); `full` compiles the
    whole transformer with CUDA graphs (minutes at Pod start; worth it only for many fills per Pod);
    `off` runs eagerly. Ignored on the CPU."""
    attention: Literal["native", "_native_cudnn", "_native_flash", "_native_efficient", "flash", "_flash_3", "sage"
                       ] = "native"
    """diffusers' attention backend: `native` is PyTorch SDPA's own choice (on Hopper GPUs, cuDNN's
    flash attention), `_native_*` force one SDPA kernel, `flash`/`_flash_3`/`sage` need
    flash-attn, flash-attn 3 or sageattention installed in the stage image."""
    fp8: Literal["off", "rowwise", "tensorwise"] = "off"
    """Quantise the transformer's linear layers to FP8 (torchao: dynamic activations, weights with a
    scale per row or one per tensor; Ada, Hopper or newer, best with `compile`): half the
    transformer's weight memory, faster matmuls, a small change of the output. With `rowwise` the
    GELU-fed layers quantise their input in one Triton pass. Compiling the FP8 blocks lengthens the
    Pod's start (the vistadream benchmark has the figures)."""
    first_block_cache: float = Field(0.0, ge=0.0, le=1.0)
    """diffusers' first-block cache threshold (0 = off): a step whose first block's residual changed
    by less than this (relative) reuses the previous step's other blocks: higher skips more steps and
    changes the output more (the vistadream benchmark measures both)."""


def generates(part: Any) -> bool:
    """FluxFill and Depth Pro are loaded by the expansion's walk and by the `scaffold_gen` scaffold,
    not by the `single_image` one (SEVA makes its views)."""
    return getattr(part, "method", "scaffold_gen") == "scaffold_gen"


class ScaffoldFillConfig(GenfabModel):
    """The part of the scaffold's settings the expansion's built-in walk shares: FluxFill, the depth
    model, the cameras' field of view and the seed."""

    flux_fill_model: Annotated[str, ModelReference(generates)] = Field("black-forest-labs/FLUX.1-Fill-dev",
                                                                       max_length=256)
    """FluxFill model (diffusers layout) inpainting the in-between views' holes."""
    fill_steps: int = Field(50, ge=1, le=200)
    """Denoising steps of each inpainting candidate."""
    fill_guidance: float = Field(30.0, ge=0.0, le=100.0)
    """FluxFill's guidance."""
    depth_model: Annotated[str, ModelReference(generates)] = Field("apple/DepthPro-hf", max_length=256)
    """Depth Pro (transformers layout): the cardinal views' metric depth, for the reprojection."""
    fov_degrees: float = Field(60.0, gt=10.0, lt=170.0)
    """Field of view of every scaffold camera (WorldExplorer: 60°)."""
    flux_runtime: Annotated[FluxRuntime, RUN_TIME] = Field(default_factory=FluxRuntime)
    """How both FLUX models run (compilation, attention kernel, FP8, first-block cache)."""
    seed: int = Field(0, ge=0)
    """Base seed: each view's and candidate's noise derives from it, the sample and the view."""


class ScaffoldConfig(ScaffoldFillConfig):
    """Stage 1 (the lab's worldexplorer script): the 8-view 360° scaffold."""

    rules = (
        Rule(
            "self.method != 'single_image' || !has(self.customPrompts)",
            "`customPrompts` only apply to method scaffold_gen",
            "customPrompts",
            lambda m: m.method != "single_image" or m.custom_prompts is None,
        ),
    )

    method: Literal["single_image", "scaffold_gen"] = "single_image"
    """single_image: SEVA views from the input image (context-preserving, the lab's script's default);
    scaffold_gen: WorldExplorer text prompts (FLUX + inpainting) with the image as view 000."""
    selection: Literal["fast", "automatic", "manual"] = "fast"
    """How in-between views 001/003/005/007 are chosen: fast (one inpainting each), automatic
    (CLIP picks the best of `inpaintCandidates`), manual (`inpaintCandidates` are written and the
    resource waits with condition AwaitingSelection, no Pod running, until a person copies the
    chosen ones into each sample's `scaffold/final/` or runs `genfab select`; then Stage 2 starts)."""
    inpaint_candidates: int = Field(4, ge=1, le=32)
    """Inpainting variants per gap for automatic and manual selection."""
    theme: str | None = Field(None, max_length=512)
    """Theme for the generated prompts (scaffold_gen)."""
    custom_prompts: list[str] | None = Field(None, min_length=4, max_length=4)
    """Prompts for the four cardinal views 000/002/004/006 (scaffold_gen)."""
    clip_model: Annotated[str, ModelReference(lambda m: m.selection == "automatic")] = Field(
        "openai/clip-vit-base-patch16", max_length=256)
    """CLIP model (transformers layout) scoring the candidates of automatic selection (WorldExplorer's)."""
    flux_model: Annotated[str, ModelReference(lambda m: m.method == "scaffold_gen")] = Field(
        "black-forest-labs/FLUX.1-dev", max_length=256)
    """FLUX text-to-image model (diffusers layout) generating the cardinal views (scaffold_gen)."""
    flux_steps: int = Field(100, ge=1, le=200)
    """Denoising steps of each generated cardinal view: WorldExplorer's `NUM_INFERENCE_STEPS`, 100
    (`model/scaffold_generation.py`; its FluxFill in-betweens keep diffusers' default, `fillSteps`)."""
    flux_guidance: float = Field(3.5, ge=0.0, le=100.0)
    """FLUX.1-dev's distilled guidance for the cardinal views."""
    resolution: int = Field(576, ge=64, le=2048, multiple_of=32)
    """Side of the square scaffold views (WorldExplorer: 576); the input image is centre-cropped to it."""


class ExpansionConfig(GenfabModel):
    """Stage 2 (the lab's worldexplorer script, `skip_3dgs=True`): frames along a camera trajectory through the
    scaffold and
    their geometry, written as `img2trajvid/` (Nerfstudio `transforms.json`, images, initial points)."""

    method: Literal["seva", "walk"] | None = None
    """How the trajectory's frames are made: `seva`, the lab's worldexplorer script's (SEVA's `img2trajvid`, every frame
    generated from the eight views; needs `seva.image`), or `walk`, genfab's own (render the scene,
    FluxFill the frames with holes, align their depth, add them). Unset: `seva`, the lab's; without
    `seva.image` the stage is refused in one line naming both fixes (never the walk unasked). Which one
    ran is in each sample's `expansion.json`, the summaries and the status (`producedBy`)."""
    geometry: Literal["vggt", "scene"] | None = None
    """Where the frames' geometry comes from: `vggt`, the lab's worldexplorer script's (VGGT on every frame, moved
    into the
    scene; needs `vggt.image`; with SEVA's frames the stage then grows no scene of its own, as the script does:
    no per-frame depth pass or training), or `scene`, genfab's own (every frame's aligned depth at its known
    pose). Unset: `vggt` on the SEVA path (the lab's; refused without `vggt.image`, naming both fixes),
    `scene` with `method: walk`."""
    num_frames: int = Field(120, ge=8, le=2000)
    """Frames generated along the trajectory through the scaffold."""
    trajectory: Literal["outward", "orbit"] = "outward"
    """outward: from the scaffold's centre out towards each of the eight scaffold views and back,
    looking along it (WorldExplorer's walk into the scene); orbit: a circle around the centre, looking
    outwards."""
    distance: float = Field(0.3, gt=0.0, le=2.0)
    """How far the camera moves from the centre, as a fraction of the scene's median depth seen from view 000."""
    fill_min_hole_ratio: float = Field(0.02, ge=0.0, le=1.0)
    """Built-in expansion: a trajectory frame whose render has at least this fraction of holes is
    inpainted (FluxFill), depth-aligned and added to the scene; the others are rendered."""
    iterations: int = Field(150, ge=0, le=100000)
    """Built-in expansion: Gaussian training steps after the scaffold and after each added frame."""
    max_points: int = Field(300000, ge=1000, le=10000000)
    """Initial points written for 3DGS (`sparse_pc.ply`), subsampled evenly when there are more."""
    vggt_confidence_threshold: float = Field(0.2, ge=0.0, le=1.0)
    """VGGT geometry: points below this confidence quantile are dropped before 3DGS."""


class SevaRuntime(GenfabModel):
    """How SEVA's network runs inside its own sampler (applied by genfab's adapter to SEVA's modules
    after loading; SEVA's source is not changed). SEVA samples under `torch.autocast` (float16) with
    the conditional and unconditional halves of guidance already in one batch. Both options change
    speed, not results (up to floating-point order; benchmarks/results/worldexplorer.md, section 4,
    has the numbers, and why there is no FP8 option)."""

    compile: Literal["off", "model", "all"] = "all"
    """torch.compile on CUDA: `all` compiles SEVA's whole network (one graph: its 21-frame window
    never changes shape, so it compiles once per Pod, 1-2 minutes at the first sample) and the passes
    of SEVA's autoencoder (Stable Diffusion's VAE, which encodes the input views and decodes every
    generated frame one at a time); `model` only the network; `off` runs both eagerly. Ignored on
    the CPU."""
    attention: Literal["flash", "cudnn"] = "cudnn"
    """The SDPA kernel of SEVA's self-attentions: `flash` is SEVA's own choice (FlashAttention-2),
    `cudnn` cuDNN's fused attention (faster on Hopper), with FlashAttention-2 allowed where cuDNN's
    kernel cannot run (PyTorch picks per call; both compute the same attention up to floating-point
    order). Either way its one-token cross-attentions are computed as what they equal, the value
    projection (a softmax over one key is exactly 1)."""


class SevaModelConfig(GenfabModel):
    """The part of SEVA's settings both stages that run it read (the image, the weights, how they sample)."""

    image: str | None = Field(None, max_length=512)
    """Stage image with SEVA installed (`images/seva/Dockerfile`, SEVA at a pinned commit). Unset: the
    scaffold needs `method: scaffold_gen` and the expansion `method: walk` (genfab's FluxFill walk),
    each said in the resource."""
    model: Annotated[str, ModelReference(lambda m: m.image is not None)] = Field(
        "stabilityai/stable-virtual-camera", max_length=256)
    """SEVA weights (a folder with `model.safetensors` under the model location)."""
    vae_model: Annotated[str, ModelReference(lambda m: m.image is not None)] = Field(
        "stabilityai/stable-diffusion-2-1-base", max_length=256)
    """The autoencoder SEVA works in: a diffusers folder whose `vae/` is Stable Diffusion 2.1's (SEVA's
    own code fetches it from the hub; genfab loads it from the model location, so Pods need no network)."""
    clip_model: Annotated[str, ModelReference(lambda m: m.image is not None)] = Field(
        "laion/CLIP-ViT-H-14-laion2B-s32B-b79K", max_length=256)
    """SEVA's image conditioner: open_clip ViT-H-14 weights (a folder with `open_clip_model.safetensors`
    or `open_clip_pytorch_model.bin`, the hub repository's layout) under the model location."""
    steps: int = Field(50, ge=1, le=200)
    """Denoising steps per pass."""
    cfg: float = Field(3.0, ge=1.0, le=20.0)
    """Guidance of the first pass (SEVA's recommended 3 for img2trajvid; raise it for blurry unseen areas)."""
    camera_scale: float = Field(2.0, gt=0.0, le=20.0)
    """SEVA's `camera_scale` (its translation normalisation)."""
    runtime: Annotated[SevaRuntime, RUN_TIME] = Field(default_factory=SevaRuntime)
    """How SEVA's network runs (compilation, attention kernel)."""


class SevaConfig(SevaModelConfig):
    """SEVA (Stable Virtual Camera), research code run from its own stage image (images/seva/): the
    `single_image` scaffold's 360° sweep and, when set, the expansion's frames (`img2trajvid`)."""

    sweep_frames: int = Field(80, ge=16, le=400)
    """single_image: frames of the 360° sweep from the input image (key frames 000-007 are picked from it)."""


class VggtConfig(GenfabModel):
    """VGGT, research code run from its own stage image (images/vggt/): the expansion's geometry."""

    image: str | None = Field(None, max_length=512)
    """Stage image with VGGT installed (`images/vggt/Dockerfile`). Unset: the built-in geometry (the
    trajectory's known poses and per-frame depth aligned to the scene)."""
    model: Annotated[str, ModelReference(lambda m: m.image is not None)] = Field("facebook/VGGT-1B", max_length=256)
    """VGGT weights (a `from_pretrained` folder under the model location)."""


class WorldExplorerConfig(GenfabModel):
    """The lab's worldexplorer script: image/prompt -> 8-view scaffold -> trajectory + geometry -> 3DGS."""

    rules = (
        Rule(
            "!has(self.seva) || !has(self.vggt) || !has(self.seva.image) || !has(self.vggt.image)"
            " || self.seva.image == self.vggt.image",
            "seva.image and vggt.image must be one image when both are set (the expansion runs both in one "
            "Pod): build images/vggt/Dockerfile with --build-arg BASE=<the SEVA image>",
            "vggt",
            lambda m: m.seva.image is None or m.vggt.image is None or m.seva.image == m.vggt.image,
        ),
    )

    scaffold: ScaffoldConfig = Field(default_factory=ScaffoldConfig)
    """Stage 1."""
    expansion: ExpansionConfig = Field(default_factory=ExpansionConfig)
    """Stage 2."""
    seva: SevaConfig = Field(default_factory=SevaConfig)
    """SEVA's stage image and settings (single_image scaffold, img2trajvid expansion)."""
    vggt: VggtConfig = Field(default_factory=VggtConfig)
    """VGGT's stage image and settings (expansion geometry)."""


class VistaFlux(GenfabModel):
    """The lab's vistadream script's FluxFill settings (outpainting and every coarse view's inpainting)."""

    flux_fill_model: Annotated[str, MODEL] = Field("black-forest-labs/FLUX.1-Fill-dev", max_length=256)
    """FluxFill model id (a diffusers folder under the model location) for outpainting and for
    inpainting coarse views."""
    flux_steps: int = Field(25, ge=1, le=200)
    """FluxFill denoising steps (the lab's script fills with `FluxInpaintingConfig()`: 25 steps, for the
    outpainting and every coarse view)."""
    flux_guidance: float = Field(30.0, ge=0.0, le=100.0)
    """FluxFill guidance scale (FLUX.1-Fill-dev is guidance-distilled; 30 is its recommended value)."""
    flux_prompt: str = Field("", max_length=1000)
    """Text prompt for the fill (the lab's script fills with an empty prompt)."""
    flux_runtime: Annotated[FluxRuntime, RUN_TIME] = Field(default_factory=FluxRuntime)
    """How the fill runs: compilation, attention kernel, FP8, first-block cache."""
    seed: int = Field(0, ge=0)
    """Base seed of every fill of a sample (the fill's noise comes from it, the sample id and the
    view): the same job gives the same scene."""


class VistaDepth(GenfabModel):
    """The lab's vistadream script's depth model (the depth stage and every coarse view)."""

    depth_backend: Literal["depth-pro", "depth-anything-v2", "moge"] = "moge"
    """moge (default, the lab's vistadream script's `MogeV1Predictor`): MoGe v1, research code run from
    `mogeImage` (refused without it, naming both fixes): scale-invariant depth, its own intrinsics and its
    validity mask as `dpt_conf_mask`; depth-pro (a transformers model, so it runs in genfab's own
    images): metric depth and its own field of view; depth-anything-v2: Depth Anything V2 (metric
    checkpoints give metres, relative ones inverse depth) with the focal prior `focalPriorFov`."""
    depth_pro_model: Annotated[str, ModelReference(lambda m: m.depth_backend == "depth-pro")] = Field(
        "apple/DepthPro-hf", max_length=256)
    """Depth Pro model id."""
    depth_anything_model: Annotated[str, ModelReference(lambda m: m.depth_backend == "depth-anything-v2")] = Field(
        "depth-anything/Depth-Anything-V2-Metric-Outdoor-Large-hf", max_length=256)
    """Depth Anything V2 model id."""
    moge_model: Annotated[str, ModelReference(lambda m: m.depth_backend == "moge")] = Field(
        "Ruicheng/moge-vitl", max_length=256)
    """MoGe v1 weights: a folder with `model.pt` (the hub repository's layout) under the model location."""
    moge_image: str | None = Field(None, max_length=512)
    """Stage image with MoGe installed (`images/moge/Dockerfile`, MoGe at a pinned commit); the depth and
    coarse stages run in it when `depthBackend` is moge."""
    focal_prior_fov: float = Field(60.0, gt=1.0, lt=179.0)
    """Horizontal field of view (degrees) assumed by a depth backend that does not predict one."""


class VistaTrajectory(GenfabModel):
    """The lab's vistadream script's camera trajectory (coarse expansion and the final render)."""

    traj_type: Literal["spiral", "forward", "rotate", "wobble"] = "spiral"
    """Trajectory shape."""
    traj_forward_ratio: float = Field(0.3, ge=0.0, le=10.0)
    """Forward camera motion, relative to scene depth."""
    traj_backward_ratio: float = Field(0.4, ge=0.0, le=10.0)
    """Backward camera motion, relative to scene depth."""
    traj_max_percentage: float = Field(50.0, gt=0.0, le=100.0)
    """Depth percentile bounding the camera motion."""


class VistaCoarse(GenfabModel):
    """The lab's vistadream script's coarse expansion (`_coarse`)."""

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            "self.coarseMinInpaintRatio <= self.coarseMaxInpaintRatio",
            "coarseMinInpaintRatio must be <= coarseMaxInpaintRatio",
            "coarseMinInpaintRatio",
            lambda m: m.coarse_min_inpaint_ratio <= m.coarse_max_inpaint_ratio,
        ),
    )

    n_frames: int = Field(10, ge=1, le=1000)
    """Frames of the scene after coarse expansion, the input and outpainting views among them: coarse
    expansion adds up to `nFrames - 2` views (the lab's script's `range(n_frames - 2)`); the dense
    trajectory has `nFrames x coarseDenseMultiplier` candidate poses."""
    coarse_min_inpaint_ratio: float = Field(0.05, ge=0.0, le=1.0)
    """Candidate poses need an inpaint ratio >= this."""
    coarse_max_inpaint_ratio: float = Field(0.25, ge=0.0, le=1.0)
    """Candidate poses with an inpaint ratio > this are discarded."""
    coarse_adjacent_exclusion: int = Field(1, ge=0, le=100)
    """Exclude poses within ±N dense indices of already selected ones."""
    coarse_dense_multiplier: int = Field(10, ge=1, le=64)
    """Dense trajectory = nFrames x this (more candidates, slower selection; the lab's script's 10)."""
    coarse_fallback_mode: Literal["none", "closest"] = "none"
    """closest: when no candidate is in band, pick the one closest to [min, max]."""
    coarse_margin: int = Field(32, ge=0, le=1024)
    """Pixels added once to a candidate view's width and height (the lab's `pose_to_frame`), principal
    point at the centre; a sum off FluxFill's 32-pixel grid is rounded up to it."""
    coarse_print_summary: Annotated[bool, RUN_TIME] = True
    """Log the `[COARSE] Summary` (selected frames, added splats)."""
    coarse_iterations: int = Field(500, ge=1, le=100000)
    """GS_Train_Tool iterations after each added coarse frame."""


class VistaDreamConfig(VistaFlux, VistaDepth, VistaTrajectory, VistaCoarse):
    """The lab's vistadream script: single image -> outpaint -> depth -> Gaussian scene -> coarse expansion -> render.
    Its fields keep the lab's script's flat names; the stages read them in parts (FluxFill, depth model,
    trajectory, coarse expansion)."""

    rules: ClassVar[tuple[Rule, ...]] = (*VistaCoarse.rules, ply_path_inside("plyName", "ply_name"))

    stage: Literal["no-outpaint", "outpaint", "fine", "coarse"] = "no-outpaint"
    """no-outpaint (default): input frame only; outpaint/fine: Flux outpainting + 2-view init;
    coarse: outpaint init, then iterative coarse expansion with extra inpainted views."""
    expansion_percent: float = Field(0.3, gt=0.0, le=1.0)
    """Fraction of the image size added as outpainting border, half on each side (the lab's
    `SingleImageConfig` 0.3; its quick run passes 0.2)."""
    max_resolution: int = Field(512, ge=64, le=4096, multiple_of=32)
    """Longest side after `process_image` (multiples of 32; the lab's script's default 512, its
    choices 512, 1024 and 1920)."""
    init_iterations: int = Field(100, ge=1, le=100000)
    """GS_Train_Tool iterations after initialisation."""
    render_frames: int = Field(150, ge=1, le=5000)
    """Most frames of the final render trajectory: 25 per scene frame for a scene of three frames or more,
    all of them for one or two (the lab's `_render_splats`)."""
    ply_name: str = Field("gf.ply", pattern=PLY_PATH, max_length=256)
    """Where the exported PLY goes in the sample's output folder, by the lab's vistadream script's
    `--export-gaussians-ply-path` rule: a path ending in `.ply` is the file, anything else a folder
    that gets `gf.ply` (`coarse` -> `coarse/gf.ply`)."""


class TuningRunRef(GenfabModel):
    """A TuningRun in the same namespace whose checkpoint refines the scenes."""

    name: DnsLabel
    """TuningRun name."""
    step: int | None = Field(None, ge=0)
    """Checkpoint step (`model_<step>.pkl`); unset takes the run's last checkpoint."""


class RefinementParameters(GenfabModel):
    """What refinement does, whichever DiFix checkpoint it uses (the gaussians stage reads this part; the
    checkpoint is resolved at plan time)."""

    base_model: Annotated[str, MODEL] = Field("nvidia/difix_ref", max_length=256)
    """DiFix base model under the model location (the checkpoint's weights go over it)."""
    fix_steps: list[int] = Field(default_factory=lambda: [3000, 6000, 9000, 12000, 15000, 18000, 21000, 24000,
                                                          27000], max_length=64)
    """3DGS steps at which novel views are rendered and fixed (steps past `gaussians.steps` are ignored)."""
    novel_views: int = Field(8, ge=1, le=512)
    """Novel views rendered and fixed at each fix step."""
    novel_distance: float = Field(0.5, gt=0.0, le=1.0)
    """How far each fix step moves the novel cameras from where they were toward the held-out views
    (between neighbouring training cameras when nothing is held out); Difix3D+ uses 0.5."""
    novel_weight: float = Field(0.3, ge=0.0, le=1.0)
    """Loss weight of a pseudo-view (Difix3D+'s `novel_data_lambda`)."""
    novel_probability: float = Field(0.3, ge=0.0, le=1.0)
    """Share of training steps on pseudo-views once there are some (Difix3D+: 0.3)."""
    fix_final_renders: bool = False
    """Also fix the final preview and trajectory renders with DiFix (written next to the plain ones)."""
    prompt: str = Field("remove degradation", max_length=512)
    """DiFix prompt."""
    timestep: int = Field(199, ge=1, le=999)
    """DiFix's single denoising timestep."""


class Refinement(RefinementParameters):
    """DiFix refinement during 3DGS training, the way Difix3D+ does it (the lab's DiFix scripts'
    `train.difix.model_checkpoint_path` contract): at `fixSteps`, novel views near the training
    cameras are rendered, fixed by DiFix with the nearest training view as reference, and trained on
    as weighted pseudo-views. With `tuningRunRef` or `checkpointUri` DiFix is that fine-tuned
    checkpoint; with neither, the base model."""

    rules = (at_most_one("tuningRunRef", "checkpointUri"),)

    tuning_run_ref: TuningRunRef | None = None
    """Take the checkpoint from a TuningRun in this namespace: the stage waits until the run succeeded."""
    checkpoint_uri: InputUri | None = None
    """An explicit `model_<step>.pkl` (Difix3D's checkpoint format)."""


class SceneJobBase(CommonSpec):
    """The spec: the inputs, the pipeline with its settings block, and how its stages run."""

    input: SceneInput
    """Images to turn into scenes."""
    indices: SampleIndices = None
    """Only these sample indices (the lab's worldexplorer script's `--indices`) of a `manifest` or inline `samples`."""
    variants: SampleVariants = None
    """Only these variants; unset runs every variant a sample has (`default` is the fallback)."""
    gaussians: GaussiansConfig = Field(default_factory=GaussiansConfig)
    """3DGS training (both pipelines)."""
    refinement: Refinement | None = None
    """Optional DiFix checkpoint used to refine renders during 3DGS."""

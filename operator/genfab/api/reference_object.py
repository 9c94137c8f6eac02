"""DatasetJob type `reference-object` (the lab's reference-object script): one reference image -> YOLO segmentation
dataset."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from genfab.api.base import MODEL, RUN_TIME, GenfabModel, ModelReference, Rule
from genfab.api.common import FloatRange, IntRange
from genfab.api.quality import REFERENCE_IMAGE, QualityBound, quality_range_rule, quality_rule
from genfab.api.types import InputUri, Probability

EXECUTION_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
"""An execution folder's name (one path segment; genfab's own folders start with `_`)."""

Azimuth = Literal["front", "front_right", "side_right", "back_right", "back", "back_left", "side_left", "front_left"]
Elevation = Literal["low_angle", "eye_level", "elevated", "high_angle"]
Distance = Literal["close_up", "medium", "wide"]
ZERO123_VIEWS = 6
LoraFamily = Literal["multiple-angles-2509", "multiple-angles-2511"]
LORA_PIPELINE = "QwenImageEditPlusPipeline"
"""The pipeline both multi-camera LoRA families were trained on (Qwen-Image-Edit-2509 and -2511)."""
DEFAULT_AZIMUTHS: tuple[Azimuth, ...] = ("front", "side_left", "back", "side_right")
DEFAULT_ELEVATIONS: tuple[Elevation, ...] = ("eye_level",)
DEFAULT_DISTANCES: tuple[Distance, ...] = ("medium",)


class PerspectivesConfig(GenfabModel):
    """Step 2: viewing angles of the object."""

    generator: Literal["qwen_multicamera", "zero123"] = "qwen_multicamera"
    """qwen_multicamera (Qwen Image Edit with the multi-camera LoRA, configurable views) or zero123
    (Zero123++: its six fixed views from one call)."""
    azimuths: list[Azimuth] = Field(default_factory=lambda: list(DEFAULT_AZIMUTHS), min_length=1, max_length=8)
    """Azimuths for qwen_multicamera."""
    elevations: list[Elevation] = Field(default_factory=lambda: list(DEFAULT_ELEVATIONS), min_length=1, max_length=4)
    """Elevations for qwen_multicamera."""
    distances: list[Distance] = Field(default_factory=lambda: list(DEFAULT_DISTANCES), min_length=1, max_length=3)
    """Distances for qwen_multicamera."""
    lora: Annotated[str, ModelReference(lambda m: m.generator == "qwen_multicamera")] = Field(
        "dx8152/Qwen-Edit-2509-Multiple-angles", max_length=256)
    """Multi-camera LoRA adapter id."""
    zero123_model: Annotated[str, ModelReference(lambda m: m.generator == "zero123")] = Field(
        "sudo-ai/zero123plus-v1.2", max_length=256)
    """Zero123++'s weights: a diffusers folder under the model location whose `model_index.json` names
    `Zero123PlusPipeline` (v1.2: six views at elevations 20 and -10 degrees, 30 degree field of view)."""
    zero123_pipeline: Annotated[str, ModelReference(lambda m: m.generator == "zero123")] = Field(
        "sudo-ai/zero123plus-pipeline", max_length=256)
    """The diffusers custom pipeline Zero123++'s authors publish (`pipeline.py` in this folder under the
    model location, loaded as their README does with `custom_pipeline=`): the code that runs it."""
    zero123_steps: int = Field(75, ge=1, le=200)
    """Zero123++'s denoising steps (its README's example: 75; it says about 28 are enough for most objects)."""
    zero123_guidance: float = Field(4.0, ge=1.0, le=20.0)
    """Zero123++'s classifier-free guidance scale (its pipeline's default)."""

    def count(self) -> int:
        """Number of perspective images this config produces."""
        if self.generator == "zero123":
            return ZERO123_VIEWS
        return len(self.azimuths) * len(self.elevations) * len(self.distances)


class EditRuntime(GenfabModel):
    """How genfab's Qwen Image Edit core runs (every edit step). `compile` changes speed, not results
    (up to floating-point order); `fp8`, `firstBlockCache` and `cfgTruncation` trade a deviation for
    speed and are off by default (benchmarks/results/reference_object.md has the numbers)."""

    compile: Literal["off", "blocks"] = "blocks"
    """torch.compile of the transformer's 60 repeated blocks on CUDA (diffusers' regional compilation:
    one graph for all of them, compiled at the Pod's first edit; a new prompt length recompiles once,
    then the text length is dynamic). `off` runs eagerly. Ignored on the CPU."""
    fp8: Literal["off", "rowwise", "tensorwise"] = "off"
    """Quantise the transformer's linear layers to FP8 (torchao: dynamic activations, weights with a
    scale per row or one per tensor; Ada, Hopper or newer; a bf16 model, not a bitsandbytes export):
    half the transformer's weight memory, faster matmuls, a small change of the output."""
    first_block_cache: float = Field(0.0, ge=0.0, le=1.0)
    """diffusers' first-block cache threshold (0 = off): a step whose first block's residual changed by
    less than this (relative) reuses the previous step's other blocks. Its speed-up and deviation
    depend on the trained weights: measure on the real checkpoint before turning it on."""
    cfg_truncation: float = Field(1.0, ge=0.0, le=1.0)
    """True CFG runs while the normalised time (1 - sigma, 0 at the first step) is at most this; later
    steps run the conditional pass only (diffusers' Z-Image `cfg_truncation`). 1 = every step; 0.5
    saves about a quarter of the transformer passes."""
    dequantize: Literal["auto", "on", "off"] = "auto"
    """A bitsandbytes export's weights (the default model's 4-bit NF4) turned into bf16 once at load
    (diffusers' `dequantize`): the same weights its 4-bit layers rebuild at every matmul, so the same
    edits, without that per-matmul work, and with `compile` and `fp8` then applying. The transformer
    then holds about 40 GiB instead of 11. `auto`: on a GPU with the free memory for it and no
    offload (else the export runs quantised, and the sample's `editRuntime` says why); `on`: always on
    a GPU; `off`: the export runs as saved. No effect on a bf16 model or on the CPU."""


class SceneGenerationConfig(GenfabModel):
    """Steps 3-4: LLM scene prompts, then every perspective x prompt x iteration."""

    num_prompts: int = Field(5, ge=1, le=1000)
    """Scene prompts to generate (`--num_prompts`)."""
    num_iterations: int = Field(3, ge=1, le=100)
    """Renders per perspective x prompt, each with its own seed (`--num_iterations`)."""
    system_prompt_uri: InputUri | None = None
    """System prompt for the LLM (`--system_prompt_file`); unset uses the bundled
    `system_qwen_edit.txt`."""
    project_info_uri: InputUri | None = None
    """Project-specific context for the LLM (`--project_info_file`)."""
    model_path: Annotated[str, MODEL] = Field("ovedrive/Qwen-Image-Edit-2509-4bit", max_length=256)
    """Qwen Image Edit model (`--model_path`), for every edit (steps 1, 2, 4 and 5): a diffusers folder
    whose `model_index.json` names `QwenImageEditPipeline` or `QwenImageEditPlusPipeline` (2509/2511,
    which the multi-camera LoRAs were trained on: a LoRA on the other pipeline is refused in one line);
    a bitsandbytes-quantised export loads as it is saved. The lab's script's default,
    `ovedrive/qwen-image-edit-4bit`, is the first Qwen Image Edit (not 2509), which its own default
    LoRA was not trained on: genfab's default is the same publisher's 4-bit export of 2509."""
    steps: int = Field(50, ge=1, le=200)
    """Denoising steps of every Qwen Image Edit call."""
    true_cfg_scale: float = Field(4.0, ge=1.0, le=20.0)
    """Qwen Image Edit's true classifier-free guidance (1 turns it off: one transformer pass per step)."""
    edit_runtime: Annotated[EditRuntime, RUN_TIME] = Field(default_factory=EditRuntime)
    """How every Qwen Image Edit call runs: compilation, FP8, first-block cache."""
    llm_endpoint: str = Field("http://ollama:11434", pattern=r"^https?://[^/\s]+(/.*)?$", max_length=512)
    """OpenAI-compatible chat endpoint for prompt generation (Ollama, vLLM, `transformers serve`);
    `/v1` is added when the URL has no path."""
    llm_model: Annotated[str, ModelReference(endpoint=True)] = Field("llama3.1", max_length=128)
    """Chat model name at the endpoint."""
    llm_temperature: float = Field(0.8, ge=0.0, le=2.0)
    """Sampling temperature of the scene descriptions (each turn's seed is `seed` + turn)."""
    llm_timeout_seconds: int = Field(60, ge=1, le=3600)
    """Seconds one request may take before it is retried (3 tries with backoff in all)."""


class QwenAugmentationParameters(GenfabModel):
    """What step 5 reads when it runs."""

    predefined_prompts_uri: InputUri | None = None
    """One augmentation prompt per line (`--predefined_prompts_file`); unset uses the bundled
    `qwen_edit_augmentations.txt`."""
    count: int = Field(1, ge=1, le=100)
    """Augmented versions per image (`--qwen_augmentation_count`)."""


class QwenAugmentationConfig(QwenAugmentationParameters):
    """Step 5 (optional): generative augmentations, images only."""

    enabled: bool = False
    """`--enable_qwen_augmentation`."""


class AnnotationParameters(GenfabModel):
    """What step 6 reads when it runs."""

    split_ratio: float = Field(0.8, gt=0.0, lt=1.0)
    """Train fraction of the train/val split."""
    sam_type: Literal["vit_h", "vit_l", "vit_b"] = "vit_h"
    """SAM backbone."""
    sam_model: Annotated[str, MODEL] = Field("ybelkada/segment-anything", max_length=256)
    """SAM's folder under the model location (its checkpoint file inside, by `samType`)."""
    sam2_model: Annotated[str, MODEL] = Field("facebook/sam2.1-hiera-large", max_length=256)
    """SAM2's folder under the model location (its config and checkpoint inside)."""
    sam_checkpoint: str | None = Field(None, max_length=1024)
    """SAM checkpoint (default: from the model location)."""
    sam2_config: str | None = Field(None, max_length=1024)
    """SAM2 config (default: from the model location)."""
    sam2_checkpoint: str | None = Field(None, max_length=1024)
    """SAM2 checkpoint (default: from the model location)."""
    persam_training: bool = False
    """Fine-tune PerSAM on the reference (`--enable_persam_training`)."""
    persam_lr: float = Field(1e-3, gt=0.0, le=1.0)
    """PerSAM learning rate."""
    persam_epochs: int = Field(1000, ge=1, le=100000)
    """PerSAM training epochs."""
    persam_log_epoch: Annotated[int, RUN_TIME] = Field(200, ge=1, le=100000)
    """PerSAM log interval."""


class AnnotationConfig(AnnotationParameters):
    """Step 6: PerSAM + SAM2 segmentation into a YOLO dataset."""

    enabled: bool = True
    """`--enable_annotation`."""


class CvProbabilities(GenfabModel):
    """Each augmentation is applied independently with its probability."""

    bw: Probability = 0.5
    """Black & white conversion."""
    saturation: Probability = 0.7
    """Saturation shift."""
    contrast: Probability = 0.5
    """Contrast adjustment."""
    brightness: Probability = 0.3
    """Brightness adjustment."""
    motion_blur: Probability = 0.8
    """Motion blur kernel."""
    compression_noise: Probability = 1.0
    """JPEG compression noise."""


class CvRanges(GenfabModel):
    """Intensity ranges of the augmentations."""

    rules = (
        Rule(
            "self.saturation.min >= 0.0 && self.contrast.min >= 0.0 && self.brightness.min >= 0.0",
            "saturation, contrast and brightness multipliers must be >= 0",
            "saturation",
            lambda m: min(m.saturation.min, m.contrast.min, m.brightness.min) >= 0.0,
        ),
        Rule(
            "self.motionBlur.min >= 3 && self.compressionIterations.min >= 1",
            "motionBlur kernel must be >= 3 pixels and compressionIterations >= 1",
            "motionBlur",
            lambda m: m.motion_blur.min >= 3 and m.compression_iterations.min >= 1,
        ),
        Rule(
            "self.compressionQuality.min >= 1 && self.compressionQuality.max <= 100",
            "compressionQuality must lie within 1-100",
            "compressionQuality",
            lambda m: m.compression_quality.min >= 1 and m.compression_quality.max <= 100,
        ),
    )

    saturation: FloatRange = Field(default_factory=lambda: FloatRange(min=0.1, max=2.5))
    """Saturation multiplier (1.0 = unchanged)."""
    contrast: FloatRange = Field(default_factory=lambda: FloatRange(min=0.2, max=0.8))
    """Contrast multiplier."""
    brightness: FloatRange = Field(default_factory=lambda: FloatRange(min=0.4, max=1.5))
    """Brightness multiplier."""
    motion_blur: IntRange = Field(default_factory=lambda: IntRange(min=20, max=55))
    """Motion blur kernel size in pixels."""
    compression_iterations: IntRange = Field(default_factory=lambda: IntRange(min=10, max=30))
    """Number of JPEG re-compression passes."""
    compression_quality: IntRange = Field(default_factory=lambda: IntRange(min=10, max=40))
    """JPEG quality (1-100)."""


class CvAugmentationParameters(GenfabModel):
    """What step 7 reads when it runs."""

    count: int = Field(1, ge=1, le=100)
    """Augmented versions per annotated image (`--cv_augmentation_count`)."""
    probabilities: CvProbabilities = Field(default_factory=CvProbabilities)
    """Per-augmentation probabilities."""
    ranges: CvRanges = Field(default_factory=CvRanges)
    """Per-augmentation ranges."""


class CvAugmentationConfig(CvAugmentationParameters):
    """Step 7 (optional): classical augmentations of the annotated dataset."""

    enabled: bool = True
    """`--enable_cv_augmentation`."""


class RetryConfig(GenfabModel):
    """Retry & recovery."""

    max_retries: int = Field(3, ge=0, le=20)
    """Retries per image generation attempt inside a shard (`--max_retries`)."""
    retry_failed: bool = False
    """Make the failed Step 4 generations again (`--retry_failed`): the steps before it do not run,
    its committed images are reused, and steps 5-7 run on to add what follows from the new images
    (their committed samples are reused too), so the final dataset includes them."""
    retry_failed_qwen_augmentations: bool = False
    """Make the failed Step 5 augmentations again (`--retry_failed_qwen_augmentations`), and steps
    6-7 for them, the same way."""


class ReferenceObjectConfig(GenfabModel):
    """The lab's reference-object script's pipeline parameters, table by table."""

    rules = (
        Rule(
            "!self.annotation.enabled || has(self.inputMask)",
            "`inputMask` is required when annotation is enabled",
            "inputMask",
            lambda m: not m.annotation.enabled or m.input_mask is not None,
        ),
        Rule(
            "!self.cvAugmentation.enabled || self.annotation.enabled",
            "cvAugmentation runs on the annotated dataset: enable annotation too",
            "cvAugmentation",
            lambda m: not m.cv_augmentation.enabled or m.annotation.enabled,
        ),
        Rule(
            "!has(self.executionMode) || self.executionMode != 'byName' || has(self.executionName)",
            "executionMode byName needs `executionName`",
            "executionMode",
            lambda m: m.execution_mode != "byName" or m.execution_name is not None,
        ),
        Rule(
            "!has(self.executionName) || !has(self.executionMode) || self.executionMode == 'byName'",
            "`executionName` is read only with executionMode byName (`new` makes a timestamped "
            "execution, `last` takes the most recently modified one)",
            "executionName",
            lambda m: m.execution_name is None or m.execution_mode in (None, "byName"),
        ),
        Rule(
            "!self.retry.retryFailedQwenAugmentations || self.qwenAugmentation.enabled",
            "retryFailedQwenAugmentations needs qwenAugmentation.enabled",
            "retry",
            lambda m: not m.retry.retry_failed_qwen_augmentations or m.qwen_augmentation.enabled,
        ),
        quality_rule(REFERENCE_IMAGE),
        quality_range_rule(REFERENCE_IMAGE),
    )

    input_image: InputUri
    """Reference image of the object (`--input_image`)."""
    input_mask: InputUri | None = None
    """Mask of the reference image (`--input_mask`); required when annotation is enabled."""
    object_name: str = Field(min_length=1, max_length=256)
    """Object name, used for labels and prompts (`--object_name`)."""
    execution_mode: Literal["new", "last", "byName"] | None = None
    """Which execution folder under the output the steps write (seed `--execution_mode`): `new`, a
    timestamped folder (`YYYYMMDD_HHMMSS`, UTC); `last`, the most recently modified execution under
    the output; `byName`, `executionName`. `new` and `last` are chosen once, when the resource first
    runs, and kept (status `execution`), so later changes to the resource (`startFromStep`, `retry`)
    work on the same execution. Unset: `byName` when `executionName` is set, else `new` (the lab's script's
    default)."""
    execution_name: str | None = Field(None, pattern=EXECUTION_NAME)
    """The execution folder for `byName` (seed `--execution_name`)."""
    start_from_step: int = Field(1, ge=1, le=7)
    """Start from this step (1-7; `--start_from_step`): earlier steps are not run (their committed
    outputs are reused); the steps from it on run, reuse what they committed under the same
    settings (add `rerun` to make it again), and drop what no longer follows from their inputs, so
    each numbered folder holds exactly what the current settings make."""
    perspectives: PerspectivesConfig = Field(default_factory=PerspectivesConfig)
    """Step 2."""
    scenes: SceneGenerationConfig = Field(default_factory=SceneGenerationConfig)
    """Steps 3-4."""
    qwen_augmentation: QwenAugmentationConfig = Field(default_factory=QwenAugmentationConfig)
    """Step 5."""
    annotation: AnnotationConfig = Field(default_factory=AnnotationConfig)
    """Step 6."""
    cv_augmentation: CvAugmentationConfig = Field(default_factory=CvAugmentationConfig)
    """Step 7."""
    retry: RetryConfig = Field(default_factory=RetryConfig)
    """Retry & recovery."""
    seed: int = Field(12345, ge=0)
    """Base seed for per-image seeds."""

    def execution_choice(self) -> Literal["new", "last"] | None:
        """The execution the executor chooses once and keeps (None: `executionName` names it)."""
        mode = self.execution_mode or ("byName" if self.execution_name else "new")
        return None if mode == "byName" else mode

    def first_step(self) -> int:
        """The first step that runs: a retry mode's step, else `startFromStep`."""
        retried = [step for step, on in ((4, self.retry.retry_failed),
                                         (5, self.retry.retry_failed_qwen_augmentations)) if on]
        return min(retried) if retried else self.start_from_step

    quality: dict[str, QualityBound] = Field(default_factory=dict, max_length=32)
    """Bounds on the annotated images' quality figures (`objectArea`, `maskAgreement`, ...: the figures
    and what each measures are in the reference-object pipeline's docs), by figure name. The
    `annotation` stage drops an image outside a bound with `QualityOutOfRange` (figure, value, bound)
    before it writes its label: it is not in the YOLO dataset; the generated images stay, so changing a
    bound annotates again without generating again. Figures it does not name keep their default bound
    (the figures table's "default" column); naming one with neither `min` nor `max` lifts it."""


def lora_family(lora: str) -> LoraFamily:
    """Which prompt vocabulary a multi-camera LoRA was trained on (by its repository name)."""
    return "multiple-angles-2511" if "2511" in lora else "multiple-angles-2509"


def lora_mismatch(lora: str, pipeline: str, model: str) -> str | None:
    """Why the multi-camera LoRA `lora` must not be applied to the edit model `model` (its
    `model_index.json` pipeline `pipeline`), in one line naming the fixes; None when they pair. Applied
    anyway it would load (one transformer design) and make other views than the ones asked for."""
    if pipeline == LORA_PIPELINE:
        return None
    base = "Qwen-Image-Edit-2511" if lora_family(lora) == "multiple-angles-2511" else "Qwen-Image-Edit-2509"
    return (f"perspectives.lora {lora} was trained on {base} ({LORA_PIPELINE}) and scenes.modelPath {model} is a "
            f"{pipeline}: set scenes.modelPath to a {base} export (e.g. ovedrive/Qwen-Image-Edit-2509-4bit), or "
            "perspectives.generator: zero123")

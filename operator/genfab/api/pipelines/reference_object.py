"""DatasetJob pipeline `reference-object` (the lab's reference-object script): white-background -> perspectives ->
prompts ->
scenes [-> qwen-augmentation] -> annotation [-> cv-augmentation], under `{execution}/01_… 07_…`
(the execution folder: `executionName`, or the one the executor chose for `executionMode`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from pydantic import Field

from genfab.api.base import MODEL, RUN_TIME, GenfabModel, ModelReference
from genfab.api.lab.reference_object import COMPARISON as LAB
from genfab.api.pipeline import Draft, DraftRequest, Pipeline, PipelineDrafts, StageDecl, cpu_stage
from genfab.api.quality import REFERENCE_IMAGE, QualityGate
from genfab.api.reference_object import (
    AnnotationParameters,
    CvAugmentationParameters,
    EditRuntime,
    PerspectivesConfig,
    QwenAugmentationParameters,
    ReferenceObjectConfig,
    lora_mismatch,
)
from genfab.contract.paths import join_uri

STAGES = "genfab.stages.reference_object"


class EditSettings(GenfabModel):
    """What every Qwen Image Edit step shares."""

    object_name: str
    """`referenceObject.objectName`."""
    seed: int
    """`referenceObject.seed`."""
    model_path: Annotated[str, MODEL]
    """`referenceObject.scenes.modelPath`: the Qwen Image Edit pipeline."""
    steps: int
    true_cfg_scale: float
    edit_runtime: Annotated[EditRuntime, RUN_TIME]
    """`referenceObject.scenes.editRuntime`."""


class WhiteBackgroundSettings(EditSettings):
    """Step 1 `white-background`."""

    camera_lora: Annotated[str | None, RUN_TIME] = None
    """`referenceObject.perspectives.lora` when step 2 makes qwen_multicamera views: step 1 loads the
    same edit model and refuses the pair before its sample when the LoRA does not fit it. Out of the
    hash: another LoRA does not make step 1's image again."""


class PerspectivesSettings(EditSettings):
    """Step 2 `perspectives`."""

    model_path: Annotated[str, ModelReference(lambda m: m.perspectives.generator == "qwen_multicamera")]
    """`referenceObject.scenes.modelPath`, loaded only for qwen_multicamera views (Zero123++ needs it not)."""
    perspectives: PerspectivesConfig


class PromptsSettings(GenfabModel):
    """Step 3 `prompts` (the endpoint is an option: where the LLM runs does not change the prompts)."""

    object_name: str
    seed: int
    num_prompts: int
    llm_model: Annotated[str, ModelReference(endpoint=True)]
    """`referenceObject.scenes.llmModel`: the endpoint's model (its name is its identity)."""
    llm_temperature: float
    system_prompt_uri: str | None = None
    """Unset: the system prompt genfab ships."""
    project_info_uri: str | None = None
    """Unset: the project information genfab ships."""


class ScenesSettings(EditSettings):
    """Step 4 `scenes`."""

    num_prompts: int
    num_iterations: int


class QwenAugmentationSettings(EditSettings):
    """Step 5 `qwen-augmentation`."""

    qwen_augmentation: QwenAugmentationParameters


class AnnotationSettings(GenfabModel):
    """Step 6 `annotation`."""

    object_name: str
    seed: int
    annotation: AnnotationParameters
    gate: QualityGate = Field(default_factory=QualityGate, alias="quality")
    """`referenceObject.quality` over the figures' defaults: the image is dropped here when it misses one."""


class CvAugmentationSettings(GenfabModel):
    """Step 7 `cv-augmentation`."""

    seed: int
    cv_augmentation: CvAugmentationParameters


def lora_fit(settings: PerspectivesSettings, classes: Mapping[str, str]) -> str | None:
    """The multi-camera LoRA against the edit model's pipeline, where the executor read it."""
    cfg, found = settings.perspectives, classes.get(settings.model_path)
    if cfg.generator != "qwen_multicamera" or found is None:
        return None
    return lora_mismatch(cfg.lora, found, settings.model_path)


def zero123_code(settings: PerspectivesSettings) -> tuple[str, str] | None:
    """Zero123++ runs its authors' pipeline.py from the model location: code the resource chose."""
    if settings.perspectives.generator != "zero123":
        return None
    return ("spec.referenceObject.perspectives.generator",
            f"Zero123++'s pipeline.py from the model location ({settings.perspectives.zero123_pipeline})")


def drafts(req: DraftRequest) -> PipelineDrafts:
    ro: ReferenceObjectConfig = req.block
    sc = ro.scenes
    perspectives = ro.perspectives.count()
    generated = perspectives * sc.num_prompts * sc.num_iterations
    qwen = ro.qwen_augmentation
    annotated = generated * (1 + qwen.count) if qwen.enabled else generated
    first_step = ro.first_step()

    edit = {"object_name": ro.object_name, "seed": ro.seed, "model_path": sc.model_path, "steps": sc.steps,
            "true_cfg_scale": sc.true_cfg_scale, "edit_runtime": sc.edit_runtime}
    drafts = [
        Draft("white-background", WhiteBackgroundSettings(
            **edit, camera_lora=ro.perspectives.lora if ro.perspectives.generator == "qwen_multicamera" else None),
            1, input_uris=(ro.input_image,)),
        Draft("perspectives", PerspectivesSettings(**edit, perspectives=ro.perspectives), perspectives),
        Draft("prompts", PromptsSettings(object_name=ro.object_name, seed=ro.seed, num_prompts=sc.num_prompts,
                                         llm_model=sc.llm_model, llm_temperature=sc.llm_temperature,
                                         system_prompt_uri=sc.system_prompt_uri,
                                         project_info_uri=sc.project_info_uri), 1,
              input_uris=tuple(u for u in (sc.system_prompt_uri, sc.project_info_uri) if u),
              options={"llmEndpoint": sc.llm_endpoint, "llmTimeoutSeconds": sc.llm_timeout_seconds}),
        Draft("scenes", ScenesSettings(**edit, num_prompts=sc.num_prompts, num_iterations=sc.num_iterations),
              generated, options={"maxRetries": ro.retry.max_retries}),
        Draft("qwen-augmentation", QwenAugmentationSettings(
            **edit, qwen_augmentation=QwenAugmentationParameters.part_of(qwen)),
              generated * qwen.count, enabled=qwen.enabled,
              input_uris=(qwen.predefined_prompts_uri,) if qwen.predefined_prompts_uri else (),
              options={"maxRetries": ro.retry.max_retries}),
        Draft("annotation", AnnotationSettings(object_name=ro.object_name, seed=ro.seed,
                                               annotation=AnnotationParameters.part_of(ro.annotation),
                                               gate=QualityGate.of(REFERENCE_IMAGE, ro.quality)),
              annotated, enabled=ro.annotation.enabled, input_uris=(ro.input_image, ro.input_mask or ""),
              extra_upstream=("qwen-augmentation",) if qwen.enabled else ()),
        Draft("cv-augmentation", CvAugmentationSettings(seed=ro.seed,
                                                      cv_augmentation=CvAugmentationParameters.part_of(ro.cv_augmentation)),
              annotated * ro.cv_augmentation.count, enabled=ro.cv_augmentation.enabled),
    ]
    for step, d in enumerate(drafts, start=1):
        d.run = step >= first_step
        d.input_uris = tuple(u for u in d.input_uris if u)
    choice = ro.execution_choice()
    folder = ro.execution_name if choice is None else req.execution or f"{{{choice}}}"
    return PipelineDrafts(join_uri(req.spec.output, folder or ""), drafts)


def execution_choice(block: ReferenceObjectConfig) -> str | None:
    return block.execution_choice()


PIPELINE = Pipeline(
    lab=LAB,
    name="reference-object", kind="DatasetJob", value="reference-object",
    description="reference image -> perspectives -> scenes -> augmentation -> PerSAM+SAM2 -> YOLO dataset",
    position=1, block="reference_object", block_model=ReferenceObjectConfig, drafts=drafts,
    figures=REFERENCE_IMAGE,
    execution=execution_choice,
    stages=(
        StageDecl("white-background", family="diffusion",
                  description="Step 1: object on a white background (Qwen Image Edit)",
                  settings=WhiteBackgroundSettings, implementation=f"{STAGES}.edit_stages:WHITE_BACKGROUND_STAGE",
                  memory="48Gi",
                  shard_size=1, output="01_white_background.png", singleton=True),
        StageDecl("perspectives", family="diffusion",
                  description="Step 2: viewing angles (Qwen Multi-Camera or Zero123++)",
                  settings=PerspectivesSettings, implementation=f"{STAGES}.edit_stages:PERSPECTIVES",
                  memory="48Gi", shard_size=8,
                  upstream=("white-background",), output="02_perspectives/",
                  units=f"{STAGES}.units:perspective_units", model_fit=lora_fit,
                  tenant_code=zero123_code),
        StageDecl("prompts", family="cv", description="Step 3: scene prompts from an OpenAI-compatible LLM endpoint",
                  settings=PromptsSettings,
                  implementation=f"{STAGES}.prompts_stage:PROMPTS", gpus=0, cpu="1", memory="2Gi", shard_size=1,
                  upstream=("perspectives",), output="03_prompts/", singleton=True,
                  units=f"{STAGES}.units:prompt_units"),
        StageDecl("scenes", family="diffusion",
                  description="Step 4: each perspective x prompt x iteration via Qwen Image Edit",
                  settings=ScenesSettings, implementation=f"{STAGES}.edit_stages:SCENES", memory="48Gi",
                  shard_size=8,
                  upstream=("perspectives", "prompts"),
                  output="04_dataset/", units=f"{STAGES}.units:scene_units"),
        StageDecl("qwen-augmentation", family="diffusion", description="Step 5 (optional): generative augmentations",
                  settings=QwenAugmentationSettings, implementation=f"{STAGES}.edit_stages:QWEN_AUGMENTATION",
                  memory="48Gi",
                  shard_size=8, upstream=("scenes",),
                  output="05_qwen_augmented_images/, 05_qwen_combined_images/",
                  units=f"{STAGES}.units:augmentation_units"),
        StageDecl("annotation", family="segment",
                  description="Step 6: PerSAM + SAM2 masks -> YOLO dataset with train/val split",
                  settings=AnnotationSettings, implementation=f"{STAGES}.annotate_stage:ANNOTATION",
                  memory="24Gi", shard_size=64,
                  upstream=("scenes",), output="06_yolo_dataset/",
                  units=f"{STAGES}.units:annotation_units"),
        cpu_stage("cv-augmentation", "Step 7 (optional): B/W, blur, compression; labels copied verbatim",
                  CvAugmentationSettings, ("annotation",), "07_cv_augmented_dataset/, 07_cv_combined_dataset/",
                  f"{STAGES}.cv_stage:CV_AUGMENTATION",
                  barrier=True),  # its folders hold exactly the dataset's images, and it copies the classes
    ),
)

"""DatasetJob pipeline `reference-object` (seed 004): white-background -> perspectives -> prompts ->
scenes [-> qwen-augmentation] -> annotation [-> cv-augmentation], under `{executionName}/01_… 07_…`."""

from __future__ import annotations

from genfab.api.pipeline import (
    Draft,
    DraftRequest,
    Pipeline,
    PipelineDrafts,
    StageDecl,
    cpu_stage,
    fill,
    picked,
    settings_model,
)
from genfab.api.reference_object import ReferenceObjectConfig, SceneGenerationConfig
from genfab.contract.paths import join_uri

_OBJECT = picked(ReferenceObjectConfig, "object_name", "seed")
_MODEL = picked(SceneGenerationConfig, "model_path")

WhiteBackgroundSettings = settings_model("WhiteBackgroundSettings", "Step 1.", **_OBJECT, **_MODEL)
PerspectivesSettings = settings_model("PerspectivesSettings", "Step 2.",
                                      **picked(ReferenceObjectConfig, "perspectives"), **_MODEL)
PromptsSettings = settings_model("PromptsSettings", "Step 3.", **_OBJECT, **picked(
    SceneGenerationConfig, "num_prompts", "llm_model", "system_prompt_uri", "project_info_uri"))
ScenesSettings = settings_model("ScenesSettings", "Step 4.", **_OBJECT,
                                **picked(SceneGenerationConfig, "num_iterations", "model_path"))
QwenAugmentationSettings = settings_model("QwenAugmentationSettings", "Step 5.", **_OBJECT, **_MODEL,
                                          **picked(ReferenceObjectConfig, "qwen_augmentation"))
AnnotationSettings = settings_model("AnnotationSettings", "Step 6.",
                                    **picked(ReferenceObjectConfig, "object_name", "annotation"))
CvAugmentationSettings = settings_model("CvAugmentationSettings", "Step 7.",
                                        **picked(ReferenceObjectConfig, "cv_augmentation", "seed"))


def drafts(req: DraftRequest) -> PipelineDrafts:
    ro: ReferenceObjectConfig = req.block
    sc = ro.scenes
    perspectives = ro.perspectives.count()
    generated = perspectives * sc.num_prompts * sc.num_iterations
    qwen = ro.qwen_augmentation
    annotated = generated * (1 + qwen.count) if qwen.enabled else generated
    retry_only = ro.retry.retry_failed or ro.retry.retry_failed_qwen_augmentations

    def step_run(step: int, name: str) -> bool:
        if retry_only:
            return (name == "scenes" and ro.retry.retry_failed) or (
                name == "qwen-augmentation" and ro.retry.retry_failed_qwen_augmentations)
        return step >= ro.start_from_step

    drafts = [
        Draft("white-background", fill(WhiteBackgroundSettings, ro, model_path=sc.model_path), 1,
              input_uris=(ro.input_image,)),
        Draft("perspectives", fill(PerspectivesSettings, ro, model_path=sc.model_path), perspectives),
        Draft("prompts", fill(PromptsSettings, sc, object_name=ro.object_name, seed=ro.seed), 1,
              options={"llmEndpoint": sc.llm_endpoint}),
        Draft("scenes", fill(ScenesSettings, sc, object_name=ro.object_name, seed=ro.seed), generated,
              options={"maxRetries": ro.retry.max_retries, "retryFailedOnly": ro.retry.retry_failed}),
        Draft("qwen-augmentation", fill(QwenAugmentationSettings, ro, model_path=sc.model_path),
              generated * qwen.count, enabled=qwen.enabled,
              options={"retryFailedOnly": ro.retry.retry_failed_qwen_augmentations}),
        Draft("annotation", fill(AnnotationSettings, ro), annotated, enabled=ro.annotation.enabled,
              input_uris=(ro.input_image, ro.input_mask or ""),
              extra_upstream=("qwen-augmentation",) if qwen.enabled else ()),
        Draft("cv-augmentation", fill(CvAugmentationSettings, ro), annotated * ro.cv_augmentation.count,
              enabled=ro.cv_augmentation.enabled),
    ]
    for step, d in enumerate(drafts, start=1):
        d.run = step_run(step, d.name)
        d.input_uris = tuple(u for u in d.input_uris if u)
    return PipelineDrafts(join_uri(req.spec.output, ro.execution_name or req.name), drafts)


PIPELINE = Pipeline(
    name="reference-object", kind="DatasetJob", value="reference-object",
    description="seed 004: reference image -> perspectives -> scenes -> augmentation -> PerSAM+SAM2 -> YOLO dataset",
    position=1, block="reference_object", block_model=ReferenceObjectConfig, drafts=drafts,
    stages=(
        StageDecl("white-background", "diffusion", "Step 1: object on a white background (Qwen Image Edit)",
                  WhiteBackgroundSettings, memory="48Gi", shard_size=1, output="01_white_background.png",
                  singleton=True),
        StageDecl("perspectives", "diffusion", "Step 2: viewing angles (Qwen Multi-Camera or Zero123++)",
                  PerspectivesSettings, memory="48Gi", shard_size=8, upstream=("white-background",),
                  output="02_perspectives/"),
        StageDecl("prompts", "cv", "Step 3: scene prompts from an LLM (Ollama endpoint)", PromptsSettings, gpus=0,
                  cpu="1", memory="2Gi", shard_size=1, upstream=("perspectives",), output="03_prompts/",
                  singleton=True),
        StageDecl("scenes", "diffusion", "Step 4: each perspective x prompt x iteration via Qwen Image Edit",
                  ScenesSettings, memory="48Gi", shard_size=8, upstream=("perspectives", "prompts"),
                  output="04_dataset/"),
        StageDecl("qwen-augmentation", "diffusion", "Step 5 (optional): generative augmentations",
                  QwenAugmentationSettings, memory="48Gi", shard_size=8, upstream=("scenes",),
                  output="05_qwen_augmented_images/, 05_qwen_combined_images/"),
        StageDecl("annotation", "segment", "Step 6: PerSAM + SAM2 masks -> YOLO dataset with train/val split",
                  AnnotationSettings, memory="24Gi", shard_size=64, upstream=("scenes",), output="06_yolo_dataset/"),
        cpu_stage("cv-augmentation", "Step 7 (optional): B/W, blur, compression; labels copied verbatim",
                  CvAugmentationSettings, ("annotation",), "07_cv_augmented_dataset/, 07_cv_combined_dataset/"),
    ),
)

"""The stage catalog: every built-in pipeline's stages, in order, with image family and defaults.

This is the single source of truth for stage names and the stage -> image-family mapping. The API
validates stage selections against it, the planner builds DAGs from it, the stage registry, the
chart's default images and the image build script read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Family = Literal["cv", "scene", "segment", "diffusion"]
FAMILIES: tuple[Family, ...] = ("cv", "scene", "segment", "diffusion")
CUSTOM_FAMILY = "custom"


@dataclass(frozen=True)
class StageDef:
    name: str
    family: Family
    description: str
    gpus: int = 1
    cpu: str = "4"
    memory: str = "32Gi"
    shard_size: int = 8
    upstream: tuple[str, ...] = ()
    """Stages this one consumes; empty for the first stage (reads the job input)."""
    output: str = ""
    """Output layout relative to the resource's output URI (documentation and `genfab plan`)."""
    singleton: bool = False
    """The stage works on the whole sample set at once (one shard, whatever the shard size)."""


def _cpu(name: str, description: str, upstream: tuple[str, ...], output: str, shard: int = 64,
         singleton: bool = False) -> StageDef:
    return StageDef(name, "cv", description, gpus=0, cpu="2", memory="4Gi", shard_size=shard,
                    upstream=upstream, output=output, singleton=singleton)


WORLDEXPLORER = (
    StageDef("scaffold", "diffusion", "Stage 1: 8-view 360° scaffold (000-007) from the image (SEVA) or "
             "from prompts (FLUX + inpainting)", memory="48Gi", shard_size=1,
             output="{variant}/index_{index:04d}/scaffold/"),
    StageDef("expansion", "scene", "Stage 2: trajectory generation + VGGT geometry (no 3DGS)",
             memory="64Gi", shard_size=1, upstream=("scaffold",),
             output="{variant}/index_{index:04d}/scenes/"),
    StageDef("gaussians", "scene", "Stage 3: 3D Gaussian Splatting training and PLY export",
             memory="32Gi", shard_size=1, upstream=("expansion",),
             output="{variant}/index_{index:04d}/scenes/gaussians/"),
)

VISTADREAM = (
    StageDef("outpaint", "diffusion", "Flux-Fill outpainting of the border (expansionPercent)",
             memory="48Gi", shard_size=1, output="{sample}/outpaint/"),
    StageDef("depth", "segment", "One relative-depth pass on the outpainted image (depth, K, confidence)",
             memory="16Gi", shard_size=4, upstream=("outpaint",), output="{sample}/depth/"),
    StageDef("gaussians", "scene", "Initialise the Gaussian scene from input + outpaint frames, train",
             memory="32Gi", shard_size=1, upstream=("depth",), output="{sample}/gaussians/"),
    StageDef("coarse", "scene", "Coarse expansion: select poses, inpaint, align depth, add and train splats",
             memory="64Gi", shard_size=1, upstream=("gaussians",), output="{sample}/coarse/"),
    StageDef("render", "scene", "Render the final trajectory video and export the PLY",
             memory="16Gi", shard_size=1, upstream=("coarse",), output="{sample}/render/"),
)

RELIGHTING = (
    StageDef("segment", "segment", "Stage 1: person segmentation (SAM3 text prompt, SAM2, classical)",
             memory="16Gi", shard_size=32, output="data/stage_1/{id}_{foreground,background,mask}.png"),
    _cpu("albedo", "Stage 2: albedo extraction (Retinex, LAB, IntrinsicAnything)", ("segment",),
         "data/stage_2/{id}_albedo.png"),
    StageDef("degrade", "segment", "Stage 3: degradation synthesis (new lighting on the albedo)",
             memory="16Gi", shard_size=32, upstream=("albedo",),
             output="data/stage_3/{id}_{degraded.png,params.json}"),
    _cpu("recombine", "Stage 3.5: composite the relit person onto the original background",
         ("degrade",), "data/stage_3_5/{id}_composite.png"),
    StageDef("caption", "diffusion", "Stage 4 (optional): captions for the training pairs",
             memory="24Gi", shard_size=64, upstream=("recombine",), output="data/stage_4/{id}_caption.txt"),
    _cpu("organize", "Final outputs and metadata", ("recombine",),
         "outputs/{id}_{input.png,albedo.png,output.png,foreground.png,metadata.json}", shard=256),
)

REFERENCE_OBJECT = (
    StageDef("white-background", "diffusion", "Step 1: object on a white background (Qwen Image Edit)",
             memory="48Gi", shard_size=1, output="01_white_background.png", singleton=True),
    StageDef("perspectives", "diffusion", "Step 2: viewing angles (Qwen Multi-Camera or Zero123++)",
             memory="48Gi", shard_size=8, upstream=("white-background",), output="02_perspectives/"),
    StageDef("prompts", "cv", "Step 3: scene prompts from an LLM (Ollama endpoint)", gpus=0, cpu="1",
             memory="2Gi", shard_size=1, upstream=("perspectives",), output="03_prompts/", singleton=True),
    StageDef("scenes", "diffusion", "Step 4: each perspective x prompt x iteration via Qwen Image Edit",
             memory="48Gi", shard_size=8, upstream=("perspectives", "prompts"), output="04_dataset/"),
    StageDef("qwen-augmentation", "diffusion", "Step 5 (optional): generative augmentations",
             memory="48Gi", shard_size=8, upstream=("scenes",),
             output="05_qwen_augmented_images/, 05_qwen_combined_images/"),
    StageDef("annotation", "segment", "Step 6: PerSAM + SAM2 masks -> YOLO dataset with train/val split",
             memory="24Gi", shard_size=64, upstream=("scenes",), output="06_yolo_dataset/"),
    _cpu("cv-augmentation", "Step 7 (optional): B/W, blur, compression; labels copied verbatim",
         ("annotation",), "07_cv_augmented_dataset/, 07_cv_combined_dataset/"),
)

DIFIX = (
    StageDef("export", "scene", "Triplet export: imperfect render, target and reference images + meta.json",
             memory="24Gi", shard_size=1, output="samples/{sample_id}/"),
    _cpu("split", "Leak-free train/test split by group_id", ("export",),
         "manifests/{all_samples,split_train,split_test}.jsonl, split_summary.json", singleton=True),
    _cpu("adapter", "DiFix trainer adapter file and generation metadata", ("split",),
         "difix/data.json, meta/", singleton=True),
)

TUNING_DIFIX = (
    StageDef("train", "diffusion", "DiFix fine-tuning (accelerate launch train_difix.py)",
             memory="64Gi", cpu="8", shard_size=1, output="checkpoints/model_{step}.pkl, eval/, train_config.json"),
)

PIPELINES: dict[str, tuple[StageDef, ...]] = {
    "worldexplorer": WORLDEXPLORER,
    "vistadream": VISTADREAM,
    "relighting": RELIGHTING,
    "reference-object": REFERENCE_OBJECT,
    "difix": DIFIX,
    "tuning-difix": TUNING_DIFIX,
}


def stage_names(pipeline: str) -> tuple[str, ...]:
    return tuple(s.name for s in PIPELINES[pipeline])


def stage_def(pipeline: str, name: str) -> StageDef:
    for stage in PIPELINES[pipeline]:
        if stage.name == name:
            return stage
    raise KeyError(f"pipeline {pipeline!r} has no stage {name!r}")


def stage_families() -> dict[str, Family]:
    """Every built-in stage name -> image family (a stage name maps to one family everywhere)."""
    out: dict[str, Family] = {}
    for stages in PIPELINES.values():
        for s in stages:
            if out.setdefault(s.name, s.family) != s.family:
                raise AssertionError(f"stage {s.name!r} has two families")
    return out

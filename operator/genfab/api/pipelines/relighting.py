"""DatasetJob pipeline `relighting` (the lab's relighting script): segment -> albedo -> degrade -> recombine [->
caption]
-> organize, under `data/stage_1 … stage_4/`, `data/raw/` and `data/outputs/` (the lab's relighting layout)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from genfab.api.base import GenfabModel
from genfab.api.lab.relighting import COMPARISON as LAB
from genfab.api.pipeline import INPUT, Draft, DraftRequest, Pipeline, PipelineDrafts, StageDecl, cpu_stage
from genfab.api.quality import RELIGHTING, QualityGate
from genfab.api.relighting import (
    AlbedoConfig,
    CaptioningParameters,
    DegradationConfig,
    RelightingConfig,
    SegmentationConfig,
)

STAGES = "genfab.stages.relighting"


class SegmentSettings(GenfabModel):
    """Stage 1 `segment`."""

    segmentation: SegmentationConfig
    seed: int
    max_side: int
    """`relighting.input.maxSide`: the working size inputs are downscaled to."""


class AlbedoSettings(GenfabModel):
    """Stage 2 `albedo`."""

    albedo: AlbedoConfig
    seed: int


class DegradeSettings(GenfabModel):
    """Stage 3 `degrade`."""

    degradation: DegradationConfig
    seed: int


class RecombineSettings(GenfabModel):
    """Stage 3.5 `recombine`: composites what stages 1 and 3 wrote."""

    composite: Literal["binary", "soft"]


class CaptionSettings(GenfabModel):
    """Stage 4 `caption`."""

    captioning: CaptioningParameters


class OrganizeSettings(GenfabModel):
    """The final `organize` stage."""

    captions: bool
    """Whether `caption` ran (its text goes into the metadata)."""
    max_side: int
    """`relighting.input.maxSide`: past it, `{id}_input_working.png` is the input at the working size
    segment used (`{id}_input.png` stays the original)."""
    gate: QualityGate = Field(default_factory=QualityGate, alias="quality")
    """`relighting.quality` over the figures' defaults: the pair is dropped here when it misses one."""


CPU_BACKENDS = frozenset({"selfie", "classical"})
"""Segmentation backends that run on the CPU and load nothing from the model location."""


def segment_gpus(cfg: SegmentationConfig) -> int | None:
    """No GPU when only CPU backends are listed (`selfie`, `classical`); else the stage's (SAM3, SAM2 run
    on one)."""
    return 0 if set(cfg.backends) <= CPU_BACKENDS else None


def degrade_gpus(cfg: DegradationConfig) -> int | None:
    """No GPU when the normals are classical (no depth model loads); else the stage's."""
    return 0 if cfg.soft_shading.normals_model() is None else None


def drafts(req: DraftRequest) -> PipelineDrafts:
    rl: RelightingConfig = req.block
    listed = len(rl.input.sample_ids) if rl.input.sample_ids is not None else req.inventory.get(INPUT)
    n = min(listed, rl.num_samples) if listed is not None and rl.num_samples is not None else listed
    caption = rl.captioning.enabled
    selection = {"ids": rl.input.sample_ids, "limit": rl.num_samples}
    return PipelineDrafts(req.spec.output, [
        Draft("segment", SegmentSettings(segmentation=rl.segmentation, seed=rl.seed, max_side=rl.input.max_side), n,
              input_uris=(rl.input.uri,), selection=selection, gpus=segment_gpus(rl.segmentation)),
        Draft("albedo", AlbedoSettings(albedo=rl.albedo, seed=rl.seed), n),
        Draft("degrade", DegradeSettings(degradation=rl.degradation, seed=rl.seed), n,
              gpus=degrade_gpus(rl.degradation)),
        Draft("recombine", RecombineSettings(composite=rl.composite), n),
        Draft("caption", CaptionSettings(captioning=CaptioningParameters.part_of(rl.captioning)), n, enabled=caption),
        # organize copies the original input next to the results: the job input is its input too.
        Draft("organize", OrganizeSettings(captions=caption, max_side=rl.input.max_side,
                                           gate=QualityGate.of(RELIGHTING, rl.quality)), n,
              extra_upstream=("caption",) if caption else (), input_uris=(rl.input.uri,), selection=selection),
    ])


MODEL_SHARD = 256
"""Samples per Pod of segment and degrade. With their models (SAM3, Depth Anything) a Pod loads for 14-22 s
and then makes 20 images a second (H100, benchmarks/results/relighting.md): at 32 a shard the load was
three quarters of the GPU time, at 256 it is under a third (`genfab plan --estimate` shows it)."""

PIPELINE = Pipeline(
    lab=LAB,
    name="relighting", kind="DatasetJob", value="relighting",
    description="segmentation -> albedo -> new lighting -> recombination",
    position=0, block="relighting", block_model=RelightingConfig, drafts=drafts, figures=RELIGHTING,
    stages=(
        StageDecl("segment", family="segment",
                  description="Stage 1: person segmentation (SAM3 text prompt, SAM2, selfie person model, classical)",
                  settings=SegmentSettings, implementation=f"{STAGES}.segment_stage:SEGMENT", memory="16Gi",
                  shard_size=MODEL_SHARD,
                  output="data/stage_1/{id}_{foreground,background,mask}.png",
                  # 1: every mask pixel in the alpha and out of the plate (no black outline); 2: the
                  # classical mask laid out around the face (hair, neck and chest in, props out)
                  revision=2),
        cpu_stage("albedo", "Stage 2: albedo extraction (Retinex, LAB, IntrinsicAnything)", AlbedoSettings,
                  ("segment",), "data/stage_2/{id}_albedo.png", f"{STAGES}.albedo_stage:ALBEDO",
                  # 1: lightness lift bounded, a*/b* kept (dark clothes keep their colour); 2: never darker
                  # than the picture (the LAB method darkened lit faces)
                  revision=2),
        StageDecl("degrade", family="segment",
                  description="Stage 3: degradation synthesis (new lighting on the albedo)",
                  settings=DegradeSettings, implementation=f"{STAGES}.degrade_stage:DEGRADE", memory="16Gi",
                  shard_size=MODEL_SHARD,
                  upstream=("albedo",), output="data/stage_3/{id}_{degraded.png,params.json}"),
        cpu_stage("recombine", "Stage 3.5: composite the relit person onto the original background",
                  RecombineSettings, ("degrade",), "data/stage_3_5/{id}_composite.png",
                  f"{STAGES}.recombine_stage:RECOMBINE",
                  revision=1),  # 1: saturationRatio is saturation over lit pixels (was chroma)
        StageDecl("caption", family="diffusion", description="Stage 4 (optional): captions for the training pairs",
                  settings=CaptionSettings,
                  implementation=f"{STAGES}.caption_stage:CAPTION", memory="24Gi", shard_size=64,
                  upstream=("recombine",),
                  output="data/stage_4/{id}_caption.txt"),
        cpu_stage("organize", "Final outputs and metadata", OrganizeSettings, ("recombine",),
                  "data/{raw/{source},outputs/{id}_{input.png,albedo.png,output.png,foreground.png,metadata.json}}",
                  f"{STAGES}.organize_stage:ORGANIZE", shard=256),
    ),
)

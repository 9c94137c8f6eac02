"""DatasetJob pipeline `difix` (the lab's DiFix scripts): export -> split -> adapter, into `samples/`, `manifests/`,
`difix/data.json` and `meta/`."""

from __future__ import annotations

from pydantic import Field

from genfab.api.base import GenfabModel
from genfab.api.difix import DifixConfig, DifixSource, ImageFormat, ReferenceViewConfig, SplitConfig
from genfab.api.lab.difix import COMPARISON as LAB
from genfab.api.pipeline import Draft, DraftRequest, Pipeline, PipelineDrafts, StageDecl, cpu_stage
from genfab.api.quality import DIFIX_TRIPLET, QualityGate

STAGES = "genfab.stages.difix"


class ExportSettings(GenfabModel):
    """Triplet export: the sources (without their scene lists: those are a selection) and how samples
    are made."""

    sources: list[DifixSource]
    reference_view: ReferenceViewConfig
    image_format: ImageFormat


class SplitSettings(GenfabModel):
    """Leak-free split of the triplets the quality bounds keep."""

    split: SplitConfig
    gate: QualityGate = Field(default_factory=QualityGate, alias="quality")
    """`difix.quality` over the figures' defaults: a triplet that misses one is in no manifest (so the
    split, its summary, `data.json` and the stats agree), and `meta/dropped_samples.csv` says why."""


class AdapterSettings(GenfabModel):
    """Trainer adapter and metadata: the whole block (`meta/generation_config.yaml` holds its
    experiment-global settings, the quality bounds the split applied among them)."""

    difix: DifixConfig
    gate: QualityGate = Field(default_factory=QualityGate, alias="quality")
    """The split's bounds (the same gate): the adapter lists the triplets they left out and records them."""


def drafts(req: DraftRequest) -> PipelineDrafts:
    dx: DifixConfig = req.block
    # One export unit per scene, counted by listing the sources (the executors do, at the edge).
    # Which scenes is a selection, not a setting: adding a scene exports only it. The export reads
    # each source's effective grouping rule (pair for hi4d, scene otherwise).
    sources = [s.model_copy(update={"group_by": s.effective_group_by(), "scenes": None}) for s in dx.sources]
    within = {s.name: list(s.scenes) for s in dx.sources if s.scenes is not None}
    inputs = tuple(dict.fromkeys([s.uri for s in dx.sources] + [s.renders_uri for s in dx.sources if s.renders_uri]))
    ply = any(s.renders == "ply" for s in dx.sources)
    gate = QualityGate.of(DIFIX_TRIPLET, dx.quality)
    return PipelineDrafts(req.spec.output, [
        Draft("export", ExportSettings(sources=sources, reference_view=dx.reference_view, image_format=dx.image_format),
              None, input_uris=inputs,
              selection={"within": within or None}, gpus=None if ply else 0),
        # Whole-set stages (one shard): they account for every exported sample, known once listed.
        Draft("split", SplitSettings(split=dx.split, gate=gate), None),
        Draft("adapter", AdapterSettings(difix=dx, gate=gate), None),
    ])


PIPELINE = Pipeline(
    lab=LAB,
    name="difix", kind="DatasetJob", value="difix",
    description="DiFix triplets, leak-free group split, trainer adapter",
    position=2, block="difix", block_model=DifixConfig, drafts=drafts, figures=DIFIX_TRIPLET,
    stages=(
        StageDecl("export", family="scene",
                  description="Triplet export: imperfect render, target and reference images + meta.json "
                  "(one unit per source scene)", settings=ExportSettings,
                  implementation=f"{STAGES}.export_stage:EXPORT", cpu="4",
                  memory="16Gi", shard_size=4, output="samples/{sample_id}/, _genfab/difix/export/{scene}/",
                  units=f"{STAGES}.units:scene_units", revision=1),  # 1: 8-bit RGB files (RGBA, grey converted)
        cpu_stage("split", "Leak-free train/test split by group_id of the triplets the quality bounds keep",
                  SplitSettings, ("export",),
                  "manifests/{all_samples,split_train,split_test}.jsonl, manifests/split_summary.json",
                  f"{STAGES}.split_stage:SPLIT", singleton=True),
        cpu_stage("adapter", "DiFix trainer adapter file and generation metadata", AdapterSettings, ("split",),
                  "difix/data.json, meta/", f"{STAGES}.adapter_stage:ADAPTER", singleton=True,
                  revision=1),  # 1: generation_config.yaml records the quality bounds applied
    ),
)

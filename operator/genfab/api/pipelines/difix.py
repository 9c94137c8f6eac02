"""DatasetJob pipeline `difix` (seed 002): export -> split -> adapter, into `samples/`, `manifests/`,
`difix/data.json` and `meta/`."""

from __future__ import annotations

from genfab.api.difix import DifixConfig
from genfab.api.pipeline import (
    INPUT,
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

ExportSettings = settings_model("ExportSettings", "Triplet export.",
                                **picked(DifixConfig, "sources", "reference_view", "image_format"))
SplitSettings = settings_model("SplitSettings", "Leak-free split.", **picked(DifixConfig, "split"))
AdapterSettings = settings_model("AdapterSettings", "Trainer adapter.",
                                 **picked(DifixConfig, "prompt", "paths", "path_prefix"))


def drafts(req: DraftRequest) -> PipelineDrafts:
    dx: DifixConfig = req.block
    scenes = [len(s.scenes) if s.scenes is not None else None for s in dx.sources]
    exported = sum(s for s in scenes if s is not None) if None not in scenes else req.inventory.get(INPUT)
    # The export reads each source's effective grouping rule (pair for hi4d, scene otherwise).
    sources = [s.model_copy(update={"group_by": s.effective_group_by()}) for s in dx.sources]
    return PipelineDrafts(req.spec.output, [
        Draft("export", fill(ExportSettings, dx, sources=sources), exported,
              input_uris=tuple(s.uri for s in dx.sources)),
        Draft("split", fill(SplitSettings, dx), 1),
        Draft("adapter", fill(AdapterSettings, dx), 1),
    ])


PIPELINE = Pipeline(
    name="difix", kind="DatasetJob", value="difix",
    description="seed 002: DiFix triplets, leak-free group split, trainer adapter",
    position=2, block="difix", block_model=DifixConfig, drafts=drafts,
    stages=(
        StageDecl("export", "scene", "Triplet export: imperfect render, target and reference images + meta.json",
                  ExportSettings, memory="24Gi", shard_size=1, output="samples/{sample_id}/"),
        cpu_stage("split", "Leak-free train/test split by group_id", SplitSettings, ("export",),
                  "manifests/{all_samples,split_train,split_test}.jsonl, split_summary.json", singleton=True),
        cpu_stage("adapter", "DiFix trainer adapter file and generation metadata", AdapterSettings, ("split",),
                  "difix/data.json, meta/", singleton=True),
    ),
)

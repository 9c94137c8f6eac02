"""DatasetJob type `checksum-shared`: `checksum-chain`'s two stages declared to share one warm worker
(`Pipeline.shared_workers`), so `genfab run` runs both in one process (genfab.stages.runtime.shared). Load
it with `GENFAB_PIPELINES=tests.toy_pipeline.shared`."""

from __future__ import annotations

from genfab.api.pipeline import Pipeline, SharedWorker
from tests.toy_pipeline.chain import PIPELINE as CHAIN

PIPELINE = Pipeline(
    name="checksum-shared", kind="DatasetJob", value="checksum-shared",
    description="a test pipeline: two stages in one worker", block="shared", block_model=CHAIN.block_model,
    drafts=CHAIN.drafts, stages=CHAIN.stages,
    shared_workers=(SharedWorker(("digest", "upper"), holder="upper", models="nothing (a test pipeline)"),),
)

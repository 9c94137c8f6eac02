"""DatasetJob type `checksum-chain`: `digest` (as in `checksums`), then `upper`, which upper-cases each
digest: two stages of one output per sample and the same shard size, so `upper` takes `digest`'s shards
as they finish (genfab.planner.streaming). Load it with `GENFAB_PIPELINES=tests.toy_pipeline.chain`."""

from __future__ import annotations

from genfab.api.base import GenfabModel
from genfab.api.pipeline import INPUT, Draft, DraftRequest, Pipeline, PipelineDrafts, cpu_stage
from tests.toy_pipeline.pipeline import ChecksumsConfig, DigestSettings


class UpperSettings(GenfabModel):
    """The `upper` stage."""


def drafts(req: DraftRequest) -> PipelineDrafts:
    block: ChecksumsConfig = req.block
    n = req.inventory.get(INPUT)
    return PipelineDrafts(req.spec.output, [
        Draft("digest", DigestSettings(algorithm=block.algorithm), n, input_uris=(block.uri,),
              selection={"suffixes": (".png", ".txt")}),
        Draft("upper", UpperSettings(), n),
    ])


PIPELINE = Pipeline(
    name="checksum-chain", kind="DatasetJob", value="checksum-chain", description="a test pipeline: two stages",
    block="chain", block_model=ChecksumsConfig, drafts=drafts,
    stages=(cpu_stage("digest", "Digest of each input file", DigestSettings, (), "digests/{id}.txt",
                      "tests.toy_pipeline.stage:DIGEST", shard=2),
            cpu_stage("upper", "The digest upper-cased", UpperSettings, ("digest",), "uppers/{id}.txt",
                      "tests.toy_pipeline.stage:UPPER", shard=2)),
)

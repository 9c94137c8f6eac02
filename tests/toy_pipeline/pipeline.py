"""DatasetJob type `checksums`: one stage, `digest`, writes each input file's digest to
`digests/{id}.txt`. Everything genfab needs to know about the pipeline is declared here."""

from __future__ import annotations

from typing import Literal

from genfab.api.base import GenfabModel
from genfab.api.pipeline import INPUT, Draft, DraftRequest, Pipeline, PipelineDrafts, cpu_stage
from genfab.api.types import InputUri


class ChecksumsConfig(GenfabModel):
    """Digests of every input file."""

    uri: InputUri
    """Folder of input files."""
    algorithm: Literal["sha256", "blake2b"] = "sha256"
    """Digest algorithm."""


class DigestSettings(GenfabModel):
    """The `digest` stage."""

    algorithm: Literal["sha256", "blake2b"]


def drafts(req: DraftRequest) -> PipelineDrafts:
    block: ChecksumsConfig = req.block
    return PipelineDrafts(req.spec.output, [
        Draft("digest", DigestSettings(algorithm=block.algorithm), req.inventory.get(INPUT), input_uris=(block.uri,),
              selection={"suffixes": (".png", ".txt")}),
    ])


PIPELINE = Pipeline(
    name="checksums", kind="DatasetJob", value="checksums", description="a test pipeline: file digests",
    block="checksums", block_model=ChecksumsConfig, drafts=drafts,
    stages=(cpu_stage("digest", "Digest of each input file", DigestSettings, (), "digests/{id}.txt",
                      "tests.toy_pipeline.stage:DIGEST", shard=2),),
)

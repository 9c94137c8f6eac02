"""The `checksums` pipeline's one stage, on the real stage runtime."""

from __future__ import annotations

import hashlib

from genfab.stages.runtime import Sample, Stage
from tests.toy_pipeline.pipeline import DigestSettings


class DigestStage(Stage[DigestSettings]):
    name = "digest"
    marker_dir = "_markers"

    def process(self, sample: Sample) -> None:
        digest = hashlib.new(self.settings.algorithm, sample.read_source()).hexdigest()
        sample.write(f"{sample.id}.txt", f"{digest}\n".encode())

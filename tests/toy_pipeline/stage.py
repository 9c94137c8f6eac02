"""The `checksums` pipeline's one stage, on the real stage runtime. Test hooks, each off unless its
environment variable is set: `GENFAB_TEST_SETUPS` (a file: each `setup` appends its pid, so a test
counts model loads per process), `GENFAB_TEST_LEDGER` (a file: each sample started appends `pid id`),
`GENFAB_TEST_SLEEP` (seconds per sample), `GENFAB_TEST_TIMES` (a file: `stage:time id` as each sample
starts); an input starting with `POISON` fails its sample, one starting with `CRASH` its process."""

from __future__ import annotations

import hashlib
import os
import time

from genfab.api.base import GenfabModel
from genfab.stages.runtime import Sample, SampleError, Stage, StageContext
from tests.toy_pipeline.pipeline import DigestSettings


def _append(path: str | None, line: str) -> None:
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


class DigestStage(Stage[DigestSettings]):
    name = "digest"
    marker_dir = "_markers"

    def setup(self, ctx: StageContext) -> None:
        _append(ctx.env.get("GENFAB_TEST_SETUPS"), str(os.getpid()))
        self.ledger = ctx.env.get("GENFAB_TEST_LEDGER")
        self.sleep = float(ctx.env.get("GENFAB_TEST_SLEEP") or 0)

    def process(self, sample: Sample) -> None:
        data = sample.read_source()
        _append(self.ledger, f"{os.getpid()} {sample.id}")
        _append(sample.ctx.env.get("GENFAB_TEST_TIMES"), f"digest:{time.time():.3f} {sample.id}")
        time.sleep(self.sleep)
        if data.startswith(b"CRASH"):
            os._exit(1)
        if data.startswith(b"POISON"):
            raise SampleError("BadContent", f"{sample.id} is poisoned")
        digest = hashlib.new(self.settings.algorithm, data).hexdigest()
        sample.write(f"{sample.id}.txt", f"{digest}\n".encode())


class UpperStage(Stage[GenfabModel]):
    """`checksum-chain`'s second stage: reads the sample's digest from `digest`'s output."""

    name = "upper"
    marker_dir = "_markers"

    def setup(self, ctx: StageContext) -> None:
        _append(ctx.env.get("GENFAB_TEST_SETUPS"), f"upper {os.getpid()}")

    def process(self, sample: Sample) -> None:
        _append(sample.ctx.env.get("GENFAB_TEST_TIMES"), f"upper:{time.time():.3f} {sample.id}")
        sample.write(f"{sample.id}.txt", sample.read_upstream(f"{sample.id}.txt").upper())

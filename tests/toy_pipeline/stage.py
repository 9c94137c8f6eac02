"""The `checksums` pipeline's stages, on the real stage runtime, each a `SampleStage`: what a worker loads
once, what it makes of a sample, what made it. Test hooks, each off unless its environment variable is
set: `GENFAB_TEST_SETUPS` (a file: each load appends its pid, so a test counts model loads per process),
`GENFAB_TEST_LEDGER` (a file: each sample started appends `pid id`), `GENFAB_TEST_SLEEP` (seconds per
digest sample; `GENFAB_TEST_UPPER_SLEEP` per upper sample), `GENFAB_TEST_TIMES` (a file: `stage:time id`
as each sample starts); an input starting with `POISON` fails its sample, one starting with `CRASH` its
process; `GENFAB_TEST_COMPILE_CACHE` (a file: each load appends the process's `GENFAB_COMPILE_CACHE`).
`GENFAB_TEST_HOLD` (`ID:PATH`) holds digest's sample ID until the file PATH exists, and crashes
its process if it never does within a minute: a test's order of events that holds however loaded the
machine is, and fails when that order cannot happen (a downstream stage that never streams)."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass

from genfab.api.base import GenfabModel
from genfab.stages.runtime import Sample, SampleError, SampleStage, StageContext
from tests.toy_pipeline.pipeline import DigestSettings


def _append(path: str | None, line: str) -> None:
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


@dataclass(frozen=True)
class Hasher:
    """What a `digest` worker holds from sample to sample (its "model")."""

    algorithm: str
    ledger: str | None
    sleep: float


def load_hasher(settings: DigestSettings, ctx: StageContext) -> Hasher:
    _append(ctx.env.get("GENFAB_TEST_SETUPS"), str(os.getpid()))
    _append(ctx.env.get("GENFAB_TEST_COMPILE_CACHE"), ctx.env.get("GENFAB_COMPILE_CACHE", "unset"))
    return Hasher(settings.algorithm, ctx.env.get("GENFAB_TEST_LEDGER"), float(ctx.env.get("GENFAB_TEST_SLEEP") or 0))


def _hold(sample: Sample, seconds: float = 60.0) -> None:
    """`GENFAB_TEST_HOLD`: this sample waits for its file, or the process ends."""
    held, _, path = (sample.ctx.env.get("GENFAB_TEST_HOLD") or "").partition(":")
    if held != sample.id:
        return
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            os._exit(2)
        time.sleep(0.05)


def digest(hasher: Hasher, sample: Sample) -> None:
    data = sample.read_source()
    _append(hasher.ledger, f"{os.getpid()} {sample.id}")
    _append(sample.ctx.env.get("GENFAB_TEST_TIMES"), f"digest:{time.time():.3f} {sample.id}")
    time.sleep(hasher.sleep)
    _hold(sample)
    if data.startswith(b"CRASH"):
        os._exit(1)
    if data.startswith(b"POISON"):
        raise SampleError("BadContent", f"{sample.id} is poisoned")
    sample.write(f"{sample.id}.txt", f"{hashlib.new(hasher.algorithm, data).hexdigest()}\n".encode())


DIGEST = SampleStage("digest", load_hasher, digest, made_by=lambda hasher: f"hashlib:{hasher.algorithm}",
                     marker_dir="_markers")


def load_upper(settings: GenfabModel, ctx: StageContext) -> None:
    _append(ctx.env.get("GENFAB_TEST_SETUPS"), f"upper {os.getpid()}")


def upper(_: None, sample: Sample) -> None:
    """`checksum-chain`'s second stage: reads the sample's digest from `digest`'s output."""
    _append(sample.ctx.env.get("GENFAB_TEST_TIMES"), f"upper:{time.time():.3f} {sample.id}")
    time.sleep(float(sample.ctx.env.get("GENFAB_TEST_UPPER_SLEEP") or 0))
    sample.write(f"{sample.id}.txt", sample.read_upstream(f"{sample.id}.txt").upper())


UPPER = SampleStage("upper", load_upper, upper, marker_dir="_markers")

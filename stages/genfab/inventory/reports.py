"""Shard reports: what each shard has done, written by the shard process into the run folder
(`_genfab/progress/`) while it runs and once at the end, and read by both executors."""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Literal

from pydantic import TypeAdapter, ValidationError

from genfab.contract.names import MAX_STAGE_SHARDS, quality_prefix, report_key, report_prefix, work_prefix
from genfab.storage.base import Storage, StorageError, StorageLimit, StorageTooLarge

MAX_REPORT_BYTES = 16 << 20
"""A shard report lists its samples' ids: far below this even for 100,000 samples. Anything larger
is not a report genfab wrote, and reading it would cost the operator (every tenant's) memory."""
LARGE_REPORT_BYTES = 1 << 20
"""Reports larger than this are decoded one at a time in a process (`_DECODING`): decoded, a report takes
up to about 9 times its bytes (measured: short ids, timings and failures), so eight workers decoding
eight 15 MiB reports at once would hold over a GiB; one at a time, at most about 150 MB."""
_DECODING = threading.Lock()
MAX_SHARDS = MAX_STAGE_SHARDS
"""The most shards a stage has (`genfab.contract.names.MAX_STAGE_SHARDS`, refused above it when planned or
started): a report index at or above a stage's shard count is not one of its shards, and is not read."""
MAX_RUN_SECONDS = 30 * 86400.0
"""The most one shard report may claim its processes ran (a report is the tenant's Pod's to write: a time
beyond any Job's is not counted as more)."""
MAX_MESSAGE = 200
MAX_NOTES = 20

ShardState = Literal["running", "succeeded", "failed"]


@dataclass
class FailedSample:
    id: str
    reason: str
    """Short machine-readable cause (`SampleError`, `DecodeError`, `Timeout`, ...)."""
    message: str = ""


@dataclass
class ShardReport:
    """What one shard has done so far. Written by the Pod while it runs and once at the end."""

    stage: str
    config_hash: str
    index: int
    shards: int
    state: ShardState = "running"
    total: int = 0
    succeeded: list[str] = field(default_factory=list)
    """Committed samples, including `reused` ones (committed earlier with the same config hash)."""
    reused: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    """Seconds each sample produced here took (reused samples have none): the per-sample timings of a
    run's summaries."""
    redone: int = 0
    """Samples committed with this config whose outputs failed the reuse check (missing, other size,
    other sha256 with `--verify`): produced again."""
    failed: list[FailedSample] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    last_sample_at: float | None = None
    """When the shard last committed or failed a sample (epoch seconds): the no-progress deadline
    counts from here, or from `started_at` before the first sample."""
    model_load_seconds: float | None = None
    gpu_peak_bytes: int | None = None
    """Peak CUDA memory the shard's process allocated so far (None when the stage never imported
    torch or has no GPU): what `resources` must leave room for."""
    message: str = ""
    """Why the shard stopped, when it failed as a whole."""
    produced_by: dict[str, int] = field(default_factory=dict)
    """Samples produced here by each backend or model that made them (`Sample.produced_by`), for the
    run's summary: a fallback shows in the counts, not only in the logs."""
    notes: list[str] = field(default_factory=list)
    """One-line remarks a stage makes about its samples for people (`{sample}: ...`, e.g. coarse
    expansion's selection result): the first becomes the stage's status message. At most MAX_NOTES."""
    figures: dict[str, list[int]] = field(default_factory=dict)
    """Histograms of the quality figures of the samples committed here, reused ones included
    (`genfab.api.quality`: each figure's bins), by figure name."""
    figure_spans: dict[str, list[float]] = field(default_factory=dict)
    """Each figure's [least, greatest] value among them."""
    corrupt: bool = False
    """The report in storage could not be read (too large, not JSON, wrong shape): the shard counts as
    failed with reason CorruptReport and none of its samples flow on."""
    earlier_seconds: float = 0.0
    """Seconds the shard's earlier attempts ran: carried over, as this attempt starts, from the report the
    last one left (a retried shard's cost before this attempt)."""

    @property
    def run_seconds(self) -> float:
        """How long the shard's processes ran over all its attempts: this one's start to its last write
        plus the earlier ones', within bounds."""
        parts = (self.updated_at - self.started_at, self.earlier_seconds)
        total = sum(v for v in parts if math.isfinite(v) and v > 0)
        return min(total, MAX_RUN_SECONDS)

    @property
    def last_activity(self) -> float:
        return self.last_sample_at or self.started_at

    @property
    def done(self) -> int:
        return len(self.succeeded) + len(self.failed)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> ShardReport:
        """Parse and type-check a report (pydantic's JSON parser: bounded nesting, no recursion crash)."""
        return _ADAPTER.validate_json(raw)

    @classmethod
    def corrupt_report(cls, stage: str, config_hash: str, index: int, why: str) -> ShardReport:
        why = " ".join(why.split())
        why = why if len(why) <= MAX_MESSAGE else why[: MAX_MESSAGE - 3] + "..."
        return cls(stage, config_hash, index, 0, state="failed", message=f"CorruptReport: {why}", corrupt=True)


def write_report(run: Storage, report: ShardReport) -> None:
    report.updated_at = time.time()
    run.write_bytes(report_key(report.stage, report.config_hash, report.index), report.to_json())


def _index(key: str) -> int | None:
    name = key.rpartition("/")[2]
    digits = name.removeprefix("shard-").removesuffix(".json")
    return int(digits) if name.startswith("shard-") and name.endswith(".json") and digits.isdigit() else None


def read_reports(run: Storage, stage: str, config_hash: str, shards: int | None = None) -> dict[int, ShardReport]:
    """Every shard report of `stage` at `config_hash`, by index. Reports are written atomically, so
    one that cannot be read is corrupt, not half-written: it becomes a failed report (`corrupt`), read
    no further than `MAX_REPORT_BYTES`. Only indexes below the stage's shard count are read (`shards`
    when the reader knows it, else `MAX_SHARDS`), and a report must say the same count: a folder a
    tenant filled with more reports than the stage has shards costs one listing, not a read each."""
    count = shards if shards is not None else MAX_SHARDS
    reports: dict[int, ShardReport] = {}
    for obj in run.list(report_prefix(stage, config_hash)):
        index = _index(obj.key)
        if index is None or index >= count:
            continue  # not a report name, or not one of the stage's shards: foreign
        report = _read(run, obj.key, stage, config_hash, index, shards)
        if report is not None:
            reports[index] = report
    return reports


def read_report(run: Storage, stage: str, config_hash: str, index: int, shards: int) -> ShardReport | None:
    """Shard `index`'s report by its key (one request, no listing), checked as `read_reports` checks it;
    None when there is none (the shard never started, or its reports were cleared)."""
    if not 0 <= index < min(shards, MAX_SHARDS):
        raise ValueError(f"shard {index} is not one of {shards}")
    return _read(run, report_key(stage, config_hash, index), stage, config_hash, index, shards)


def _read(run: Storage, key: str, stage: str, config_hash: str, index: int, shards: int | None
          ) -> ShardReport | None:
    try:
        raw = run.read_at_most(key, MAX_REPORT_BYTES, "report")
        with _DECODING if len(raw) > LARGE_REPORT_BYTES else contextlib.nullcontext():
            report = ShardReport.from_json(raw)
        del raw
    except StorageLimit:
        raise  # the reader's budget, not the report: read again later
    except StorageTooLarge as exc:
        return ShardReport.corrupt_report(stage, config_hash, index, str(exc))
    except StorageError as exc:
        if str(exc).startswith("not found"):
            return None  # cleared meanwhile (a new run of the stage), or never written
        raise
    except (ValidationError, ValueError) as exc:
        return ShardReport.corrupt_report(stage, config_hash, index, str(exc).splitlines()[0])
    if report.index != index or report.stage != stage:
        return ShardReport.corrupt_report(stage, config_hash, index,
                                          f"holds shard {report.index} of stage {report.stage!r}")
    if shards is not None and report.shards != shards:
        return ShardReport.corrupt_report(stage, config_hash, index,
                                          f"says the stage has {report.shards} shards, not {shards}")
    return report


_ADAPTER = TypeAdapter(ShardReport)


def clear_reports(run: Storage, stage: str, config_hash: str) -> int:
    """A stage's shard reports, quality tables and worker records of this config (a new run of it writes
    them anew)."""
    run.delete_prefix(quality_prefix(stage, config_hash))
    run.delete_prefix(work_prefix(stage, config_hash))
    return run.delete_prefix(report_prefix(stage, config_hash))

"""Shard reports: what each shard has done, written by the shard process into the run folder
(`_genfab/progress/`) while it runs and once at the end, and read by both executors."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Literal

from genfab.contract.names import report_key, report_prefix
from genfab.storage.base import Storage, StorageError

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
    failed: list[FailedSample] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    model_load_seconds: float | None = None
    message: str = ""
    """Why the shard stopped, when it failed as a whole."""

    @property
    def done(self) -> int:
        return len(self.succeeded) + len(self.failed)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> ShardReport:
        data = json.loads(raw)
        data["failed"] = [FailedSample(**f) for f in data.get("failed", [])]
        return cls(**data)


def write_report(run: Storage, report: ShardReport) -> None:
    report.updated_at = time.time()
    run.write_bytes(report_key(report.stage, report.config_hash, report.index), report.to_json())


def read_reports(run: Storage, stage: str, config_hash: str) -> dict[int, ShardReport]:
    """Every shard report of `stage` at `config_hash`, by index (unreadable ones are skipped)."""
    reports: dict[int, ShardReport] = {}
    for obj in run.list(report_prefix(stage, config_hash)):
        try:
            report = ShardReport.from_json(run.read_bytes(obj.key))
        except (StorageError, ValueError, TypeError):
            continue  # being rewritten or foreign: the next poll sees it
        reports[report.index] = report
    return reports


def clear_reports(run: Storage, stage: str, config_hash: str) -> int:
    return run.delete_prefix(report_prefix(stage, config_hash))

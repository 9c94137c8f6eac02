"""What a stage has cost so far and how long it has left, pure: GPU-seconds from its shard reports'
running times, and an ETA from the rate its samples were made at."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime

from genfab.inventory import ShardReport

MAX_SHARD_SECONDS = 30 * 86400.0
"""The most one shard report may claim to have run (a report is the tenant's Pod's to write: a time
beyond any Job's is not counted as more)."""


def report_seconds(report: ShardReport) -> float:
    """How long a shard's process ran, from its report (start to its last write), within bounds."""
    span = report.updated_at - report.started_at
    return min(max(span, 0.0), MAX_SHARD_SECONDS) if math.isfinite(span) else 0.0


def shard_seconds(reports: Iterable[ShardReport]) -> float:
    return sum(report_seconds(r) for r in reports if not r.corrupt)


def gpu_seconds(seconds: float, gpus: int) -> float | None:
    """A stage's GPU-seconds from its shards' seconds; None for a stage on CPUs."""
    return round(seconds * gpus, 1) if gpus > 0 else None


def rfc3339(value: str | None) -> datetime | None:
    """A status time (RFC 3339, `Z` or an offset); None for none or a malformed one."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def eta_seconds(total: int, done: int, started: datetime | None, now: datetime | None) -> float | None:
    """Seconds until the last of `total` samples at the rate `done` were made since `started`; None
    before the first sample, once all are done, or without both times."""
    if started is None or now is None or done <= 0 or done >= total:
        return None
    elapsed = (now - started).total_seconds()
    if elapsed <= 0:
        return None
    return round((total - done) * elapsed / done, 1)

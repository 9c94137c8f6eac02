"""What a stage has cost so far and how long it has left, pure: GPU-seconds from its shard reports'
running times (every attempt's), and an ETA from the rate its samples were made at."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from genfab.inventory import ShardReport


def report_seconds(report: ShardReport) -> float:
    """How long a shard's processes ran, every attempt, from its report (`ShardReport.run_seconds`)."""
    return report.run_seconds


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

"""The Pod side of the progress channel: throttled shard reports in object storage, and the final
counts in the Pod's termination message (see `genfab.contract`)."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from genfab.api.quality import FIGURES, declared_values, figure_items
from genfab.contract.names import ENV_PROGRESS_SECONDS, ENV_TERMINATION_LOG, quality_key
from genfab.contract.text import reason_name
from genfab.inventory import FailedSample, ShardReport, read_report, write_report
from genfab.inventory.reports import MAX_NOTES
from genfab.stages.runtime.context import StageContext
from genfab.stages.runtime.metrics import gpu_peak_bytes
from genfab.storage import StorageError

log = logging.getLogger("genfab.stages")
TERMINATION_LOG = "/dev/termination-log"
MAX_NOTE_CHARS = 500


class ProgressReporter:
    def __init__(self, ctx: StageContext) -> None:
        self.ctx = ctx
        self.interval = float(ctx.env.get(ENV_PROGRESS_SECONDS) or 10)
        self.report = ShardReport(stage=ctx.stage, config_hash=ctx.config_hash, index=ctx.index,
                                  shards=ctx.shards)
        self.measured: dict[str, dict[str, float]] = {}
        """Each committed sample's quality figures: the shard's quality table, written at its end."""
        self._last = 0.0

    def start(self, total: int) -> None:
        self.report.total = total
        self.report.earlier_seconds = self.earlier_attempts()
        self.flush()

    def earlier_attempts(self) -> float:
        """What this shard's earlier attempts ran, from the report the last one left (a new Job's reports
        are cleared before its first Pod, so any report here is an earlier attempt's); 0 for the first."""
        try:
            earlier = read_report(self.ctx.run_storage, self.ctx.stage, self.ctx.config_hash, self.ctx.index,
                                  self.ctx.shards)
        except (StorageError, ValueError) as exc:  # best effort: the cost, not the samples
            log.warning("earlier attempt's report not read: %s", exc)
            return 0.0
        return earlier.run_seconds if earlier is not None and not earlier.corrupt else 0.0

    def succeeded(self, sample_id: str, reused: bool = False, seconds: float | None = None,
                  produced_by: str | None = None, figures: Mapping[str, Any] | None = None) -> None:
        self.report.succeeded.append(sample_id)
        for item, measured in figure_items(sample_id, figures):  # a unit's own, or each of its items'
            for name, value in declared_values(measured).items():
                figure = FIGURES[name]
                self.measured.setdefault(item, {})[name] = value
                counts = self.report.figures.setdefault(name, [0] * (len(figure.edges) - 1))
                counts[figure.bin(value)] += 1
                low, high = self.report.figure_spans.get(name) or (value, value)
                self.report.figure_spans[name] = [min(low, value), max(high, value)]
        if produced_by:
            self.report.produced_by[produced_by] = self.report.produced_by.get(produced_by, 0) + 1
        self.report.reused += reused
        if seconds is not None:
            self.report.seconds[sample_id] = round(seconds, 3)
        self.report.last_sample_at = time.time()
        self.maybe_flush()

    def failed(self, sample_id: str, reason: str, message: str) -> None:
        reason, message = reason_name(reason, message)  # a custom stage's reason may be anything
        self.report.failed.append(FailedSample(sample_id, reason, message[:500]))
        self.report.last_sample_at = time.time()
        self.maybe_flush()

    def alive(self) -> None:
        """Progress without a finished sample (see `StageContext.heartbeat`)."""
        self.report.last_sample_at = time.time()
        self.maybe_flush()

    def note(self, text: str) -> None:
        """Keep a one-line remark for the status (bounded: the first MAX_NOTES, each cut to fit)."""
        text = " ".join(text.split())[:MAX_NOTE_CHARS]
        if text and len(self.report.notes) < MAX_NOTES and text not in self.report.notes:
            self.report.notes.append(text)

    def maybe_flush(self) -> None:
        if time.monotonic() - self._last >= self.interval:
            self.flush()

    def flush(self) -> None:
        self._last = time.monotonic()
        self.report.gpu_peak_bytes = gpu_peak_bytes()
        try:
            write_report(self.ctx.run_storage, self.report)
        except StorageError as exc:  # progress is best effort while running; the final write is not
            if self.report.state != "running":
                raise
            log.warning("progress report not written: %s", exc)

    def finish(self, state: str, message: str = "") -> None:
        self.report.state = state  # type: ignore[assignment]
        self.report.message = message
        if self.measured:  # before the final report: a reader that sees it finished finds the table
            self.ctx.run_storage.write_bytes(quality_key(self.ctx.stage, self.ctx.config_hash, self.ctx.index),
                                             json.dumps(self.measured, sort_keys=True).encode())
        self.flush()
        self.write_termination_message()

    def write_termination_message(self) -> None:
        """Final counts for `kubectl describe pod` and the operator (limit 4096 bytes: counts only)."""
        path = Path(self.ctx.env.get(ENV_TERMINATION_LOG) or TERMINATION_LOG)
        if not path.parent.is_dir() or (not path.exists() and path.as_posix() == TERMINATION_LOG):
            return
        r = self.report
        summary = {"stage": r.stage, "index": r.index, "state": r.state, "total": r.total,
                   "succeeded": len(r.succeeded), "reused": r.reused, "failed": len(r.failed),
                   "message": r.message[:1000]}
        with contextlib.suppress(OSError):  # a read-only filesystem must not fail the shard
            path.write_text(json.dumps(summary))

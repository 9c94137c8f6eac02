"""Folding finished shards' reports into a stage's `ShardTally`, pure: a report is read once, when its
shard finishes, and what the status, the summary and the metrics need of it is added to a record of
fixed size (counts, the first few messages, drops by reason); the report itself is not kept."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping

from genfab.api.quality import FIGURES
from genfab.api.status import DropTally, ShardTally
from genfab.contract import indexes
from genfab.inventory import ShardReport
from genfab.status.aggregate import bounded_produced_by, fit
from genfab.status.cost import report_seconds

MAX_TALLY_TEXT = 512
FIELD_LIMITS = {name: next(int(m.max_length) for m in field.metadata if getattr(m, "max_length", None))
                for name, field in ShardTally.model_fields.items()
                if name in ("corrupt_messages", "shard_errors", "notes", "produced_by", "dropped")}
"""How many entries each bounded list or map of a tally keeps (declared once, in the status model)."""
EXAMPLES = DropTally.model_fields["examples"].metadata[0].max_length


def start(job_uid: str) -> ShardTally:
    return ShardTally(job_uid=job_uid)


def read_indexes(tally: ShardTally) -> indexes.Ranges:
    return indexes.parse(tally.indexes)


def fold(tally: ShardTally, reports: Mapping[int, ShardReport | None], capacity: int | None = None,
         completed: indexes.Ranges = ()) -> ShardTally:
    """`tally` with the finished shards `reports` added (by index; None: the shard left no report).
    Shards already in the tally are not counted twice. Reports are added lowest index first. A report
    claiming more samples than a shard holds (`capacity`; a report is the shard's to write) is counted
    as corrupt, with one line, and adds nothing. So is a shard the Job names completed (`completed`: its
    Pod exited 0) whose final report is not there: its samples are not known to exist, and counting it as
    done would let the stage succeed without them. (A failed shard may leave none: it counts nothing.)"""
    done = read_indexes(tally)
    new = {i: r for i, r in reports.items() if not indexes.contains(done, i)}
    if not new:
        return tally
    t = tally.model_copy(deep=True)
    produced: Counter[str] = Counter(t.produced_by)
    for index in sorted(new):
        report = new[index]
        if indexes.contains(completed, index):
            report = final(report, index)
        if report is None:
            continue
        report = checked(report, capacity)
        if report.corrupt:
            t.corrupt += 1
            _keep(t.corrupt_messages, f"shard {index}: {report.message}", "corrupt_messages")
            continue
        t.succeeded += len(report.succeeded)
        t.failed += len(report.failed)
        t.reused += report.reused
        t.redone += report.redone
        if report.state == "failed" and report.message:
            _keep(t.shard_errors, f"shard {index}: {report.message}", "shard_errors")
        for note in report.notes:
            t.note_count += 1
            _keep(t.notes, note, "notes")
        produced.update(report.produced_by)
        _add_figures(t, report.figures, report.figure_spans)
        for failed in report.failed:
            _drop(t, failed.reason, failed.id)
        t.shard_seconds = round(t.shard_seconds + report_seconds(report), 3)
        if report.model_load_seconds is not None:
            t.model_load_seconds = max(t.model_load_seconds or 0.0, report.model_load_seconds)
        if report.gpu_peak_bytes is not None:
            t.gpu_peak_bytes = max(t.gpu_peak_bytes or 0, report.gpu_peak_bytes)
    t.produced_by = bounded_produced_by(produced, FIELD_LIMITS["produced_by"])
    t.indexes = indexes.text(indexes.union(done, indexes.of(new)))
    return t


def final(report: ShardReport | None, index: int) -> ShardReport | None:
    """A completed shard's report, or a corrupt one saying why it is not final (none, or still `running`:
    cleared or overwritten after the shard wrote it, or a stage that exits 0 without writing it)."""
    if report is not None and (report.corrupt or report.state != "running"):
        return report
    what = "no report" if report is None else "a report still marked running"
    return ShardReport.corrupt_report(report.stage if report else "", report.config_hash if report else "", index,
                                      f"its Pod exited 0 but left {what}, not its final one: its samples are not "
                                      "counted")


def checked(report: ShardReport, capacity: int | None) -> ShardReport:
    """`report`, or a corrupt one saying why when it claims more samples than a shard of its stage holds
    (`capacity`; None: not known). A shard writes its own report: its counts are checked, not trusted."""
    claimed = max(len(report.succeeded) + len(report.failed), report.reused)
    if report.corrupt or capacity is None or claimed <= capacity:
        return report
    return ShardReport.corrupt_report(report.stage, report.config_hash, report.index,
                                      f"the report claims {claimed} samples; a shard of this stage holds at most "
                                      f"{capacity}: not counted")


def _add_figures(t: ShardTally, histograms: Mapping[str, list[int]], spans: Mapping[str, list[float]]) -> None:
    """A report's histograms added bin by bin, and the figures' spans widened: only figures genfab
    declares, with their own bins (a report is the tenant's to write: anything else is left out)."""
    for name, counts in histograms.items():
        figure = FIGURES.get(name)
        if figure is None or len(counts) != len(figure.edges) - 1 or any(c < 0 for c in counts):
            continue
        held = t.figures.setdefault(name, [0] * len(counts))
        t.figures[name] = [a + b for a, b in zip(held, counts, strict=True)]
        span = spans.get(name)
        if span is not None and len(span) == 2 and all(math.isfinite(v) for v in span):
            low, high = t.figure_spans.get(name) or span
            t.figure_spans[name] = [min(low, span[0]), max(high, span[1])]


def _keep(kept: list[str], text: str, field: str) -> None:
    if len(kept) < FIELD_LIMITS[field]:
        kept.append(fit(" ".join(text.split()), MAX_TALLY_TEXT) or "")


OTHER_DROPS = "other reasons"
"""The last entry of a tally's `dropped`, once its bound is reached: every further drop reason summed."""


def _drop(t: ShardTally, why: str, sample: str) -> None:
    slot = fit(why, 128) or "?"
    if slot not in t.dropped and len(t.dropped) >= FIELD_LIMITS["dropped"] - 1:
        slot = OTHER_DROPS
    entry = t.dropped.setdefault(slot, DropTally())
    entry.count += 1
    if len(entry.examples) < EXAMPLES:
        entry.examples.append(fit(sample, 256) or "")


def of_reports(reports: Mapping[int, ShardReport], capacity: int | None = None) -> ShardTally:
    """Every report of a stage folded at once (the local runner, which holds them all)."""
    return fold(start(""), reports, capacity)


def pending(tally: ShardTally, finished: indexes.Ranges) -> indexes.Ranges:
    """The finished shards whose reports are not in the tally yet."""
    return indexes.difference(finished, read_indexes(tally))

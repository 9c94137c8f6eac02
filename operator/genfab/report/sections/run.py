"""Every pipeline's first section: the run, its stages (counts, durations, samples/s, what was
reused), what produced each stage's samples, the config hashes, what waits and what was dropped."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Mapping
from typing import Any

from genfab.api.quality import read_miss
from genfab.api.reasons import QUALITY_OUT_OF_RANGE
from genfab.api.status import ResourceStatus
from genfab.api.summary import RunSummary
from genfab.contract import DROPPED_KEY
from genfab.report.model import Facts, Listing, Section, Table

SHOWN_DROPS = 100
"""Dropped samples listed one by one; the counts per stage and reason cover every one."""
QUIET_CONDITIONS = ("Succeeded", "Running", "Accepted", "Suspended", "Failed")


def _num(value: Any, digits: int = 1) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def stage_table(summary: RunSummary) -> Table:
    rows = []
    for s in summary.stages:
        rows.append((s.name, str(s.phase), _num(s.samples), _num(s.succeeded), _num(s.reused), _num(s.redone),
                     _num(s.failed), _num(s.shards), _num(s.seconds), _num(s.samples_per_second, 2),
                     _num(s.model_load_seconds), _num(s.gpu_peak_gib), s.message or ""))
    return Table("Stages", ("stage", "phase", "samples", "succeeded", "reused", "redone", "failed", "shards",
                            "seconds", "samples/s", "model load s", "GPU peak GiB", "message"), tuple(rows),
                 "reused: committed by an earlier run with the same config hash, not made again; redone: made "
                 "again because a committed output was missing or changed")


def cost_table(summary: RunSummary) -> Table:
    """GPU-hours per stage, per sample and for the dropped samples (the summary's cost fields)."""
    rows = tuple((s.name, _num(s.gpu_hours, 3), _num(s.gpu_seconds_per_sample, 2), _num(s.dropped_gpu_hours, 3))
                 for s in summary.stages if s.gpu_hours is not None)
    note = (f"{summary.gpu_hours:.3f} GPU-hours in all: each shard process's running time times its Pod's GPUs "
            "(a retried shard's earlier attempts included; Pod start-up and image pulls not); reused samples "
            "cost nothing. `genfab plan --estimate` says what a run will cost before it starts"
            if summary.gpu_hours is not None else "every stage ran on CPUs: no GPU time")
    return Table("Cost", ("stage", "GPU-hours", "GPU-s / sample", "dropped samples' GPU-hours"), rows, note)


def produced_by_table(summary: RunSummary) -> Table:
    rows = [(s.name, method, str(count)) for s in summary.stages for method, count in sorted(s.produced_by.items())]
    return Table("What produced the samples", ("stage", "produced by", "samples"), tuple(rows),
                 "" if rows else "the stages recorded no method or model per sample")


def hash_table(summary: RunSummary) -> Table:
    root = (summary.output_uri or "").rstrip("/")
    rows = []
    for s in summary.stages:
        uri = s.output_uri or ""
        where = uri[len(root):].strip("/") if uri.startswith(root) else uri
        rows.append((s.name, s.config_hash or "-", where or "(the output's root)"))
    return Table("Config hashes", ("stage", "config hash", "output folder"), tuple(rows),
                 "a stage's samples are reused by a later run whose hash for it is the same")


def dropped_rows(listing: Listing) -> list[dict[str, str]]:
    data = listing.read(DROPPED_KEY) if DROPPED_KEY in listing.keys else None
    if not data:
        return []
    return list(csv.DictReader(io.StringIO(data.decode("utf-8", "replace"))))


def drop_facts(row: Mapping[str, str]) -> Facts:
    """A dropped sample's facts for its gallery row: the reason and the stage, and for a quality bound the
    figure, its value and the bound (else the message)."""
    facts: list[tuple[str, str]] = [("dropped", f"{row.get('reason', '')} at {row.get('stage', '')}")]
    miss = read_miss(row.get("message", "")) if row.get("reason") == QUALITY_OUT_OF_RANGE else None
    if miss is not None:
        facts += [("figure", miss.figure), ("value", miss.value), ("bound", miss.bound)]
    elif row.get("message"):
        facts.append(("why", row.get("message", "")))
    return tuple(facts)


def dropped_by_sample(listing: Listing) -> dict[str, dict[str, str]]:
    """Each dropped sample's CSV row, by id (the first drop of a sample named twice): its `drop_facts` are
    made only for the rows a gallery pictures, not for every drop of the run."""
    out: dict[str, dict[str, str]] = {}
    for row in dropped_rows(listing):
        out.setdefault(row.get("sample_id", ""), row)
    return out


def drop_tables(listing: Listing) -> tuple[Table, ...]:
    rows = dropped_rows(listing)
    if not rows:
        return (Table("Dropped samples", ("stage", "reason", "samples"), (), "no sample was dropped"),)
    counts = Counter((r.get("stage", ""), r.get("reason", "")) for r in rows)
    by_reason = Table("Dropped samples", ("stage", "reason", "samples"),
                      tuple((stage, reason, str(n)) for (stage, reason), n in sorted(counts.items())),
                      f"{len(rows)} sample(s) in {DROPPED_KEY}")
    shown = rows[:SHOWN_DROPS]
    more = f"the first {SHOWN_DROPS} of {len(rows)}" if len(rows) > SHOWN_DROPS else ""
    each = Table("Each dropped sample", ("stage", "sample", "reason", "message"),
                 tuple((r.get("stage", ""), r.get("sample_id", ""), r.get("reason", ""), r.get("message", ""))
                       for r in shown), more)
    return by_reason, each


def condition_notes(status: ResourceStatus | None) -> tuple[str, ...]:
    return tuple(f"{c.type}: {c.message}" for c in (status.conditions if status is not None else [])
                 if c.status == "True" and c.type not in QUIET_CONDITIONS and c.message)


def run_section(listing: Listing) -> Section:
    # No chart here: the stage table has the seconds, and most runs then need no matplotlib at all
    # (its import is most of a small run's report time).
    summary = listing.summary
    return Section("Run", (stage_table(summary), cost_table(summary), produced_by_table(summary), hash_table(summary),
                           *drop_tables(listing)), notes=condition_notes(listing.status))

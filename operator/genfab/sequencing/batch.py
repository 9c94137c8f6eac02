"""A batch run's per-sample summary (the lab's worldexplorer `batch_summary.json`): for each sample and variant,
every stage's outcome, seconds and output folder, from the shard reports alone (pure: no I/O)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from genfab.contract import sample_subdir
from genfab.contract.paths import join_uri
from genfab.inventory import ShardReport
from genfab.status import produced_by

BATCH_SUMMARY_KEY = "batch_summary.json"
"""Beside the samples' folders, at the run's output root (where the seed's batch script writes it)."""


class StageShape(Protocol):
    """What the per-sample records need of a stage: a `PlannedStage`, or the records Pod's request."""

    @property
    def name(self) -> str: ...
    @property
    def run(self) -> bool: ...
    @property
    def output_layout(self) -> str: ...


class RunShape(Protocol):
    """What the per-sample records need of a run: a `Plan`, or the records Pod's request."""

    @property
    def kind(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def pipeline(self) -> str: ...
    @property
    def output_uri(self) -> str: ...
    @property
    def stages(self) -> Sequence[StageShape]: ...


def _stage_entries(stage: StageShape, reports: Mapping[int, ShardReport], output_uri: str
                   ) -> dict[str, dict[str, Any]]:
    """Each sample this stage reported, by id (one pass over its reports: batches of 100,000 samples)."""
    subdir = sample_subdir(stage.output_layout)
    entries: dict[str, dict[str, Any]] = {}
    for report in reports.values():
        for failed in report.failed:
            entries[failed.id] = {"status": "failed", "reason": failed.reason, "message": failed.message}
        for sample in report.succeeded:  # a retried shard's success wins over its earlier failure
            seconds = report.seconds.get(sample)
            entries[sample] = {"status": "succeeded", "reused": seconds is None, "seconds": seconds,
                               "output": join_uri(output_uri, sample, subdir) + "/"}
    return entries


def batch_summary(stages: Sequence[StageShape], reports: Mapping[str, Mapping[int, ShardReport]],
                  output_uri: str) -> dict[str, Any]:
    """Every sample any stage reported, in id order: `variant` and `index` (from `{variant}/index_XXXX`
    ids), `status` (succeeded when every selected stage succeeded, failed when one failed, else
    incomplete), `seconds` (the stages' produced time) and per stage its outcome; `producedBy`: per
    stage, how many samples each backend, model or method made (each sample's own files say which)."""
    per_stage = {s.name: _stage_entries(s, reports.get(s.name, {}), output_uri) for s in stages}
    ids = sorted({i for found in per_stage.values() for i in found})
    rows = []
    for sample in ids:
        entries = {s.name: per_stage[s.name].get(sample) or {"status": "not run" if s.run else "not selected"}
                   for s in stages}
        selected = [entries[s.name] for s in stages if s.run]
        status = ("failed" if any(e["status"] == "failed" for e in selected) else
                  "succeeded" if all(e["status"] == "succeeded" for e in selected) else "incomplete")
        variant, _, rest = sample.rpartition("/")
        row: dict[str, Any] = {"sample": sample, "variant": variant or None,
                               "index": int(rest[6:]) if rest.startswith("index_") and rest[6:].isdigit() else None,
                               "status": status,
                               "seconds": round(sum(e.get("seconds") or 0.0 for e in selected), 3),
                               "stages": entries}
        rows.append(row)
    counts = {k: sum(r["status"] == k for r in rows) for k in ("succeeded", "failed", "incomplete")}
    made = {s.name: produced_by(r.produced_by for r in reports.get(s.name, {}).values()) for s in stages if s.run}
    return {"samples": rows, "counts": counts, "producedBy": {name: c for name, c in made.items() if c}}


def batch_document(plan: RunShape, reports: Mapping[str, Mapping[int, ShardReport]], phase: str, finished_at: str
                   ) -> bytes | None:
    """`batch_summary.json` as both executors write it when a SceneJob ends (None for other kinds)."""
    if plan.kind != "SceneJob":
        return None
    batch = batch_summary(plan.stages, reports, plan.output_uri)
    return json.dumps({"kind": plan.kind, "name": plan.name, "pipeline": plan.pipeline, "phase": phase,
                       "finishedAt": finished_at, **batch}, indent=2).encode()

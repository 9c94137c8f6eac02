"""`_genfab/summary.json`, the document both executors write when a run ends (genfab.sequencing.summary
builds it, genfab.sequencing.run_records writes it) and `genfab status`, `genfab run` and `genfab report`
read: one model, so every writer and reader of a field is found from it. Read leniently (a summary an
older genfab, another tool or a broken disk wrote: unknown fields ignored, missing ones empty); written
in exactly this order, with `quality`, `training` and `perSampleRecords` only where they apply."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class SummaryPart(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")
    OMITTED_WHEN_NONE: ClassVar[tuple[str, ...]] = ()
    """Fields (by alias) left out of the document when None, instead of written as null."""

    def document(self) -> dict[str, Any]:
        doc = self.model_dump(mode="json", by_alias=True)
        for name in self.OMITTED_WHEN_NONE:
            if doc.get(name) is None:
                doc.pop(name, None)
        return doc


class DroppedReason(SummaryPart):
    count: int = 0
    examples: list[str] = Field(default_factory=list)
    """A few of the dropped samples' ids."""


class StageRow(SummaryPart):
    """One stage of the run: counts, timings, what made its samples and why samples were dropped."""

    OMITTED_WHEN_NONE = ("figures",)
    name: str = "?"
    phase: str | None = None
    config_hash: str | None = None
    output_uri: str | None = None
    samples: int | None = None
    succeeded: int | None = None
    reused: int | None = None
    redone: int | None = None
    failed: int | None = None
    shards: int | None = None
    seconds: float | None = None
    samples_per_second: float | None = None
    model_load_seconds: float | None = None
    gpu_peak_gib: float | None = Field(None, alias="gpuPeakGiB")
    gpu_hours: float | None = None
    """GPU-hours its shard processes used (the status's `gpuSeconds`); None on CPUs."""
    gpu_seconds_per_sample: float | None = None
    """GPU-seconds per sample it made or dropped here (reused ones cost nothing)."""
    dropped_gpu_hours: float | None = None
    """What its dropped and failed samples cost, at that rate."""
    message: str | None = None
    produced_by: dict[str, int] = Field(default_factory=dict)
    custom: dict[str, Any] | None = None
    """A custom stage made these samples, not genfab: its image and the command that ran."""
    dropped: dict[str, DroppedReason] = Field(default_factory=dict)
    figures: dict[str, Any] | None = Field(None, validation_alias=AliasChoices("figures", "quality"))
    """Each quality figure's p5/p50/p95 and histogram over the stage's committed samples (api.quality), by
    name: `figures`, as in the status (a summary genfab wrote before it was so named says `quality`)."""

    def document(self) -> dict[str, Any]:
        doc = super().document()
        doc["dropped"] = {reason: d.document() for reason, d in self.dropped.items()}
        return doc


class RunSummary(SummaryPart):
    OMITTED_WHEN_NONE = ("training", "perSampleRecords")
    kind: str | None = None
    name: str | None = None
    namespace: str | None = None
    pipeline: str | None = None
    executor: str | None = None
    """`local` (`genfab run`) or `operator`."""
    continue_on_error: bool | None = None
    phase: str | None = None
    output_uri: str | None = None
    finished_at: str | None = None
    stages: list[StageRow] = Field(default_factory=list)
    gpu_hours: float | None = None
    """GPU-hours of all its stages (None when every stage ran on CPUs)."""
    dropped: int | None = None
    training: dict[str, Any] | None = None
    """A TuningRun's last training state and best checkpoint (the status's `training`)."""
    dropped_samples_csv: str | None = None
    per_sample_records: str | None = None
    """Why the per-sample records were not written with the summary (who writes them)."""
    status_uri: str | None = None
    """The local run's `status.json`; None in a cluster (the status is the resource's own)."""
    summary_uri: str | None = None
    report_uri: str | None = None
    report_command: str | None = None

    def document(self) -> dict[str, Any]:
        doc = super().document()
        doc["stages"] = [row.document() for row in self.stages]
        return doc

    def to_json(self) -> bytes:
        return json.dumps(self.document(), indent=2).encode()

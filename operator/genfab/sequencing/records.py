"""What a run's per-sample records Pod is asked to do (the request the operator puts in its environment):
pure, the I/O is `genfab.jobs.records`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from genfab.planner import Plan


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class RecordedStage(_Model):
    """What the records need of a planned stage (the rest of the plan stays with the operator)."""

    name: str = Field(max_length=253)
    run: bool
    config_hash: str = Field(max_length=64)
    output_layout: str = Field(max_length=1024)
    output_uri: str = Field(max_length=4096)


class RecordsRequest(_Model):
    kind: str = Field(max_length=32)
    name: str = Field(max_length=253)
    pipeline: str = Field(max_length=64)
    output_uri: str = Field(max_length=4096)
    phase: str = Field(max_length=32)
    finished_at: str = Field(max_length=64)
    stages: tuple[RecordedStage, ...] = Field(max_length=64)


def records_request(plan: Plan, phase: str, finished_at: str) -> RecordsRequest:
    return RecordsRequest(kind=plan.kind, name=plan.name, pipeline=plan.pipeline, output_uri=plan.output_uri,
                          phase=phase, finished_at=finished_at, stages=tuple(
                              RecordedStage(name=s.name, run=s.run, config_hash=s.config_hash,
                                            output_layout=s.output_layout, output_uri=s.output_uri)
                              for s in plan.stages))



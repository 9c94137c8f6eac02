"""Observed stage state -> the resource's status (pure; shared by the operator and the local runner)."""

from genfab.status.aggregate import (
    StageObservation,
    build_status,
    failed_at_start,
    filtered_count,
    notes_message,
    produced_by,
    set_condition,
    stage_phase,
)

__all__ = ["StageObservation", "build_status", "failed_at_start", "filtered_count",
           "notes_message", "produced_by", "set_condition",
           "stage_phase"]

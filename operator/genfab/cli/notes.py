"""The one-line notes `validate`, `plan` and `genfab run` print about a valid resource: stages it cannot
run as set (or that need custom stages), and defaults it leaves unset that run other than the lab's
script (`Pipeline.seed_notes`). One function, so the three commands say the same."""

from __future__ import annotations

from genfab.api import Resource
from genfab.api.pipeline import selected
from genfab.planner import Plan
from genfab.sequencing import unimplemented, unsupported_settings


def seed_notes(resource: Resource) -> list[str]:
    """The pipeline's lines on defaults that differ from the lab's document (`Pipeline.seed_notes`)."""
    pipeline = selected(resource.kind, resource.spec)
    return pipeline.seed_notes(pipeline.block_of(resource.spec)) if pipeline.seed_notes else []


def runs_today_note(p: Plan) -> str | None:
    """One line when stages of the plan have no implementation in genfab yet (None when all run)."""
    missing = unimplemented(p.stages)
    if not missing:
        return None
    reasons = unsupported_settings(p.stages)
    if reasons:
        return "note: this resource cannot run as set: " + "; ".join(reasons)
    return (f"note: pipeline {p.pipeline} is not implemented yet: this resource needs customStages for "
            f"{', '.join(missing)} before it can run")


def notes(resource: Resource, p: Plan) -> list[str]:
    """Every note on `resource` and its plan, each `note: ...`."""
    first = runs_today_note(p)
    return ([first] if first else []) + [f"note: {line}" for line in seed_notes(resource)]

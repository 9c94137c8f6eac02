"""The one-line notes `validate`, `plan` and `genfab run` print about a valid resource: stages it cannot
run as set (or that need custom stages), and defaults it leaves unset that run other than the lab's
script (`Pipeline.lab`, `genfab.api.fidelity`). One function, so the three commands say the same."""

from __future__ import annotations

from typing import Any

from genfab.api import Resource
from genfab.api.fidelity import differing_defaults
from genfab.api.pipeline import selected
from genfab.planner import Plan
from genfab.sequencing import unimplemented, unsupported_settings


def seed_notes(resource: Resource) -> list[str]:
    """The pipeline's lines on defaults the spec leaves unset that differ from the lab's code."""
    comparison = selected(resource.kind, resource.spec).lab
    if comparison is None:
        return []
    given: Any = resource.spec.model_dump(by_alias=True, exclude_unset=True)
    for key in comparison.prefix.split(".") if comparison.prefix else ():
        given = given.get(key) if isinstance(given, dict) else None
    return differing_defaults(comparison, given if isinstance(given, dict) else {})


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

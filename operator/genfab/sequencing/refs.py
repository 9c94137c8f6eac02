"""Inputs that are another resource's output (`ref:Kind/name/path`), pure: what a referenced
resource's status says about its output, and a plan with the references it can use replaced by
storage URIs. Both executors use it: the operator reads the referenced resource (same namespace)
from its watch cache, the local runner its local run or `--ref`.

A reference is usable once the resource Succeeded (or PartiallySucceeded): its output root is
`status.outputs.root`. Until then the stages reading it wait; if it Failed they are blocked. Config
hashes stay as planned: they name the reference, not where it resolved to.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from genfab.contract.paths import join_uri, split_ref
from genfab.planner import Plan, PlannedStage

USABLE = ("Succeeded", "PartiallySucceeded")


@dataclass(frozen=True)
class RefState:
    state: Literal["ready", "waiting", "failed"]
    root: str = ""
    """The referenced resource's output root (ready only)."""
    message: str = ""


def ref_state(target: str, body: Mapping[str, Any] | None) -> RefState:
    """What `Kind/name`'s object (None: not there) offers a stage that reads its output."""
    if body is None:
        return RefState("waiting", message=f"waiting for {target}, which does not exist in this namespace")
    status = body.get("status") or {}
    phase = status.get("phase") or "Pending"
    root = (status.get("outputs") or {}).get("root")
    if phase in USABLE and isinstance(root, str) and root:
        return RefState("ready", root.rstrip("/"))
    if phase == "Failed":
        return RefState("failed", message=f"{target} failed: its output is not usable")
    return RefState("waiting", message=f"waiting for {target} to succeed (now {phase})")


def stage_refs(stage: PlannedStage) -> list[str]:
    """`Kind/name` of every resource whose output this stage reads."""
    return [ref[0] for uri in stage.input_uris if (ref := split_ref(uri)) is not None]


def substitute_refs(plan: Plan, roots: Mapping[str, str]) -> Plan:
    """`plan` with each `ref:` input whose target is in `roots` (Kind/name -> output root) replaced
    by the storage URI it names; other inputs as they are."""
    stages = []
    for stage in plan.stages:
        uris = []
        for uri in stage.input_uris:
            ref = split_ref(uri)
            if ref is None or ref[0] not in roots:
                uris.append(uri)
            else:
                uris.append(join_uri(roots[ref[0]], ref[1]) if ref[1] else roots[ref[0]])
        stages.append(dataclasses.replace(stage, input_uris=tuple(uris)))
    return dataclasses.replace(plan, stages=tuple(stages))

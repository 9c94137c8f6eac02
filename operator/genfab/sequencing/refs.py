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


CHECKPOINTS = "checkpoints/"
LATEST = "checkpoints/latest"


def checkpoint_state(target: str, path: str, body: Mapping[str, Any] | None) -> RefState:
    """A TuningRun's checkpoint (`checkpoints/model_<step>.pkl`, or `checkpoints/latest`), as its
    status lists them: a given step is usable as soon as the run has written it, the latest once the
    run succeeded. `root` is the checkpoint's URI."""
    if body is None:
        return RefState("waiting", message=f"waiting for {target}, which does not exist in this namespace")
    status = body.get("status") or {}
    phase = status.get("phase") or "Pending"
    training = status.get("training") or {}
    latest = training.get("latestCheckpoint")
    names = [n for n in training.get("checkpoints") or [] if isinstance(n, str)]
    folder = latest.rsplit("/", 1)[0] if isinstance(latest, str) and "/" in latest else None
    want = path.removeprefix(CHECKPOINTS)
    if path != LATEST and want in names and folder:
        return RefState("ready", f"{folder}/{want}")
    if phase in USABLE:
        if path == LATEST and isinstance(latest, str) and latest:
            return RefState("ready", latest)
        have = ", ".join(names[-5:]) or "none"
        return RefState("failed", message=f"{target} finished without checkpoint {want} (its last: {have})")
    if phase == "Failed":
        return RefState("failed", message=f"{target} failed before it wrote checkpoint {want}")
    what = f"checkpoint {want}" if path != LATEST else "its final checkpoint"
    return RefState("waiting", message=f"waiting for {target} to write {what} (now {phase}, step "
                                       f"{training.get('step', 0)} of {training.get('maxSteps', '?')})")


def reference_state(target: str, path: str, body: Mapping[str, Any] | None) -> RefState:
    """What a `ref:` input offers: a TuningRun's checkpoint, or another resource's output."""
    if target.startswith("TuningRun/") and path.startswith(CHECKPOINTS):
        return checkpoint_state(target, path, body)
    return ref_state(target, body)


def plan_references(plan: Plan) -> list[tuple[str, str]]:
    """(Kind/name, path) of the checkpoints the plan's settings depend on: resolving them changes the
    plan (its config hashes), so the executors plan again with them (`DraftRequest.references`)."""
    out = []
    for stage in plan.stages:
        for uri in stage.input_uris:
            ref = split_ref(uri)
            if ref is not None and ref[0].startswith("TuningRun/") and ref[1].startswith(CHECKPOINTS):
                out.append(ref)
    return list(dict.fromkeys(out))


def stage_refs(stage: PlannedStage) -> list[str]:
    """`Kind/name` of every resource whose output this stage reads."""
    return [target for target, _ in stage_ref_paths(stage)]


def stage_ref_paths(stage: PlannedStage) -> list[tuple[str, str]]:
    """(Kind/name, path) of every `ref:` input of this stage."""
    return [ref for uri in stage.input_uris if (ref := split_ref(uri)) is not None]


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

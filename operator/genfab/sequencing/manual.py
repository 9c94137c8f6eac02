"""A person's step between stages (`ManualGate`, worldexplorer's manual selection), as both executors
apply it: which committed samples still lack the files the gate requires, the one message that says
so (the listing itself is genfab.sequencing.gate_reader's, bounded per call: this module stays pure).

While a gated stage has such samples, no stage downstream of it starts: the operator sets the gate's
condition (`AwaitingSelection`), creates no Pod and polls storage; the local runner stops with exit
3 and goes on when run again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from genfab.api.status import AWAITING_PHASE, ResourceStatus
from genfab.contract.config import sample_subdir
from genfab.inventory.gates import lacking
from genfab.planner import Plan, PlannedStage
from genfab.status import set_condition

SHOWN_SAMPLES = 5
"""Samples named in the message; the count says how many more."""
EXIT_AWAITING = 3
"""`genfab run` when the run stopped at a gate (nothing failed: choose, then run it again)."""


@dataclass(frozen=True)
class Awaiting:
    stage: str
    condition: str
    pending: Mapping[str, tuple[str, ...]]
    """Sample id -> required files still missing."""
    message: str


def sample_folder(stage: PlannedStage, sample_id: str) -> str:
    """A sample's folder of the stage's output, relative to the stage's output URI."""
    sub = sample_subdir(stage.output_layout).strip("/")
    return f"{sample_id}/{sub}/" if sub else f"{sample_id}/"


def missing_files(stage: PlannedStage, present: Iterable[str]) -> tuple[str, ...]:
    """The gate's required files not in `present` (keys relative to the sample's folder)."""
    assert stage.manual_gate is not None
    return lacking(stage.manual_gate.required, present)


def awaiting(stage: PlannedStage, pending: Mapping[str, tuple[str, ...]], output: str = "OUTPUT",
             file: str = "FILE") -> Awaiting | None:
    """The gate's state from each committed sample's missing files; None when nothing is missing.
    `output` and `file` fill the gate's words (the run's output, the resource's file)."""
    gate = stage.manual_gate
    waiting = {s: m for s, m in sorted(pending.items()) if m}
    if gate is None or not waiting:
        return None
    shown = [f"{s} ({', '.join(m)})" for s, m in list(waiting.items())[:SHOWN_SAMPLES]]
    more = f" and {len(waiting) - SHOWN_SAMPLES} more" if len(waiting) > SHOWN_SAMPLES else ""
    where = f"{stage.output_uri.rstrip('/')}/{sample_folder(stage, '<sample>')}{gate.candidates}"
    message = (f"stage {stage.name}: {len(waiting)} sample(s) await a person's choice: {'; '.join(shown)}{more}. "
               f"Choose from {where}: {gate.how.format(output=output, file=file)}")
    return Awaiting(stage.name, gate.condition, waiting, message)


def gate_status(status: ResourceStatus, gates: Mapping[str, str], now: str, generation: int | None
                ) -> ResourceStatus:
    """`status` with each gate's condition (type -> the waiting message, "" once chosen): True with
    reason Waiting while samples wait, False with reason Chosen after; and, while any waits, the phase
    `AwaitingSelection` (a person's step, neither done nor failed) unless the run failed. Both
    executors write it this way."""
    conditions = status.conditions
    for condition, message in gates.items():
        conditions = set_condition(conditions, condition, bool(message), "Waiting" if message else "Chosen",
                                   message, now, generation)
    waiting = any(gates.values()) and status.phase != "Failed"
    return status.model_copy(update={"conditions": conditions,
                                     **({"phase": AWAITING_PHASE} if waiting else {})})


def held_back(stage: PlannedStage, gates: Mapping[str, Awaiting], plan: Plan) -> Awaiting | None:
    """The gate that holds `stage` back, if any: of a stage upstream of it, directly or through
    others (worldexplorer's `gaussians` waits on `expansion`, which waits on the gated `scaffold`);
    the nearest (latest in plan order) first."""
    upstream = plan.ancestors(stage.name)
    return next((gates[s.name] for s in reversed(plan.stages) if s.name in upstream and s.name in gates), None)

"""A manual gate's state, read in bounded parts (genfab.sequencing.manual says what a gate is): the one
reader of both executors. `genfab run` reads a gate whole, once its stage finished (calling `read` until
it has no `more`); the operator reads a part per reconcile (genfab.operator.gate_reader).

Once a gated stage has finished, the executor must know which of its committed samples still lack the
files a person chooses. That takes the stage's shard reports (which samples were committed) and one
listing per sample folder: work that grows with the samples, so it is spread over reconciles. Each
reconcile reads at most `reports` more reports and lists at most `SAMPLES_PER_CALL` sample folders,
within the room its storage budget keeps (`read_budget.Share`); until every committed sample has been
looked at once the gate holds, saying how far it got. After that only the samples still waiting are
listed again, round-robin, at most every `progressSeconds`; a sample found complete is never listed
again, and a gate found open is not read again.

What is remembered per gate is the ids still waiting (a person's choice per sample: tens to thousands);
after a restart the gate is read again from its reports, on the same bounds.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, TypeVar

from genfab.inventory import read_report
from genfab.planner import PlannedStage
from genfab.sequencing.manual import Awaiting, awaiting, missing_files, sample_folder
from genfab.storage.base import Storage

T = TypeVar("T")

SAMPLES_PER_CALL = 200
"""Sample folders one call lists for one gate at most."""

Slot = tuple[Any, str, str]
"""(resource, stage, config hash)."""


class NoRoom(Exception):
    """The caller's budget has no room for the reader's next read: the rest waits for its next call."""


class Spender(Protocol):
    def spend(self, read: Callable[[], T]) -> T:
        """`read()`, or `NoRoom` when the budget has no room for it."""


class Unbounded:
    """No budget: every read is made (`genfab run`)."""

    def spend(self, read: Callable[[], T]) -> T:
        return read()


@dataclass
class _Gate:
    shards: int
    next_report: int = 0
    """Shard reports read: indexes below this."""
    unchecked: deque[str] = field(default_factory=deque)
    """Committed samples not looked at yet."""
    waiting: OrderedDict[str, tuple[str, ...]] = field(default_factory=OrderedDict)
    """Samples looked at that still lack files, next to look at again first."""
    checked: int = 0
    looked_again: float = float("-inf")
    result: Awaiting | None = None
    open: bool = False
    """Every committed sample has its files: never read again."""


@dataclass(frozen=True)
class GateReading:
    held: Awaiting | None
    """The gate's state: None when it is open."""
    more: bool
    """Samples are still to be looked at for the first time: reconcile again soon."""


class GateReader:
    """`reports`: shard reports read per call at most; `seconds`: how soon samples still waiting are
    looked at again; `spender()`: the budget of one call."""

    def __init__(self, seconds: float, reports: int, clock: Callable[[], float] = time.monotonic,
                 spender: Callable[[], Spender] = Unbounded) -> None:
        self.seconds = seconds
        self.reports = reports
        self.clock = clock
        self.spender = spender
        self._gates: dict[Slot, _Gate] = {}

    def forget(self, key: Any) -> None:
        # reconciles add slots from other threads meanwhile: take a snapshot of the keys (one C-level
        # copy under the GIL) and pop ours, never iterate the live dict nor replace it (a slot added to
        # a replaced dict would be lost)
        for slot in [slot for slot in list(self._gates) if slot[0] == key]:
            self._gates.pop(slot, None)

    def read(self, slot: Slot, stage: PlannedStage, shards: int, run: Callable[[], Storage],
             output: Callable[[], Storage], run_uri: str = "OUTPUT", file: str = "FILE") -> GateReading:
        gate = self._gates.get(slot)
        if gate is None or gate.shards != shards:
            gate = self._gates[slot] = _Gate(shards)
        if gate.open:
            return GateReading(None, False)
        first_pass = gate.next_report < shards or bool(gate.unchecked)
        if not first_pass and self.clock() - gate.looked_again < self.seconds:
            return GateReading(gate.result, False)
        share = self.spender()
        with contextlib.suppress(NoRoom):
            self._read_reports(gate, stage, share, run)
            self._look(gate, stage, share, output)
        gate.looked_again = self.clock()
        if gate.next_report < shards or gate.unchecked:
            committed = gate.checked + len(gate.unchecked)
            gate.result = Awaiting(stage.name, stage.manual_gate.condition if stage.manual_gate else "", {}, (
                f"stage {stage.name}: finding the samples that await a person's choice: {gate.next_report} of "
                f"{shards} shard reports read, {gate.checked} of {committed} committed samples looked at"))
            return GateReading(gate.result, True)
        gate.result = awaiting(stage, gate.waiting, output=run_uri, file=file)
        gate.open = gate.result is None
        return GateReading(gate.result, False)

    def _read_reports(self, gate: _Gate, stage: PlannedStage, share: Spender, run: Callable[[], Storage]) -> None:
        if gate.next_report >= gate.shards:
            return
        store = run()
        for _ in range(self.reports):
            if gate.next_report >= gate.shards:
                return
            report = share.spend(partial(read_report, store, stage.name, stage.config_hash, gate.next_report,
                                         gate.shards))
            if report is not None:
                gate.unchecked.extend(report.succeeded)
            gate.next_report += 1

    def _look(self, gate: _Gate, stage: PlannedStage, share: Spender, output: Callable[[], Storage]) -> None:
        """List the folders of samples not looked at yet, then (the first pass done) of those still
        waiting, oldest look first; at most `SAMPLES_PER_CALL` in all."""
        again = 0 if gate.unchecked or gate.next_report < gate.shards else len(gate.waiting)
        if not gate.unchecked and not again:
            return
        store = output()
        for _ in range(SAMPLES_PER_CALL):
            if gate.unchecked:
                sample = gate.unchecked[0]
            elif again:
                sample = next(iter(gate.waiting))
            else:
                return
            folder = sample_folder(stage, sample)
            missing = missing_files(stage, share.spend(partial(_present, store, folder)))
            if gate.unchecked:
                gate.unchecked.popleft()
                gate.checked += 1
            else:
                gate.waiting.pop(sample)
                again -= 1
            if missing:
                gate.waiting[sample] = missing


def _present(store: Storage, folder: str) -> list[str]:
    """The keys under a sample's folder, relative to it (one listing)."""
    return [o.key[len(folder):] for o in store.list(folder)]

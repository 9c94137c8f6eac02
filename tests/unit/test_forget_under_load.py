"""A resource deleted while other resources reconcile: forgetting its progress and gate slots while
reconcile threads add slots to the same tables never raises (`dictionary changed size during
iteration`, seen once while deleting 300 resources) and loses no other resource's slot."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest

from genfab.operator.gate_reader import GateReader
from genfab.operator.progress import ProgressReader


@pytest.fixture
def eager_switching() -> Iterator[None]:
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch as often as the interpreter allows
    yield
    sys.setswitchinterval(interval)


@pytest.mark.parametrize("table", ["progress", "gates"])
def test_300_deletions_while_slots_are_added(table: str, eager_switching: None) -> None:
    reader = ProgressReader(10.0, 100) if table == "progress" else GateReader(10.0, 100)
    slots: dict[tuple[object, ...], object] = reader._stages if table == "progress" else reader._gates  # type: ignore[union-attr]
    deleted = [("DatasetJob", "ns", f"gone-{i}") for i in range(300)]
    for key in deleted:
        for stage in range(8):
            slots[(key, f"stage-{stage}")] = object()
    errors: list[BaseException] = []
    stop = threading.Event()
    added = [0] * 4

    def reconcile(worker: int) -> None:  # other resources' slots, added and re-added
        n = 0
        while not stop.is_set():
            slots[(("DatasetJob", "ns", f"live-{worker}-{n % 500}"), "segment")] = object()
            n += 1
        added[worker] = min(n, 500)

    def delete() -> None:
        try:
            for key in deleted:
                reader.forget(key)
        except BaseException as exc:  # the failure this test looks for
            errors.append(exc)

    workers = [threading.Thread(target=reconcile, args=(w,)) for w in range(4)]
    for w in workers:
        w.start()
    deleting = threading.Thread(target=delete)
    deleting.start()
    deleting.join(60)
    stop.set()
    for w in workers:
        w.join(10)
    assert not errors, errors
    assert not any(slot[0] in set(deleted) for slot in list(slots))
    assert sum(1 for slot in list(slots) if slot[0][2].startswith("live-")) == sum(added)  # none lost

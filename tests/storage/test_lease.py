"""The per-output lease of local runs, on both backends: conditional writes decide who holds it,
a stale lease expires, a released one is free, a lost one stops its holder."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from genfab.local.lease import (
    LEASE_KEY,
    RENEW_SECONDS,
    Lease,
    LeaseDoc,
    LeaseLost,
    OutputInUse,
    is_free,
    parse_lease,
)
from genfab.storage import Storage


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def lease(storage: Storage, clock: Clock, alive: bool | None = None, name: str = "DatasetJob/a") -> Lease:
    return Lease(storage, name, ttl=60, clock=clock, alive=lambda host, pid: alive)


DOC = LeaseDoc("ana@box", "box", 42, "r1", "DatasetJob/a", acquired_at=100.0, expires_at=160.0)


@pytest.mark.parametrize(("current", "now", "alive", "free"), [
    (None, 0.0, None, True),
    (DOC, 150.0, None, False),          # held, holder elsewhere
    (DOC, 150.0, True, False),          # held, holder runs here
    (DOC, 150.0, False, True),          # holder process gone from this machine
    (DOC, 160.0, None, True),           # expired
    (LeaseDoc(**{**DOC.__dict__, "expires_at": 0.0}), 1.0, None, True),  # released
])
def test_is_free(current: LeaseDoc | None, now: float, alive: bool | None, free: bool) -> None:
    assert is_free(current, now, lambda host, pid: alive) is free


def test_a_second_run_is_told_who_holds_the_output_until_it_is_released(storage: Storage) -> None:
    clock = Clock()
    first, second = lease(storage, clock, alive=None), lease(storage, clock, alive=None, name="DatasetJob/b")
    first.acquire()
    with pytest.raises(OutputInUse, match=r"in use by DatasetJob/a run by .*@.* \(pid \d+\) since .*UTC; "
                                          r"its lease expires at .*UTC unless that run renews it"):
        second.acquire()
    first.release()
    second.acquire()
    assert json.loads(storage.read_bytes(LEASE_KEY))["resource"] == "DatasetJob/b"
    assert second.took_over is None  # a released lease is not a stale one


def test_a_stale_lease_expires_and_is_taken_over(storage: Storage) -> None:
    clock = Clock()
    first, second = lease(storage, clock), lease(storage, clock, name="DatasetJob/b")
    first.acquire()
    clock.now += 61  # the first run was killed: no renewal, no release
    second.acquire()
    assert second.took_over is not None and second.took_over.resource == "DatasetJob/a"
    clock.now += RENEW_SECONDS
    with pytest.raises(LeaseLost, match="another run took over"):
        first.renew_if_due()


def test_renewal_keeps_the_lease(storage: Storage) -> None:
    clock = Clock()
    holder, other = lease(storage, clock), lease(storage, clock, name="DatasetJob/b")
    holder.acquire()
    for _ in range(10):  # 150 s of renewals every 15 s
        clock.now += RENEW_SECONDS
        holder.renew_if_due()
    with pytest.raises(OutputInUse):
        other.acquire()


def test_only_one_of_many_simultaneous_starters_wins(storage: Storage) -> None:
    clock = Clock()
    contenders = [lease(storage, clock, name=f"DatasetJob/r{i}") for i in range(8)]

    def attempt(one: Lease) -> bool:
        try:
            one.acquire()
        except OutputInUse:
            return False
        return True

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(attempt, contenders)) == 1


def test_a_corrupt_lease_object_is_taken_over(storage: Storage) -> None:
    storage.write_bytes(LEASE_KEY, b"{not a lease")
    assert parse_lease(b"{not a lease") is None and parse_lease(b"[" * 100_000) is None
    lease(storage, Clock()).acquire()

"""What one reconcile may spend on a tenant's storage (genfab.operator.read_budget): every call is
charged, each bound stops the reconcile with one line naming the object and the bound, and one byte
pool bounds what all reconciles hold together."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from genfab.operator.read_budget import Budget, BudgetedStorage, BytePool, ReadBounds, budget, current
from genfab.storage import StorageLimit, StorageTooLarge, open_storage


def store(tmp_path: Path, bounds: ReadBounds, pool: BytePool | None = None,
          clock: list[float] | None = None) -> BudgetedStorage:
    now = clock or [0.0]
    return BudgetedStorage(open_storage(f"file://{tmp_path}"),
                           Budget(bounds, pool or BytePool(1 << 30), clock=lambda: now[0]))


def test_listing_counts_a_request_per_page_and_stops_at_the_object_bound(tmp_path: Path) -> None:
    for i in range(30):
        (tmp_path / f"f{i:03d}").write_text("x")
    s = store(tmp_path, ReadBounds(listed=25))
    with pytest.raises(StorageLimit, match=rf"file://{tmp_path}: lists more than 25 objects \(the operator's bound"):
        list(s.list())
    assert s.spend.requests == 1


def test_requests_are_bounded(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("x")
    s = store(tmp_path, ReadBounds(requests=3))
    for _ in range(3):
        s.size("a")
    with pytest.raises(StorageLimit, match="a: more than 3 storage requests"):
        s.read_bytes("a")


def test_time_is_bounded(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("x")
    clock = [0.0]
    s = store(tmp_path, ReadBounds(seconds=10), clock=clock)
    s.read_bytes("a")
    clock[0] = 11.0
    with pytest.raises(StorageLimit, match="storage calls took more than 10 s"):
        s.read_bytes("a")


def test_bytes_are_bounded_and_the_readers_own_bound_stays_its_own(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 600)
    s = store(tmp_path, ReadBounds(bytes=1000))
    assert len(s.read_bytes("a")) == 600
    with pytest.raises(StorageLimit, match="reading more than 1000 bytes"):
        s.read_bytes("a")  # 1,200 in all
    fresh = store(tmp_path, ReadBounds(bytes=1000))
    with pytest.raises(StorageTooLarge):  # the object's fault: refused, not retried
        fresh.read_at_most("a", 100)
    streamed = store(tmp_path, ReadBounds(bytes=500))
    with pytest.raises(StorageLimit), streamed.open_read("a") as stream:
        stream.read()


def test_the_pool_bounds_what_all_reconciles_hold_at_once(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 600)
    pool = BytePool(1000)
    bounds = ReadBounds(pool_wait=0.05)
    first = Budget(bounds, pool)
    BudgetedStorage(open_storage(f"file://{tmp_path}"), first).read_bytes("a")
    second = BudgetedStorage(open_storage(f"file://{tmp_path}"), Budget(bounds, pool))
    with pytest.raises(StorageLimit, match="holds 1000 bytes of tenants' storage reads at once"):
        second.read_bytes("a")
    first.close()  # the first reconcile ends: its bytes go back
    assert pool.free == 1000
    assert len(second.read_bytes("a")) == 600


def test_the_budget_belongs_to_the_thread_that_opened_it() -> None:
    pool = BytePool(100)
    seen: list[object] = []
    with budget(ReadBounds(), pool) as mine:
        assert current() is mine
        thread = threading.Thread(target=lambda: seen.append(current()))
        thread.start()
        thread.join()
    assert seen == [None] and current() is None


def test_the_chart_value_sets_the_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """operator.readBounds reaches the operator as JSON in camelCase (helm writes large numbers as floats)."""
    from genfab.operator.settings import OperatorSettings

    monkeypatch.setenv("GENFAB_READ_BOUNDS", '{"poolBytes": 3.3554432e+07, "seconds": 10, "listed": 5000}')
    bounds = OperatorSettings().read_bounds
    assert (bounds.pool_bytes, bounds.seconds, bounds.listed, bounds.requests) == (33554432, 10.0, 5000, 1000)
    monkeypatch.setenv("GENFAB_READ_BOUNDS", '{"sconds": 10}')
    with pytest.raises(ValueError, match="unknown field"):
        OperatorSettings()


def test_the_charts_read_bounds_are_the_operators() -> None:
    """`operator.readBounds` in the chart's values schema names exactly the fields of `ReadBounds`."""
    import json
    import re
    from dataclasses import fields

    schema = json.loads((Path(__file__).parents[2] / "charts/genfab/values.schema.json").read_text())
    chart = set(schema["properties"]["operator"]["properties"]["readBounds"]["properties"])
    assert chart == {re.sub(r"_(\w)", lambda m: m.group(1).upper(), f.name) for f in fields(ReadBounds)}

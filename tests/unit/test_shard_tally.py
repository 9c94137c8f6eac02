"""Index ranges (the Job's `completedIndexes` format) and folding finished shards' reports into a tally."""

from __future__ import annotations

from typing import Any

import pytest

from genfab.api.status import ShardTally
from genfab.contract import indexes
from genfab.inventory import FailedSample, ShardReport, ShardState
from genfab.status import tally

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("text", "ranges", "count"), [
    ("", (), 0),
    ("0", ((0, 0),), 1),
    ("0-2,5", ((0, 2), (5, 5)), 4),
    ("5,0-2", ((0, 2), (5, 5)), 4),          # any order
    ("0-2,3,4-6", ((0, 6),), 7),              # touching ranges merge
    ("0-9999", ((0, 9999),), 10_000),
])
def test_parse_and_count(text: str, ranges: indexes.Ranges, count: int) -> None:
    assert indexes.parse(text) == ranges and indexes.count(ranges) == count
    assert indexes.parse(indexes.text(ranges)) == ranges


@pytest.mark.parametrize(("a", "b", "left"), [
    ("0-9", "", "0-9"),
    ("0-9", "0-9", ""),
    ("0-9", "3-4", "0-2,5-9"),
    ("0-9", "0,9", "1-8"),
    ("0-9,20-29", "5-24", "0-4,25-29"),
    ("3", "0-2,4-9", "3"),
    ("0-99999", "0-99998", "99999"),
])
def test_difference(a: str, b: str, left: str) -> None:
    got = indexes.difference(indexes.parse(a), indexes.parse(b))
    assert indexes.text(got) == left
    assert set(indexes.members(got)) == set(indexes.members(indexes.parse(a))) - set(indexes.members(indexes.parse(b)))


def test_contains_first_and_union() -> None:
    r = indexes.parse("0-2,5,10-12")
    assert [i for i in range(14) if indexes.contains(r, i)] == [0, 1, 2, 5, 10, 11, 12]
    assert indexes.first(r, 5) == [0, 1, 2, 5, 10] and indexes.first(r, 0) == []
    assert indexes.text(indexes.union(r, indexes.parse("3-4,6-9"))) == "0-12"


def report(index: int, ok: list[str], failed: tuple[str, ...] = (), state: ShardState = "succeeded",
           **kw: Any) -> ShardReport:
    return ShardReport("segment", "h", index, 4, state=state, succeeded=ok,
                       failed=[FailedSample(i, "SampleError", "bad") for i in failed], **kw)


def test_fold_counts_each_shard_once_and_keeps_what_the_summary_needs() -> None:
    t = tally.fold(tally.start("uid-1"), {
        0: report(0, ["a", "b"], ("c",), reused=1, produced_by={"sam2": 2}, notes=["a: note"], model_load_seconds=3.0),
        2: report(2, ["g"], gpu_peak_bytes=5 << 30, produced_by={"sam2": 1}),
    })
    again = tally.fold(t, {0: report(0, ["a", "b"], ("c",)), 1: None})  # 0 again: not counted twice; 1: no report
    assert (again.succeeded, again.failed, again.reused, again.indexes) == (3, 1, 1, "0-2")
    assert again.produced_by == {"sam2": 3} and again.notes == ["a: note"] and again.note_count == 1
    assert again.model_load_seconds == 3.0 and again.gpu_peak_bytes == 5 << 30
    assert again.dropped["SampleError"].count == 1 and again.dropped["SampleError"].examples == ["c"]
    assert tally.pending(again, indexes.parse("0-3")) == ((3, 3),)


def test_fold_a_corrupt_and_a_failed_shard() -> None:
    corrupt = ShardReport.corrupt_report("segment", "h", 1, "Invalid JSON")
    failed = report(3, ["x"], state="failed", message="exit code 1")
    t = tally.fold(tally.start("u"), {1: corrupt, 3: failed})
    assert t.corrupt == 1 and t.corrupt_messages == ["shard 1: CorruptReport: Invalid JSON"]
    assert t.succeeded == 1 and t.shard_errors == ["shard 3: exit code 1"]


def test_a_tally_stays_bounded_whatever_the_reports_say() -> None:
    """Every list and map of a tally has the status model's bound: a tenant's reports (their notes, drop
    reasons, producers) cannot grow the resource's status."""
    reports: dict[int, ShardReport | None] = {
        i: ShardReport("segment", "h", i, 1000, state="succeeded", succeeded=[f"s{i}"],
                       failed=[FailedSample(f"f{i}", f"Reason{i}", "x" * 5000)], notes=["n" * 5000] * 20,
                       produced_by={f"model-{i}": 1})
        for i in range(1000)}
    t = tally.fold(tally.start("u"), reports)
    assert len(t.notes) == 20 and t.note_count == 20_000 and all(len(n) <= 512 for n in t.notes)
    assert len(t.dropped) == 32 and t.dropped[tally.OTHER_DROPS].count == 1000 - 31
    assert len(t.produced_by) == 64 and sum(t.produced_by.values()) == 1000
    ShardTally.model_validate(t.model_dump())  # within the status schema's bounds
    assert len(t.model_dump_json()) < 32_000


def test_a_report_claiming_more_than_its_shard_holds_is_refused_in_one_line() -> None:
    """A shard writes its own report: one claiming 2,419,790 samples of a stage whose shards hold 2
    adds nothing and is said once; an honest one beside it counts."""
    forged = report(0, [f"s{i}" for i in range(2_419_790)])
    t = tally.fold(tally.start("uid"), {0: forged, 1: report(1, ["a"], ("b",))}, capacity=2)
    assert (t.succeeded, t.failed, t.corrupt) == (1, 1, 1)
    assert t.corrupt_messages == ["shard 0: CorruptReport: the report claims 2419790 samples; a shard of this stage "
                                  "holds at most 2: not counted"]
    assert tally.fold(tally.start("uid"), {0: forged}).succeeded == 2_419_790  # no capacity known: as given


@pytest.mark.parametrize(("shard_size", "fixed", "samples", "capacity"), [
    (32, None, 1000, 32), (32, None, None, 32), (1, 1, 5, 5), (1, 4, 10, 3), (1, 4, None, None),
])
def test_shard_capacity(shard_size: int, fixed: int | None, samples: int | None, capacity: int | None) -> None:
    from dataclasses import replace

    from tests.unit.shared import VD, example_plan

    stage = replace(example_plan(VD).stage("depth"), shard_size=shard_size, fixed_shards=fixed, samples=samples)
    assert stage.shard_capacity == capacity


@pytest.mark.parametrize(("found", "said"), [
    (None, "left no report"),
    (report(0, ["a"], state="running"), "left a report still marked running"),
])
def test_a_completed_shard_without_its_final_report_counts_as_corrupt_not_as_done(found: ShardReport | None,
                                                                                 said: str) -> None:
    """The Job names index 0 completed (its Pod exited 0), but storage holds no final report of it (cleared
    or overwritten after it was written, or a stage that exits 0 without one): none of its samples is known
    to exist, so the stage must not succeed on it. A failed shard without a report counts nothing, as before."""
    t = tally.fold(tally.start("uid"), {0: found, 1: None, 2: report(2, ["c"])}, completed=indexes.parse("0,2"))
    assert (t.indexes, t.succeeded, t.corrupt) == ("0-2", 1, 1)
    assert t.corrupt_messages[0].startswith("shard 0: CorruptReport: its Pod exited 0 but") and said in \
        t.corrupt_messages[0]
    assert tally.fold(tally.start("uid"), {0: found}).corrupt == 0  # a failed index (or not known to be completed)

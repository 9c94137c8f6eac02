"""A manual gate read on a bound per reconcile: a few reports and sample folders each time, the gate held
(saying how far it got) until every committed sample was looked at once; then only the waiting ones are
looked at again, at most every `progressSeconds`; an open gate is never read again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from genfab.inventory import ShardReport, write_report
from genfab.sequencing import gate_reader
from genfab.sequencing.gate_reader import GateReader
from genfab.storage.local import FileStorage
from tests.unit.shared import worldexplorer_plan

pytestmark = pytest.mark.unit
SHARDS = 30
"""Two samples a shard: 60 committed samples."""


class Counting(FileStorage):
    reads = 0
    listed: list[str]

    def read_at_most(self, key: str, limit: int, what: str = "") -> bytes:
        self.reads += 1
        return super().read_at_most(key, limit, what)

    def list(self, prefix: str = "") -> Iterator[Any]:
        self.listed.append(prefix)
        return super().list(prefix)


def choose(out: Path, sample: str) -> None:
    final = out / sample / "scaffold" / "final"
    final.mkdir(parents=True, exist_ok=True)
    for gap in ("001", "003", "005", "007"):
        (final / f"{gap}.png").write_bytes(b"png")


def test_a_gate_is_read_a_bounded_part_at_a_time_and_each_sample_looked_at_once_until_it_waits(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gate_reader, "SAMPLES_PER_CALL", 25)
    _, p = worldexplorer_plan(worldexplorer={"scaffold": {"selection": "manual"}})
    stage = p.stage("scaffold")
    assert stage.manual_gate is not None
    run = Counting(f"file://{tmp_path}", tmp_path)
    run.listed = []
    samples = [f"photorealistic/index_{i:04d}" for i in range(2 * SHARDS)]
    for i in range(SHARDS):
        write_report(run, ShardReport("scaffold", stage.config_hash, i, SHARDS, state="succeeded",
                                      succeeded=samples[2 * i:2 * i + 2]))
    for sample in samples[::2]:  # half chosen already
        choose(tmp_path, sample)
    clock = [0.0]
    reader = GateReader(seconds=10, reports=12, clock=lambda: clock[0])
    slot = (("SceneJob", "lab", "s"), "scaffold", stage.config_hash)

    def read() -> Any:
        run.reads, run.listed = 0, []
        return reader.read(slot, stage, SHARDS, lambda: run, lambda: run)

    first = read()
    assert first.more and first.held is not None and (run.reads, len(run.listed)) == (12, 24)
    assert "finding the samples that await a person's choice: 12 of 30 shard reports read, 24 of 24" \
        in first.held.message
    second = read()
    assert second.more and (run.reads, len(run.listed)) == (12, 24)
    third = read()
    assert not third.more and (run.reads, len(run.listed)) == (6, 12)  # 60 looked at in all, once each
    fourth = read()  # the first look is over: only the 30 waiting, but not before progressSeconds
    assert not fourth.more and fourth.held is not None and (run.reads, run.listed) == (0, [])
    assert "30 sample(s) await a person's choice" in fourth.held.message
    assert set(fourth.held.pending) == set(samples[1::2])
    for sample in samples[1::2]:
        choose(tmp_path, sample)
    clock[0] = 11
    looked = read()  # 25 of the 30 looked at again (the bound); five still thought waiting
    assert not looked.more and looked.held is not None and len(run.listed) == 25
    assert set(looked.held.pending) == set(samples[51::2])
    clock[0] = 22
    last = read()
    assert last.held is None and not last.more and len(run.listed) == 5 and run.reads == 0
    clock[0] = 100
    assert read().held is None and (run.reads, run.listed) == (0, [])  # an open gate is not read again

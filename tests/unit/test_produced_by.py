"""What made each sample (a stage with a fallback or a choice of models) is counted per shard and
summed in the run's summary, so a fallback shows in the numbers, not only in the logs."""

from __future__ import annotations

import json

from genfab.inventory.reports import ShardReport
from genfab.status import produced_by


def test_counts_sum_over_shards_most_first() -> None:
    shards = [{"classical": 3, "sam3:facebook/sam3": 1}, {"sam3:facebook/sam3": 5}, {}]
    assert produced_by(shards) == {"sam3:facebook/sam3": 6, "classical": 3}
    assert list(produced_by([{"b": 1, "a": 1}])) == ["a", "b"]  # ties by name
    assert produced_by([]) == {}


def test_a_report_carries_its_counts_and_older_reports_still_read() -> None:
    report = ShardReport("segment", "h", 0, 1, produced_by={"classical": 2})
    assert ShardReport.from_json(report.to_json()).produced_by == {"classical": 2}
    older = json.loads(report.to_json())
    del older["produced_by"]
    assert ShardReport.from_json(json.dumps(older).encode()).produced_by == {}

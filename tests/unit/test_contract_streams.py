"""How a streaming stage's shards map onto its upstream's (genfab.contract.streams): parts of one upstream
shard when its shards are smaller, runs of upstream shards when they are larger, and which of its shards
may start once a prefix of the upstream's ended."""

from __future__ import annotations

import pytest

from genfab.contract.streams import lines_up, part, ready_below, stream_shards, upstream_span

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("up", "size", "ok"), [(256, 64, True), (64, 256, True), (2, 2, True), (3, 2, False),
                                                (4, 6, False), (0, 2, False)])
def test_sizes_line_up_when_one_divides_the_other(up: int, size: int, ok: bool) -> None:
    assert lines_up(up, size) is ok


@pytest.mark.parametrize(("up_shards", "up", "size", "shards"), [(5, 2, 2, 5), (5, 256, 64, 20), (5, 64, 256, 2),
                                                               (4, 64, 256, 1), (1, 8, 1, 8)])
def test_the_shard_count_follows_the_upstreams(up_shards: int, up: int, size: int, shards: int) -> None:
    assert stream_shards(up_shards, up, size) == shards


def test_each_upstream_sample_goes_to_exactly_one_shard_in_order() -> None:
    """Upstream shards of 8 committed samples each (the last of 3), split in shards of 2 and joined in
    shards of 16: every sample once, in the upstream's sorted order."""
    committed = [[f"s{i:02d}" for i in range(j * 8, min(j * 8 + 8, 19))] for j in range(3)]
    for size in (2, 8, 16, 24):
        taken = []
        for index in range(stream_shards(3, 8, size)):
            for up in upstream_span(index, 3, 8, size):
                taken.extend(committed[up][part(index, 8, size)])
        assert taken == [s for shard in committed for s in shard], size


@pytest.mark.parametrize(("ready", "up", "size", "below"), [
    (0, 256, 64, 0), (1, 256, 64, 4), (3, 256, 64, 12), (3, 64, 256, 0), (4, 64, 256, 1), (9, 64, 256, 2),
    (10, 64, 256, 3),  # every upstream shard ended: the last, shorter run of shards is ready too
    (2, 2, 2, 2)])
def test_a_shard_is_ready_once_every_upstream_shard_it_reads_ended(ready: int, up: int, size: int, below: int
                                                                    ) -> None:
    assert ready_below(ready, 10, up, size) == below

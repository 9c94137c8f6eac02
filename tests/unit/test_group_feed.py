"""A cluster's shared worker (`GroupFeed`): its own stage's shards and those of the stages it hosts, each from
that stage's own cursor, a hosted stage's once the operator says it started, downstream first; it waits
while none can be taken, and ends once every stage's shards are taken or a stage will not run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from genfab.contract import EXIT_OK, StageConfig
from genfab.contract.hosted import HostedMember, HostedStage
from genfab.contract.names import ENV_CONFIG, ENV_SHARDS, hosted_key
from genfab.inventory.workers import WAIT, read_worker
from genfab.stages.runtime import BadInput, load_context
from genfab.stages.runtime.group import GroupFeed
from genfab.stages.runtime.shared import SharedAssignment
from genfab.storage import open_storage
from tests.helpers import stage_contract

HOST, HOSTED = "a" * 64, "b" * 64


def group(tmp_path: Path, shards: int = 2) -> tuple[GroupFeed, dict[str, Any]]:
    env = {**stage_contract(tmp_path, "outpaint", configHash=HOST, shardSize=1), "GENFAB_WORKERS": "1",
           "GENFAB_SHARD_COUNT": str(shards), "GENFAB_WAITING_FILE": str(tmp_path / "waiting")}
    ctx = load_context(env)
    cfg = json.loads((tmp_path / "stage.json").read_text())
    return GroupFeed(ctx, [HostedMember(stage="coarse", config_hash=HOSTED)], poll_seconds=0), cfg


def start_hosted(tmp_path: Path, cfg: dict[str, Any], shards: int = 2, **fields: Any) -> None:
    hosted = StageConfig.model_validate({**cfg, "stage": "coarse", "configHash": HOSTED,
                                         "outputUri": f"{cfg['runUri']}/coarse", **fields})
    open_storage(cfg["runUri"]).write_bytes(hosted_key("coarse", HOSTED),
                                            HostedStage(config=hosted, shards=shards).model_dump_json().encode())


def taken(feed: GroupFeed) -> Any:
    got = feed.next()
    if isinstance(got, SharedAssignment):
        feed.done(got, EXIT_OK)
        return got.stage, got.shard.index
    return got


def test_its_own_stages_shards_then_the_hosted_ones_once_started_then_the_end(tmp_path: Path) -> None:
    feed, cfg = group(tmp_path)
    assert [taken(feed), taken(feed)] == [("outpaint", 0), ("outpaint", 1)]
    assert taken(feed) == WAIT  # coarse not started: its shards may come
    run = open_storage(cfg["runUri"])
    record = read_worker(run, "outpaint", HOST, 0, 2)
    assert record is not None and record.waiting_since is not None  # said once, on its own stage's record
    assert (tmp_path / "waiting").exists()  # and by the readiness probe's file
    start_hosted(tmp_path, cfg)
    got = feed.next()
    assert isinstance(got, SharedAssignment) and (got.stage, got.shard.index) == ("coarse", 0)
    assert got.env[ENV_SHARDS] == "2"
    assert StageConfig.from_json(Path(got.env[ENV_CONFIG]).read_bytes()).stage == "coarse"
    record = read_worker(run, "outpaint", HOST, 0, 2)
    assert record is not None and record.waiting_since is None and not (tmp_path / "waiting").exists()
    feed.done(got, EXIT_OK)
    assert [taken(feed), taken(feed)] == [("coarse", 1), None]
    coarse = read_worker(run, "coarse", HOSTED, 0, 2)  # the hosted stage's own record
    assert coarse is not None and coarse.current is None and coarse.finished


def test_downstream_first_and_a_stage_that_will_not_run_is_not_waited_for(tmp_path: Path) -> None:
    feed, cfg = group(tmp_path)
    start_hosted(tmp_path, cfg, shards=1)
    assert [taken(feed), taken(feed), taken(feed)] == [("coarse", 0), ("outpaint", 0), ("outpaint", 1)]
    assert taken(feed) is None

    stopped = tmp_path / "stopped"
    stopped.mkdir()
    feed, cfg = group(stopped, shards=1)
    open_storage(cfg["runUri"]).write_bytes(hosted_key("coarse", HOSTED),
                                            HostedStage(stopped="its upstream gaussians failed").model_dump_json()
                                            .encode())
    assert [taken(feed), taken(feed)] == [("outpaint", 0), None]


@pytest.mark.parametrize("fields", [{"configHash": "e" * 64}, {"runUri": "file:///elsewhere"},
                                    {"stage": "render"}])
def test_a_hosted_stages_document_the_operator_did_not_write_is_refused(tmp_path: Path, fields: dict[str, Any]
                                                                         ) -> None:
    feed, cfg = group(tmp_path)
    start_hosted(tmp_path, cfg, **fields)
    with pytest.raises(BadInput, match="is not the config of stage coarse"):
        feed.next()


def test_a_hosted_stage_the_operator_stops_while_it_runs_takes_no_more_shards(tmp_path: Path) -> None:
    feed, cfg = group(tmp_path, shards=1)
    start_hosted(tmp_path, cfg, shards=3)
    got = feed.next()
    assert isinstance(got, SharedAssignment) and (got.stage, got.shard.index) == ("coarse", 0)
    open_storage(cfg["runUri"]).write_bytes(hosted_key("coarse", HOSTED),
                                            HostedStage(stopped="its upstream failed").model_dump_json().encode())
    assert taken(feed) == ("outpaint", 0)  # coarse's shard 1 is not taken
    feed.done(got, EXIT_OK)  # the shard it ran ends as it would
    assert taken(feed) is None

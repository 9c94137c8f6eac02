"""Streaming between stages on the cluster (genfab.operator.streams, and decide's use of it): when a
stage streaming from its upstream starts, how many of its shards may be taken, how far its workers
are raised, and what an upstream failure does to it."""

from __future__ import annotations

from typing import Any

import pytest

from genfab.api import parse_resource
from genfab.operator.decide import Observed, Progress, decide
from genfab.operator.streams import StreamInput, StreamStart, may_start, ready_prefix, ready_shards, wanted_parallelism
from genfab.planner import Plan, plan
from genfab.status import StageObservation
from tests.helpers import load_example
from tests.unit.shared import NOW


@pytest.mark.parametrize(("finished", "ready"), [
    ((), 0), (((1, 4),), 0), (((0, 0),), 1), (((0, 3), (6, 9)), 4), (((0, 9),), 10)])
def test_the_ready_shards_are_the_prefix_that_ended(finished: tuple[tuple[int, int], ...], ready: int) -> None:
    assert ready_prefix(finished) == ready


def upstream(state: str = "running", shards: int = 10, job: str | None = "j", succeeded: int = 7) -> StageObservation:
    return StageObservation("up", "h", "o", state, shards_total=shards, job_name=job,  # type: ignore[arg-type]
                            samples_succeeded=succeeded)


@pytest.mark.parametrize(("obs", "finished", "start"), [
    (upstream(), ((0, 2),), StreamStart(10, 10, 7, 3)),
    (upstream(), ((1, 2),), None),  # shard 0 has not ended: nothing to take in order
    (upstream(), (), None),
    (upstream(job=None), ((0, 2),), None),  # listing its samples first: no Job yet
    (upstream(state="finished"), ((0, 9),), None),  # it ended: the stage starts as any other, listed
])
def test_a_streaming_stage_starts_once_its_running_upstream_finished_a_first_shard(
        obs: StageObservation, finished: tuple[tuple[int, int], ...], start: StreamStart | None) -> None:
    assert may_start(obs, finished, 2, 2) == start


def test_every_shard_is_ready_once_the_upstream_ended() -> None:
    assert ready_shards(upstream(), ((0, 2),), 10, 2, 2) == 3
    assert ready_shards(upstream(state="finished"), ((0, 2),), 10, 2, 2) == 10


@pytest.mark.parametrize(("workers", "current", "ready", "done", "wanted"), [
    (4, 1, 3, 0, 3), (4, 1, 9, 0, 4), (4, 3, 3, 1, None), (4, 4, 10, 0, None), (4, 2, 0, 0, None), (4, 0, 0, 0, 1)])
def test_workers_are_raised_to_the_ready_shards_not_finished_and_never_lowered(
        workers: int, current: int, ready: int, done: int, wanted: int | None) -> None:
    assert wanted_parallelism(workers, current, ready, done) == wanted


def relighting(**spec: Any) -> tuple[Any, Plan]:
    """The relighting example's first two stages, two samples a shard (albedo streams from segment)."""
    doc = load_example("datasetjob-relighting.yaml")
    doc["spec"].update({"shardSize": 2, "onlyStages": ["segment", "albedo"], **spec})
    r = parse_resource(doc)
    return r, plan(r)


def job(p: Plan, stage: str, shards: int, workers: int, status: dict[str, Any], parallelism: int | None = None,
        streams: str | None = None) -> dict[str, Any]:
    s = p.stage(stage)
    notes = {"genfab.dev/samples": str(2 * shards), "genfab.dev/shards": str(shards),
             **({"genfab.dev/streams-from": streams} if streams else {})}
    return {"metadata": {"name": f"{p.name}-{stage}-{s.short_hash}", "annotations": notes,
                         "labels": {"genfab.dev/stage": stage, "genfab.dev/config-hash": s.short_hash}},
            "spec": {"completions": workers, "parallelism": parallelism or workers}, "status": status}


def test_decide_starts_a_streaming_stage_on_its_upstreams_first_shards_then_raises_its_workers() -> None:
    r, p = relighting(parallelism=3)
    assert p.stage("albedo").streams_from == ("segment",)
    segment = job(p, "segment", 5, 3, {"active": 3, "ready": 3, "startTime": "2026-11-22T11:59:00Z"})
    pending = Observed(jobs=[segment], progress={"segment": Progress(succeeded=4, shards=(2, 0), finished=((0, 1),))})
    d = decide(p, r.spec, pending, None, NOW)
    assert d.start == ["albedo"] and d.stream_starts == {"albedo": StreamStart(5, 5, 4, 2)}
    albedo = job(p, "albedo", 5, 3, {"active": 1, "ready": 1}, parallelism=1, streams="segment")
    running = Observed(jobs=[segment, albedo], progress={
        "segment": Progress(succeeded=8, shards=(4, 0), finished=((0, 3),)),
        "albedo": Progress(succeeded=2, shards=(1, 0), finished=((0, 0),))})
    d = decide(p, r.spec, running, None, NOW)
    assert d.start == [] and d.streams == [StreamInput("albedo", albedo["metadata"]["name"], 4, 3)]
    obs = {o.name: o for o in d.observations}
    assert obs["albedo"].samples_total == 8  # what segment committed so far, not its Job's annotation


def test_decide_stops_a_streaming_stage_whose_upstream_failed() -> None:
    r, p = relighting(parallelism=3)
    failed = job(p, "segment", 5, 3, {"conditions": [{"type": "Failed", "status": "True", "reason": "FailedIndexes"}]})
    albedo = job(p, "albedo", 5, 3, {"active": 2, "ready": 2}, streams="segment")
    d = decide(p, r.spec, Observed(jobs=[failed, albedo], progress={
        "segment": Progress(succeeded=6, failed=2, shards=(3, 2), finished=((0, 4),)),
        "albedo": Progress(succeeded=4, shards=(2, 0), finished=((0, 1),))}), None, NOW)
    assert albedo["metadata"]["name"] in d.delete and d.streams == []
    obs = {o.name: o for o in d.observations}["albedo"]
    assert obs.state == "blocked" and obs.samples_succeeded == 4 and obs.message == "stopped: an upstream stage failed"

"""Streaming between stages on the cluster (genfab.operator.streams, and decide's use of it): when a
stage streaming from its upstream starts, how many of its shards may be taken, how far its workers
are raised, and what an upstream failure does to it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from genfab.api import parse_resource
from genfab.operator.decide import Observed, Progress, decide
from genfab.operator.streams import (
    StreamInput,
    StreamStart,
    idle_past,
    may_start,
    ready_prefix,
    ready_shards,
    release_after,
    streams_under,
    wanted_parallelism,
)
from genfab.planner import Plan, plan
from genfab.status import StageObservation, tally
from tests.helpers import load_example
from tests.unit.shared import NOW


@pytest.mark.parametrize(("streaming", "queue", "elastic", "streams"), [
    (True, None, True, True), (True, None, False, True),  # not queued: Kueue never sees its Jobs
    (True, "lab-gpus", True, True),  # Kueue resizes an elastic Job
    (True, "lab-gpus", False, False),  # Kueue would suspend a Job whose parallelism changed
    (False, None, True, False), (False, "lab-gpus", True, False)])  # the chart turned streaming off
def test_a_queued_resource_streams_only_where_kueue_resizes_jobs(streaming: bool, queue: str | None, elastic: bool,
                                                                  streams: bool) -> None:
    assert streams_under(streaming, queue, elastic) is streams


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
    # it ended: the stage still starts streaming, every shard ready (a restart between its start and the
    # status write builds the same children as the first start did)
    (upstream(state="finished"), ((0, 9),), StreamStart(10, 10, 7, 10)),
    (upstream(state="finished", succeeded=0), ((0, 9),), None),  # with nothing committed: as any other stage
    (upstream(state="finished", job=None), ((0, 9),), None),  # reused whole, no Job: listed
])
def test_a_streaming_stage_starts_once_its_running_upstream_finished_a_first_shard(
        obs: StageObservation, finished: tuple[tuple[int, int], ...], start: StreamStart | None) -> None:
    assert may_start(obs, finished, 2, 2) == start


def test_every_shard_is_ready_once_the_upstream_ended() -> None:
    assert ready_shards(upstream(), ((0, 2),), 10, 2, 2) == 3
    assert ready_shards(upstream(state="finished"), ((0, 2),), 10, 2, 2) == 10


@pytest.mark.parametrize(("workers", "current", "ready", "done", "idle", "wanted"), [
    (4, 1, 3, 0, 0, 3), (4, 1, 9, 0, 0, 4), (4, 3, 3, 1, 0, None), (4, 2, 0, 0, 0, None),
    (4, 0, 0, 0, 0, None),  # all released, nothing committed: none started for nothing
    (4, 0, 2, 1, 0, 1),  # committed input again: a worker again
    (4, 4, 6, 4, 2, 2), (4, 4, 6, 4, 1, 3),  # released: the workers that waited past their bound
    (4, 3, 6, 3, 3, None),  # never below the ready shards not finished (the busy ones)
    (4, 2, 5, 5, 2, 0),  # everything committed is done: no worker waits for the upstream's next shard
])
def test_workers_follow_the_ready_shards_not_finished_and_those_idle_past_their_bound_are_released(
        workers: int, current: int, ready: int, done: int, idle: int, wanted: int | None) -> None:
    assert wanted_parallelism(workers, current, ready, done, 10, idle) == wanted


@pytest.mark.parametrize(("current", "done", "idle", "wanted"), [
    (4, 10, 2, None), (0, 10, 0, 1), (0, 8, 0, 2), (2, 6, 2, 4)])
def test_once_the_upstream_ended_the_job_runs_as_any_worker_job(current: int, done: int, idle: int,
                                                                 wanted: int | None) -> None:
    """Every shard is committed: none is released, and at least one worker runs, so the Job's remaining
    workers start and end it."""
    assert wanted_parallelism(4, current, 10, done, 10, idle) == wanted


@pytest.mark.parametrize(("floor", "load", "bound"), [(60, None, 60), (60, 20.5, 60), (60, 142.7, 142.7), (0, 3, 3)])
def test_a_waiting_worker_keeps_its_gpu_as_long_as_starting_one_again_would_cost(
        floor: float, load: float | None, bound: float) -> None:
    assert release_after(floor, load) == bound


def test_the_workers_idle_past_the_bound_are_counted() -> None:
    assert idle_past({0: 100.0, 3: 150.0, 5: 139.0}, now=200.0, bound=60.0) == 2
    assert idle_past({}, now=200.0, bound=60.0) == 0


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


@pytest.mark.parametrize(("load", "parallelism"), [(None, 2), (300.0, None)])
def test_decide_releases_a_worker_that_waited_past_its_bound(load: float | None, parallelism: int | None) -> None:
    """Two albedo workers wait for segment's next shard, one for 2 minutes (past the 60 s floor), one for
    10 s: the Job is lowered by one. A stage whose model load took 5 minutes keeps both: a new worker
    would pay that again."""
    r, p = relighting(parallelism=3)
    segment = job(p, "segment", 5, 3, {"active": 3, "ready": 3})
    albedo = job(p, "albedo", 5, 3, {"active": 3, "ready": 1}, parallelism=3, streams="segment")
    now = NOW.timestamp()
    counted = tally.start("uid").model_copy(update={"model_load_seconds": load})
    started = datetime.fromtimestamp(now - 7200, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # past the 1800 s deadline
    pods = [{"metadata": {"name": f"albedo-{w}", "labels": {"batch.kubernetes.io/job-completion-index": str(w)}},
             "status": {"phase": "Running", "containerStatuses": [{"state": {"running": {"startedAt": started}}}]}}
            for w in (0, 2)]
    d = decide(p, r.spec, Observed(jobs=[segment, albedo], pods={albedo["metadata"]["name"]: pods}, progress={
        "segment": Progress(succeeded=6, shards=(3, 0), finished=((0, 2),)),
        "albedo": Progress(succeeded=4, shards=(2, 0), finished=((0, 1),), tally=counted,
                           waiting={0: now - 120, 2: now - 10})}), None, NOW, idle_release_seconds=60)
    assert d.streams == [StreamInput("albedo", albedo["metadata"]["name"], 3, parallelism)]
    assert d.stop_pods == []  # a worker waiting for input is not stuck, however long it waits


def test_a_stage_whose_workers_were_all_released_is_not_one_that_never_started() -> None:
    """albedo's workers all waited past their bound and were released: its Job has no Pod and no counts in
    its status, two hours after it started. Its reports show shards ended, so it ran: the start deadline
    (`startDeadlineSeconds`) does not delete it."""
    r, p = relighting(parallelism=3)
    segment = job(p, "segment", 5, 3, {"active": 3, "ready": 3})
    started = datetime.fromtimestamp(NOW.timestamp() - 7200, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    albedo = job(p, "albedo", 5, 3, {"startTime": started}, streams="segment")
    albedo["spec"]["parallelism"] = 0
    d = decide(p, r.spec, Observed(jobs=[segment, albedo], progress={
        "segment": Progress(succeeded=6, shards=(3, 0), finished=((0, 2),)),
        "albedo": Progress(succeeded=6, shards=(3, 0), finished=((0, 2),))}), None, NOW)
    assert albedo["metadata"]["name"] not in d.delete
    assert {o.name: o for o in d.observations}["albedo"].reason != "DeadlineExceeded"
    assert d.streams == [StreamInput("albedo", albedo["metadata"]["name"], 3, None)]  # nothing new to take

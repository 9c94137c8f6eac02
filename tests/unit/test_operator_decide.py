"""The reconcile decision: plan + observed Jobs + previous status -> actions (table tests)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from genfab.api.status import ResourceStatus
from genfab.operator.decide import Observed, Progress, decide, resource_status, transitions
from genfab.planner import Plan
from tests.unit.shared import NOW, stage_job, worldexplorer_plan


def states(d: Any) -> list[str]:
    return [o.state for o in d.observations]


@pytest.mark.parametrize(("jobs", "start", "expected"), [
    ([], ["scaffold"], ["pending", "waiting", "waiting"]),
    ([("scaffold", "running")], [], ["running", "waiting", "waiting"]),
    ([("scaffold", "done")], ["expansion"], ["finished", "pending", "waiting"]),
    ([("scaffold", "failed")], [], ["finished", "blocked", "blocked"]),
    ([("scaffold", "done"), ("expansion", "done"), ("gaussians", "running")], [], ["finished", "finished", "running"]),
])
def test_sequencing(jobs: list[tuple[str, str]], start: list[str], expected: list[str]) -> None:
    r, p = worldexplorer_plan()
    d = decide(p, r.spec, Observed(jobs=[stage_job(p, s, st) for s, st in jobs],
                                   progress={"scaffold": Progress(1, 0)}), None, NOW)
    assert d.start == start and states(d) == expected and not d.delete


def test_partial_upstream_starts_downstream_only_with_continue_on_error() -> None:
    for coe, start in ((True, ["expansion"]), (False, [])):
        r, p = worldexplorer_plan(continueOnError=coe)
        observed = Observed(jobs=[stage_job(p, "scaffold", "done")], progress={"scaffold": Progress(0, 1)})
        assert decide(p, r.spec, observed, None, NOW).start == start


@pytest.mark.parametrize(("completed", "phase"), [("0", "Succeeded"), (None, "Failed"), ("", "Failed")])
def test_a_job_complete_without_naming_every_index_done_never_succeeds(completed: str | None, phase: str) -> None:
    """Kubernetes 1.20 (or a webhook that drops `completionMode`) runs the Job non-indexed: it completes
    with no `completedIndexes`, and no shard is known to have made its samples."""
    r, p = worldexplorer_plan()
    job = stage_job(p, "scaffold", "done")
    job["status"]["succeeded"] = 1
    if completed is None:
        del job["status"]["completedIndexes"]
    else:
        job["status"]["completedIndexes"] = completed
    d = decide(p, r.spec, Observed(jobs=[job], progress={"scaffold": Progress(0, 0)}), None, NOW)
    status = resource_status(d, r.spec, None, 1, "2026-11-22T12:00:00Z", {}, {})
    stage = status.stages[0]
    assert stage.phase == phase
    if phase == "Failed":
        assert stage.reason == "IndexesUnknown" and "did not run it as an Indexed Job" in (stage.message or "")
        assert d.start == [] and status.phase == "Failed"


def test_stale_config_hash_jobs_are_deleted_and_the_stage_restarts() -> None:
    r, p = worldexplorer_plan()
    old = stage_job(p, "scaffold", "done", hash_="0123456789")
    d = decide(p, r.spec, Observed(jobs=[old]), None, NOW)
    assert d.delete == [old["metadata"]["name"]] and d.start == ["scaffold"]


def inventory(p: Plan, stage: str, hash_: str) -> dict[str, Any]:
    listing = stage_job(p, stage, hash_=hash_)
    listing["metadata"]["name"] += "-inv"
    listing["metadata"]["labels"]["genfab.dev/task"] = "inventory"
    listing["spec"]["template"] = {"spec": {"volumes": [{"name": "stage-config", "configMap": {
        "name": f"s-{stage}-{hash_}"}}, {"name": "tmp", "emptyDir": {}}]}}
    return listing


def test_an_inventory_job_of_an_older_config_or_a_stage_no_longer_run_is_deleted() -> None:
    r, p = worldexplorer_plan()
    current = inventory(p, "scaffold", p.stage("scaffold").short_hash)
    old = inventory(p, "scaffold", "0123456789")
    d = decide(p, r.spec, Observed(inventories=[current, old]), None, NOW)
    assert d.delete == ["s-scaffold-0123456789-inv", "s-scaffold-0123456789"]  # the Job, then its config
    r, p = worldexplorer_plan(onlyStages=["expansion"])
    same = inventory(p, "scaffold", p.stage("scaffold").short_hash)
    d = decide(p, r.spec, Observed(inventories=[same]), None, NOW)
    assert d.delete == [same["metadata"]["name"]]  # the stage's config stays: its finished Job may use it


def test_suspend_passes_through_to_unfinished_jobs() -> None:
    r, p = worldexplorer_plan(suspend=True)
    d = decide(p, r.spec, Observed(jobs=[stage_job(p, "scaffold")]), None, NOW)
    assert d.suspend == [(stage_job(p, "scaffold")["metadata"]["name"], True)]
    r, p = worldexplorer_plan(suspend=False)
    d = decide(p, r.spec, Observed(jobs=[stage_job(p, "scaffold", suspend=True)]), None, NOW)
    assert d.suspend == [(stage_job(p, "scaffold")["metadata"]["name"], False)] and states(d)[0] == "suspended"


def test_kueue_queued_jobs_are_left_to_kueue_to_unsuspend() -> None:
    r, p = worldexplorer_plan()
    queued = stage_job(p, "scaffold", suspend=True)
    queued["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] = "lab-gpus"
    queued["status"] = {}
    d = decide(p, r.spec, Observed(jobs=[queued]), None, NOW)
    assert d.suspend == [] and not d.delete  # no fight with Kueue, no start deadline while queued
    obs = d.observations[0]
    assert (obs.state, obs.reason) == ("running", "Queued") and "lab-gpus" in (obs.message or "")
    r, p = worldexplorer_plan(suspend=True)  # the user's suspend still reaches an admitted Kueue Job
    admitted = stage_job(p, "scaffold")
    admitted["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] = "lab-gpus"
    assert decide(p, r.spec, Observed(jobs=[admitted]), None, NOW).suspend == [(admitted["metadata"]["name"], True)]


def test_finished_stages_survive_their_jobs_in_status() -> None:
    r, p = worldexplorer_plan()
    d = decide(p, r.spec, Observed(jobs=[stage_job(p, "scaffold", "done")], progress={"scaffold": Progress(1, 0)}),
               None, NOW)
    status = resource_status(d, r.spec, None, 1, "2026-11-22T12:00:00Z", {}, {})
    d2 = decide(p, r.spec, Observed(jobs=[]), status, NOW)  # TTL removed the Job
    assert states(d2) == ["finished", "pending", "waiting"] and d2.start == ["expansion"]
    assert d2.observations[0].samples_succeeded == 1


def test_only_stages_skips_and_keeps_results() -> None:
    r, p = worldexplorer_plan(onlyStages=["gaussians"])
    d = decide(p, r.spec, Observed(), None, NOW)
    assert states(d) == ["skipped", "skipped", "pending"] and d.start == ["gaussians"]


def test_transitions_emit_events_once() -> None:
    r, p = worldexplorer_plan()
    d = decide(p, r.spec, Observed(jobs=[stage_job(p, "scaffold")]), None, NOW)
    first = resource_status(d, r.spec, None, 1, "2026-11-22T12:00:00Z", {}, {})
    events = transitions(ResourceStatus(), first)
    assert ("Normal", "StageRunning") in [(e.type, e.reason) for e in events]
    assert ("Normal", "Running") in [(e.type, e.reason) for e in events]
    again = resource_status(d, r.spec, first, 1, "2026-11-22T12:00:05Z", {}, {})
    assert transitions(first, again) == [] and again == first


def test_an_unreadable_shard_report_fails_its_shard_with_corrupt_report() -> None:
    r, p = worldexplorer_plan()
    progress = Progress(1, 0, ("shard 1: CorruptReport: Invalid JSON: expected value at line 1 column 1",))
    d = decide(p, r.spec, Observed(jobs=[stage_job(p, "scaffold", "done")], progress={"scaffold": progress}), None, NOW)
    scaffold = next(o for o in d.observations if o.name == "scaffold")
    assert scaffold.reason == "CorruptReport" and "shard 1: CorruptReport" in (scaffold.message or "")
    assert scaffold.shards_failed == 1 and scaffold.shards_succeeded == scaffold.shards_total - 1
    running = decide(p, r.spec, Observed(jobs=[stage_job(p, "scaffold")], progress={"scaffold": progress}), None, NOW)
    assert next(o for o in running.observations if o.name == "scaffold").reason is None  # judged when it ends


def running_pod(p: Plan, stage: str, seconds_ago: int) -> dict[str, Any]:
    at = datetime.fromtimestamp(NOW.timestamp() - seconds_ago, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"metadata": {"name": f"s-{stage}-pod", "labels": {"batch.kubernetes.io/job-completion-index": "0"}},
            "status": {"phase": "Running", "containerStatuses": [{"state": {"running": {"startedAt": at}}}]}}


def test_a_shard_past_its_progress_deadline_is_stopped_and_the_stage_says_why() -> None:
    r, p = worldexplorer_plan(progressDeadlineSeconds=600, stages={"scaffold": {"progressDeadlineSeconds": 60}})
    j = stage_job(p, "scaffold")
    observed = Observed(jobs=[j], pods={j["metadata"]["name"]: [running_pod(p, "scaffold", 90)]},
                        progress={"scaffold": Progress(0, 0, (), {0: NOW.timestamp() - 80})})
    d = decide(p, r.spec, observed, None, NOW)
    assert [(job_, pod) for job_, pod, _ in d.stop_pods] == [(j["metadata"]["name"], "s-scaffold-pod")]
    assert d.stall is not None and d.stall.reason == "NoProgress"
    assert "committed no sample for 80 s (progressDeadlineSeconds 60)" in d.stall.message
    assert next(o for o in d.observations if o.name == "scaffold").reason == "NoProgress"
    calm = decide(p, r.spec, Observed(jobs=[j], pods=observed.pods, progress={
        "scaffold": Progress(1, 0, (), {0: NOW.timestamp() - 20})}), None, NOW)
    assert not calm.stop_pods and calm.stall is None
    failed = stage_job(p, "scaffold", "failed")
    failed["metadata"]["annotations"]["genfab.dev/no-progress"] = d.stall.message
    end = decide(p, r.spec, Observed(jobs=[failed]), None, NOW)
    scaffold = next(o for o in end.observations if o.name == "scaffold")
    assert scaffold.reason == "NoProgress" and "last stopped: shard 0 of stage scaffold" in (scaffold.message or "")


def test_sample_notes_are_the_stage_message_unless_something_more_urgent_is() -> None:
    r, p = worldexplorer_plan()
    notes = ("s1: selected 0/10 extra frames: holes too small (max 0.030 < min 0.050)",)
    done = decide(p, r.spec, Observed(jobs=[stage_job(p, "scaffold", "done")],
                                      progress={"scaffold": Progress(1, 0, notes=notes)}), None, NOW)
    assert next(o for o in done.observations if o.name == "scaffold").message == notes[0]
    failed = decide(p, r.spec, Observed(jobs=[stage_job(p, "scaffold", "failed")],
                                        progress={"scaffold": Progress(0, 1, notes=notes)}), None, NOW)
    assert next(o for o in failed.observations if o.name == "scaffold").message.startswith("job ")


def test_a_failed_stage_says_what_its_shard_said_before_what_the_job_says() -> None:
    r, p = worldexplorer_plan()
    why = "shard 0: bad input: stage scaffold of pipeline worldexplorer needs a CUDA GPU (gsplat); none is visible here"
    failed = Observed(jobs=[stage_job(p, "scaffold", "failed")],
                      progress={"scaffold": Progress(0, 0, shard_errors=(why,))})
    scaffold = decide(p, r.spec, failed, None, NOW).observations[0]
    assert scaffold.message == f"{why} (job {stage_job(p, 'scaffold')['metadata']['name']}: FailedIndexes)"
    plain = decide(p, r.spec, Observed(jobs=[stage_job(p, "scaffold", "failed")]), None, NOW).observations[0]
    assert plain.message == f"job {stage_job(p, 'scaffold')['metadata']['name']}: FailedIndexes"  # no report: the Job's


def test_an_inventory_job_whose_pods_are_refused_stalls_the_resource_with_the_servers_words() -> None:
    """A stage with too many samples to list in a reconcile waits for its one-Pod inventory Job: a quota
    (or any admission) refusing that Pod left it "listing" forever, Stalled False."""
    r, p = worldexplorer_plan()
    listing = inventory(p, "scaffold", p.stage("scaffold").short_hash)
    name = listing["metadata"]["name"]
    refused = {name: 'Error creating: pods "x" is forbidden: exceeded quota: no-pods'}
    d = decide(p, r.spec, Observed(inventories=[listing], refused_pods=refused), None, NOW)
    assert d.start == ["scaffold"] and d.stall is not None and d.stall.reason == "PodsRefused"
    assert d.stall.message == f"inventory job {name}: the API server refuses its Pods: {refused[name]}"
    assert decide(p, r.spec, Observed(inventories=[listing]), None, NOW).stall is None
    assert decide(p, r.spec, Observed(refused_pods=refused), None, NOW).stall is None  # not its Job (any more)

"""Observed Jobs and Pods -> counts and stall reasons (table tests)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from genfab.operator.observe import (
    LostPod,
    job_stall,
    job_view,
    parse_indexes,
    pod_trouble,
    start_deadline_passed,
    stuck_pods,
    was_lost,
)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def pod(phase: str = "Running", index: int = 0, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": f"p{index}", "labels": {"batch.kubernetes.io/job-completion-index": str(index)}},
            "spec": {"nodeName": "gpu-1"}, "status": {"phase": phase, **status}}


def job(**status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "j", "annotations": {"genfab.dev/samples": "9"}},
            "spec": {"completions": 3, "suspend": status.pop("suspend", False)}, "status": status}


@pytest.mark.parametrize(("text", "indexes"), [("", set()), ("0", {0}), ("0-2,5", {0, 1, 2, 5}), ("1,3-4", {1, 3, 4})])
def test_parse_indexes(text: str, indexes: set[int]) -> None:
    assert parse_indexes(text) == indexes


@pytest.mark.parametrize(("p", "reason"), [
    (pod("Pending", containerStatuses=[{"state": {"waiting": {"reason": "ImagePullBackOff"}}}]), "ImagePullBackOff"),
    (pod("Pending", containerStatuses=[{"state": {"waiting": {"reason": "ErrImagePull"}}}]), "ImagePullBackOff"),
    (pod("Pending", conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                 "message": "0/3 nodes: Insufficient nvidia.com/gpu"}]), "Unschedulable"),
    (pod("Unknown"), "NodeLost"),
    (pod("Running", reason="NodeLost"), "NodeLost"),
    (pod("Running", conditions=[{"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager"}]),
     "NodeLost"),
    (pod("Running", conditions=[{"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}]),
     None),
    (pod("Pending", containerStatuses=[{"state": {"waiting": {"reason": "ContainerCreating"}}}]), None),
    (pod("Running"), None),
])
def test_pod_trouble(p: dict[str, Any], reason: str | None) -> None:
    found = pod_trouble(p)
    assert (found.reason if found else None) == reason


def test_job_view_counts() -> None:
    v = job_view(job(completedIndexes="0,2", failedIndexes="1", active=0, ready=0, succeeded=2, failed=4,
                     conditions=[{"type": "Failed", "status": "True", "reason": "FailedIndexes"}]))
    assert (v.succeeded_indexes, v.failed_indexes, v.samples, v.shards, v.finished) == (2, 1, 9, 3, True)


def test_stall_order_and_lost_pods() -> None:
    view = job_view(job(active=2, startTime="2026-11-22T11:00:00Z"))
    pull = pod("Pending", 1, containerStatuses=[{"state": {"waiting": {"reason": "ImagePullBackOff"}}}])
    lost = [LostPod("j", 0, "p0-old", "2026-11-22T11:59:00Z")]
    assert job_stall(view, [pull], lost).reason == "ImagePullBackOff"  # type: ignore[union-attr]
    assert job_stall(view, [pod("Running", 1)], lost).reason == "PodDeleted"  # type: ignore[union-attr]
    assert job_stall(view, [pod("Running", 0), pod("Running", 1)], lost) is None  # replacement runs
    deadline = job_view(job(conditions=[{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]))
    assert job_stall(deadline, [], []).reason == "DeadlineExceeded"  # type: ignore[union-attr]


@pytest.mark.parametrize(("status", "age", "expected"), [
    ({"active": 1}, 120, True),
    ({"active": 1}, 30, False),
    ({"active": 1, "ready": 1}, 120, False),
    ({"active": 1, "completedIndexes": "0"}, 120, False),
    ({"active": 0, "suspend": True}, 120, False),
])
def test_start_deadline(status: dict[str, Any], age: int, expected: bool) -> None:
    started = (NOW - timedelta(seconds=age)).strftime("%Y-%m-%dT%H:%M:%SZ")
    view = job_view(job(startTime=started, **status))
    assert start_deadline_passed(view, [pod("Pending")], NOW, 60) is expected
    assert not start_deadline_passed(view, [], NOW, 60, ran=True)  # its reports show shards ended: it ran


def test_which_deleted_pods_count_as_lost() -> None:
    assert was_lost(pod("Running"), job_suspended=False)
    assert not was_lost(pod("Running"), job_suspended=True)
    assert not was_lost(pod("Succeeded"), job_suspended=False)
    assert not was_lost(pod("Running", conditions=[{"type": "DisruptionTarget", "status": "True"}]), False)


def started(seconds_ago: int, index: int = 0, **meta: Any) -> dict[str, Any]:
    at = (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    p = pod("Running", index, containerStatuses=[{"name": "stage", "state": {"running": {"startedAt": at}}}])
    p["metadata"].update(meta)
    return p


AGO = NOW.timestamp()


@pytest.mark.parametrize(("pods", "last_sample", "job_status", "stuck"), [
    ([started(100)], {}, {}, [(0, 100)]),                           # no report: counted from the start
    ([started(100)], {0: AGO - 30}, {}, []),                         # a sample 30 s ago
    ([started(100)], {0: AGO - 70}, {}, [(0, 70)]),                  # last sample 70 s ago
    ([started(30)], {0: AGO - 500}, {}, []),                         # a report of an earlier attempt
    ([started(100), started(10, 1)], {}, {}, [(0, 100)]),            # only the hung index
    ([started(100, deletionTimestamp="x")], {}, {}, []),             # already being deleted
    ([pod("Pending", startTime="2026-11-22T11:00:00Z")], {}, {}, []),  # not running: the start deadline's case
    ([pod("Running", startTime="2026-11-22T11:58:00Z")], {}, {}, [(0, 120)]),  # no container status yet
    ([started(100)], {}, {"suspend": True}, []),
    ([started(100)], {}, {"conditions": [{"type": "Complete", "status": "True"}]}, []),
])
def test_stuck_pods(pods: list[dict[str, Any]], last_sample: dict[int, float], job_status: dict[str, Any],
                    stuck: list[tuple[int, int]]) -> None:
    found = stuck_pods(job_view(job(**job_status)), pods, last_sample, NOW, 60)
    assert [(s.index, round(s.idle)) for s in found] == stuck

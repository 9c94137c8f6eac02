"""What the operator's cache keeps of a Job or Pod (`cache.kept`) is everything the reconciles read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from genfab.operator.cache import SPEC_KEPT, Cache, kept
from genfab.operator.observe import (
    LostPod,
    group_survivors,
    job_stall,
    job_view,
    partially_scheduled,
    pod_index,
    pod_running,
    pod_started,
    pod_trouble,
    start_deadline_passed,
    stuck_pods,
    unresolved_lost,
    was_lost,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
LABELS = {"genfab.dev/kind": "SceneJob", "genfab.dev/resource": "demo", "job-name": "demo-gen-abc"}
MANAGED = [{"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {"f:status": {}}}]
CONTAINER = {"name": "stage", "image": "genfab/flux:1", "command": ["genfab-stage"], "args": ["--config", "/c"],
             "env": [{"name": f"E{i}", "value": "x" * 40} for i in range(30)],
             "resources": {"limits": {"nvidia.com/gpu": "1"}}, "volumeMounts": [{"name": "cfg", "mountPath": "/c"}]}


class Recording(dict[str, Any]):
    """A spec that notes which of its fields were read."""

    read: set[str]

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.read = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)


def job(**status: Any) -> dict[str, Any]:
    return {"kind": "Job", "metadata": {"name": "demo-gen-abc", "namespace": "t", "uid": "u1", "resourceVersion": "7",
                                        "labels": LABELS, "annotations": {"genfab.dev/samples": "9"},
                                        "managedFields": MANAGED},
            "spec": {"completions": 3, "parallelism": 3, "completionMode": "Indexed", "suspend": False,
                     "backoffLimitPerIndex": 2,
                     "template": {"metadata": {"labels": LABELS}, "spec": {"containers": [CONTAINER] * 2}}},
            "status": {"startTime": "2026-11-26T11:00:00Z", **status}}


def pod(phase: str, index: int, **status: Any) -> dict[str, Any]:
    return {"kind": "Pod", "metadata": {"name": f"p{index}", "namespace": "t", "labels": {
                **LABELS, "batch.kubernetes.io/job-completion-index": str(index)},
                "creationTimestamp": "2026-11-26T11:00:00Z", "managedFields": MANAGED},
            "spec": {"nodeName": "gpu-1", "containers": [CONTAINER], "volumes": [{"name": "cfg"}] * 5},
            "status": {"phase": phase, "startTime": "2026-11-26T11:00:01Z", **status}}


JOBS = [job(active=3, ready=2), job(conditions=[{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]),
        job(completedIndexes="0-1", failedIndexes="2", succeeded=2)]
PODS = [
    pod("Running", 0, containerStatuses=[{"state": {"running": {"startedAt": "2026-11-26T11:00:02Z"}}}]),
    pod("Pending", 1, containerStatuses=[{"state": {"waiting": {"reason": "ImagePullBackOff", "message": "no"}}}]),
    pod("Pending", 2, conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]),
    pod("Unknown", 3, reason="NodeLost"),
    pod("Failed", 4, containerStatuses=[{"state": {"terminated": {"finishedAt": "2026-11-26T11:30:00Z"}}}]),
]
LOST = [LostPod("demo-gen-abc", 5, "p5", "2026-11-26T11:40:00Z")]


def observations(jobs: list[dict[str, Any]], pods: list[dict[str, Any]]) -> list[Any]:
    """Every reading the reconciles make of a stage's Job and Pods."""
    out: list[Any] = []
    for j in jobs:
        view = job_view(j)
        out += [view, job_stall(view, pods, LOST), stuck_pods(view, pods, {}, NOW, 60),
                group_survivors(view, pods, LOST), partially_scheduled(view, pods),
                start_deadline_passed(view, pods, NOW, 60), unresolved_lost(LOST, pods, view)]
    for p in pods:
        out += [pod_index(p), pod_running(p), pod_started(p), pod_trouble(p), was_lost(p, False)]
    return out


def test_what_the_cache_keeps_reads_as_the_whole_object() -> None:
    assert observations([kept(j, "Job") for j in JOBS], [kept(p, "Pod") for p in PODS]) == observations(JOBS, PODS)


def test_the_reconciles_read_no_spec_field_the_cache_drops() -> None:
    jobs = [{**j, "spec": Recording(j["spec"])} for j in JOBS]
    pods = [{**p, "spec": Recording(p["spec"])} for p in PODS]
    observations(jobs, pods)
    assert set().union(*(j["spec"].read for j in jobs)) <= SPEC_KEPT["Job"]
    assert set().union(*(p["spec"].read for p in pods)) <= SPEC_KEPT["Pod"]


@pytest.mark.parametrize("kind", ["Job", "Pod", None])
def test_kept_drops_managed_fields_and_the_unread_spec_without_touching_the_object(kind: str | None) -> None:
    obj = {"Job": JOBS[0], "Pod": PODS[0], None: {"kind": "SceneJob", "metadata": {"name": "demo", "managedFields":
                                                                                  MANAGED}, "spec": {"steps": 4}}}[kind]
    before = repr(obj)
    slim = kept(obj, kind)
    assert repr(obj) == before
    assert "managedFields" not in slim["metadata"] and slim["status" if kind else "kind"] == obj["status" if kind
                                                                                                  else "kind"]
    assert slim["spec"] == ({k: v for k, v in obj["spec"].items() if k in SPEC_KEPT[kind]} if kind else obj["spec"])
    assert len(repr(slim)) < len(before) / (3 if kind else 1)


def test_the_cache_holds_the_kept_form_and_still_knows_versions() -> None:
    cache = Cache()
    key = cache.put_job(JOBS[0])
    assert key == ("SceneJob", "t", "demo")
    assert cache.jobs(key) == [kept(JOBS[0], "Job")]
    assert cache.put_job(dict(JOBS[0])) is None  # the same resourceVersion: the watch's echo
    assert cache.put_pod(PODS[0]) == key
    assert cache.pods("t", "demo-gen-abc") == [kept(PODS[0], "Pod")]


def _version(obj: dict[str, Any], rv: str, uid: str = "u1", **status: Any) -> dict[str, Any]:
    return {**obj, "metadata": {**obj["metadata"], "resourceVersion": rv, "uid": uid},
            "status": {**(obj.get("status") or {}), **status}}


@pytest.mark.parametrize(("cached_rv", "new_rv", "new_uid", "taken"), [
    ("12", "11", "u1", False),    # a lagging watch's earlier version: the cache keeps the later one
    ("12", "12", "u1", False),    # the echo of the operator's own write
    ("12", "13", "u1", True),     # a later version
    ("12", "9", "u2", True),      # another object of the name (deleted and made again)
    ("abc", "abb", "u1", True),   # versions that are not decimal integers are never compared
    ("12", "", "u1", True),
])
def test_a_resource_never_goes_back_to_an_earlier_version(cached_rv: str, new_rv: str, new_uid: str,
                                                           taken: bool) -> None:
    """The operator stores its status write's answer at once; a watch lagging behind its writes then
    delivers the versions before it. Taken back, the cache would hold a status without the children it
    just recorded (a stage's new Job), and the next reconcile would start that stage again, clearing the
    reports its Pods had written (a stage that then "succeeded" with 0 of its samples)."""
    body = {"apiVersion": "genfab.dev/v1alpha1", "kind": "SceneJob", "metadata": {"name": "s", "namespace": "t"}}
    cache, key = Cache(), ("SceneJob", "t", "s")
    cache.put_resource(key, _version(body, cached_rv, children=["new job"]))
    news = cache.put_resource(key, _version(body, new_rv, new_uid))
    assert news is (taken and new_rv != cached_rv)
    held = cache.resource(key)
    assert held is not None and held["metadata"]["resourceVersion"] == (new_rv if taken else cached_rv)
    job = _version(JOBS[0], cached_rv, active=1)
    assert cache.put_job(job) is not None
    cache.put_job(_version(JOBS[0], new_rv, new_uid, active=0))
    assert cache.jobs(("SceneJob", "t", "demo"))[0]["status"]["active"] == (0 if taken or new_rv == cached_rv else 1)

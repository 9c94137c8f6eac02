"""Distributed training in the operator, pure: a TuningRun's `train` stage becomes one Indexed Job
with one Pod per node and a headless Service; the group restarts whole when a member fails; a
partially scheduled group is named."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import kubernetes_validate
import pytest

from genfab.api import parse_resource
from genfab.operator.builders import build_group_policy, build_job, build_service, group_backoff_limit
from genfab.operator.objects import Owner, child_name
from genfab.operator.observe import STALL_ORDER, group_survivors, job_view, partially_scheduled
from genfab.planner import plan, stage_config
from tests.unit.shared import SETTINGS

OWNER = Owner("genfab.dev/v1alpha1", "TuningRun", "difix-lr", "lab", "uid-9")
INDEX = "batch.kubernetes.io/job-completion-index"


def tuning(**spec: Any) -> Any:
    return parse_resource({
        "apiVersion": "genfab.dev/v1alpha1", "kind": "TuningRun", "metadata": {"name": "difix-lr", "namespace": "lab"},
        "spec": {"trainer": "difix", "dataset": {"dataJsonUri": "s3://lab-out/exp/difix/data.json"}, "runName": "r1",
                 "output": "s3://lab-out/exp", "storage": {"endpoint": "http://minio:9000",
                                                            "secretRef": {"name": "s3-creds"}}, **spec}})


def test_a_two_node_run_is_one_indexed_job_with_a_headless_service() -> None:
    r = tuning(nodes=2, gpusPerNode=4, retries=3, parallelism=1, queueName="gpu-queue")
    p = plan(r)
    stage = p.stage("train")
    job = build_job(p, stage, stage_config(p, stage), r.spec, 2, 2, OWNER, SETTINGS)
    service = build_service(p, stage, OWNER)
    kubernetes_validate.validate(job, "1.35", strict=True)
    kubernetes_validate.validate(service, "1.35", strict=True)
    name = child_name("difix-lr", stage)
    spec = job["spec"]
    # every node at once, whatever spec.parallelism says; retries count per group restart
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (2, 2, group_backoff_limit(3, 2))
    assert "backoffLimitPerIndex" not in spec and spec["podFailurePolicy"]["rules"][0]["action"] == "FailJob"
    pod = spec["template"]["spec"]
    assert pod["subdomain"] == name == service["metadata"]["name"]
    assert spec["template"]["metadata"]["labels"]["genfab.dev/process-group"] == "uid-9"
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["GENFAB_NNODES"] == "2" and env["GENFAB_NPROC_PER_NODE"] == "4"
    assert env["GENFAB_RDZV_HOST"] == f"{name}-0.{name}" and env["GENFAB_RDZV_PORT"] == "29500"
    assert env["GENFAB_GROUP_ID"] == f"uid-9/train/{stage.short_hash}"
    assert "JOB_COMPLETION_INDEX" not in env  # Kubernetes sets the node rank per Pod
    assert pod["containers"][0]["resources"]["limits"]["amd.com/gpu"] == "4"
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"  # Kueue admits all or nothing
    s = service["spec"]
    assert s["clusterIP"] == "None" and s["publishNotReadyAddresses"] is True
    assert s["selector"].items() <= spec["template"]["metadata"]["labels"].items()
    assert service["metadata"]["ownerReferences"] == [OWNER.reference()]


@pytest.mark.parametrize("metrics_from", [(), ({"namespaceSelector": {"matchLabels": {"team": "obs"}}},)])
def test_a_process_group_admits_only_its_own_pods(metrics_from: tuple[dict[str, Any], ...]) -> None:
    """The group's NetworkPolicy selects exactly the Job's Pods (by resource UID, stage and config
    hash), admits those and metrics scrapes, and adds no egress rule (egress stays the chart's)."""
    r = tuning(nodes=2, gpusPerNode=4)
    p = plan(r)
    stage = p.stage("train")
    settings = dataclasses.replace(SETTINGS, stage_metrics_from=metrics_from)
    policy = build_group_policy(p, stage, OWNER, settings)
    kubernetes_validate.validate(policy, "1.35", strict=True)
    pod_labels = build_job(p, stage, stage_config(p, stage), r.spec, 2, 2, OWNER, settings)[
        "spec"]["template"]["metadata"]["labels"]
    spec = policy["spec"]
    selector = spec["podSelector"]["matchLabels"]
    assert selector.items() <= pod_labels.items() and selector["genfab.dev/process-group"] == OWNER.uid
    assert {"genfab.dev/stage", "genfab.dev/config-hash"} <= set(selector)  # an older config is another group
    assert spec["policyTypes"] == ["Ingress"]
    peers, metrics = spec["ingress"]
    assert peers == {"from": [{"podSelector": {"matchLabels": selector}}]}  # no namespaceSelector: this namespace
    assert metrics["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert metrics.get("from", []) == list(metrics_from)
    assert policy["metadata"]["name"] == child_name("difix-lr", stage)
    assert policy["metadata"]["ownerReferences"] == [OWNER.reference()]
    other = Owner("genfab.dev/v1alpha1", "TuningRun", "difix-lr", "lab", "uid-10")  # same name, recreated
    assert build_group_policy(p, stage, other, settings)["spec"]["podSelector"] != spec["podSelector"]


def test_retries_allow_that_many_group_restarts() -> None:
    # each restart fails every node once (the failed one, the others stopped)
    assert group_backoff_limit(0, 1) == 0 and group_backoff_limit(0, 2) == 1
    assert group_backoff_limit(3, 2) == 7  # 3 restarts = 6 failures tolerated, the 4th group failure ends it


def member(index: int, phase: str, created: str, ended: str | None = None, **meta: Any) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if ended:
        status["containerStatuses"] = [{"state": {"terminated": {"finishedAt": ended, "exitCode": 75}}}]
    if phase == "Pending":
        status["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                 "message": "0/8 nodes are available: 8 Insufficient nvidia.com/gpu."}]
    elif phase == "Running":
        status["conditions"] = [{"type": "PodScheduled", "status": "True"}]
    return {"metadata": {"name": f"tr-{index}-{created[-3:-1]}", "labels": {INDEX: str(index)},
                         "creationTimestamp": created, **meta}, "status": status}


GANG = job_view({"metadata": {"name": "tr", "annotations": {"genfab.dev/samples": "2"}},
                 "spec": {"completions": 2, "suspend": False}, "status": {"active": 1, "failed": 1}})


def test_a_failed_member_stops_the_rest_of_its_group() -> None:
    pods = [member(0, "Running", "2026-11-23T10:00:00Z"),
            member(1, "Failed", "2026-11-23T10:00:00Z", ended="2026-11-23T10:30:00Z")]
    stop, what = group_survivors(GANG, pods, [])
    assert [(s.pod, s.index) for s in stop] == [("tr-0-00", 0)] and "node 1" in what and "failed" in what
    # the replacements of the next attempt are left alone, and so is a Pod already being deleted
    later = [*pods, member(1, "Pending", "2026-11-23T10:31:00Z")]
    later[0]["metadata"]["deletionTimestamp"] = "2026-11-23T10:30:05Z"
    assert group_survivors(GANG, later, [])[0] == []
    assert group_survivors(GANG, [member(0, "Running", "2026-11-23T10:00:00Z"),
                                  member(1, "Running", "2026-11-23T10:00:00Z")], [])[0] == []


def test_a_group_with_some_nodes_unschedulable_is_named() -> None:
    pods = [member(0, "Running", "2026-11-23T10:00:00Z"), member(1, "Pending", "2026-11-23T10:00:00Z")]
    stall = partially_scheduled(GANG, pods)
    assert stall is not None and stall.reason == "PartiallyScheduled"
    assert "1 of 2 nodes" in stall.message and "Insufficient nvidia.com/gpu" in stall.message
    assert "spec.queueName" in stall.message
    assert STALL_ORDER.index("PartiallyScheduled") < STALL_ORDER.index("Unschedulable")
    assert partially_scheduled(GANG, [member(0, "Pending", "2026-11-23T10:00:00Z"),
                                      member(1, "Pending", "2026-11-23T10:00:00Z")]) is None  # nothing placed yet


def test_the_decision_stops_survivors_of_a_failed_member() -> None:
    from genfab.operator.decide import Observed, decide

    r = tuning(nodes=2)
    p = plan(r)
    stage = p.stage("train")
    name = child_name("difix-lr", stage)
    job = build_job(p, stage, stage_config(p, stage), r.spec, 2, 2, OWNER, SETTINGS)
    job["status"] = {"active": 1, "failed": 1, "startTime": "2026-11-23T10:00:00Z"}
    pods = [member(0, "Running", "2026-11-23T10:00:00Z"),
            member(1, "Failed", "2026-11-23T10:00:00Z", ended="2026-11-23T10:30:00Z")]
    d = decide(p, r.spec, Observed(jobs=[job], pods={name: pods}), None, datetime(2026, 11, 23, 10, 31, tzinfo=UTC))
    assert [(j, pod) for j, pod, _ in d.stop_pods] == [(name, "tr-0-00")]
    assert "restarts from its latest checkpoint" in d.stop_pods[0][2]


def test_a_lost_member_stops_the_rest_of_its_group_too() -> None:
    from genfab.operator.observe import LostPod

    pods = [member(0, "Running", "2026-11-23T10:00:00Z")]  # node 1's Pod was deleted (node drained, preempted)
    lost = [LostPod("tr", 1, "tr-1-00", "2026-11-23T10:20:00Z")]
    stop, what = group_survivors(GANG, pods, lost)
    assert [s.pod for s in stop] == ["tr-0-00"] and "tr-1-00 (node 1) was deleted" in what

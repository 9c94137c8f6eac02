"""The tier's node: Kubernetes' own scheduler binds a GPU Pod to the node agent's Node, the agent runs it,
and the real Job controller completes the Job; an eviction fails the Pod and the Job controller replaces
it (what genfab's Jobs would meet on a cluster, here with a plain 1.20 Job)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.realcluster.cluster import NODE, RealCluster
from tests.realcluster.conftest import tenant
from tests.realcluster.node import NodeAgent, Run

pytestmark = pytest.mark.realcluster


def gpu_job(ns: str, name: str) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": ns},
            "spec": {"completions": 1, "backoffLimit": 2, "template": {"spec": {
                "restartPolicy": "Never", "automountServiceAccountToken": False,
                "containers": [{"name": "stage", "image": "genfab-stage",
                                "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}}}


def pods_of(cluster: RealCluster, ns: str, job: str) -> list[dict[str, Any]]:
    return list(cluster.get(f"/api/v1/namespaces/{ns}/pods?labelSelector=job-name%3D{job}")["items"])


def test_a_gpu_pod_is_scheduled_on_the_agents_node_and_its_job_completes(cluster: RealCluster,
                                                                          agent: NodeAgent) -> None:
    ns = tenant(cluster, "node-run")
    assert cluster.apply(gpu_job(ns, "runs")).status_code == 201
    job = cluster.wait("the Job complete", lambda: any(
        c["type"] == "Complete" and c["status"] == "True" for c in (
            (cluster.get(f"/apis/batch/v1/namespaces/{ns}/jobs/runs") or {}).get("status", {}).get("conditions") or [])
    ) and cluster.get(f"/apis/batch/v1/namespaces/{ns}/jobs/runs"), timeout=60)
    assert job["status"]["succeeded"] == 1 and job["status"].get("startTime")
    (pod,) = pods_of(cluster, ns, "runs")
    assert pod["spec"]["nodeName"] == NODE and pod["status"]["phase"] == "Succeeded"
    assert not agent.errors, agent.errors


def test_an_evicted_pod_is_replaced_by_the_job_controller(cluster: RealCluster, agent: NodeAgent) -> None:
    ns = tenant(cluster, "node-evict")
    agent.script = lambda pod: Run(hold=True)
    try:
        assert cluster.apply(gpu_job(ns, "evicted")).status_code == 201
        first = cluster.wait("a running Pod", lambda: [p for p in pods_of(cluster, ns, "evicted")
                                                       if p["status"].get("phase") == "Running"], timeout=60)[0]
        agent.evict(ns, first["metadata"]["name"])
        replacement = cluster.wait("a replacement Pod", lambda: [
            p for p in pods_of(cluster, ns, "evicted") if p["metadata"]["name"] != first["metadata"]["name"]],
            timeout=60)[0]
        agent.release(replacement["metadata"]["name"])
    finally:
        agent.script = lambda pod: Run()
    evicted = cluster.get(f"/api/v1/namespaces/{ns}/pods/{first['metadata']['name']}") or {}
    assert (evicted["status"]["phase"], evicted["status"]["reason"]) == ("Failed", "Evicted")
    cluster.wait("the Job complete after its retry", lambda: (cluster.get(
        f"/apis/batch/v1/namespaces/{ns}/jobs/evicted") or {}).get("status", {}).get("succeeded") == 1, timeout=60)

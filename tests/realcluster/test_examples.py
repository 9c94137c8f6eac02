"""Every example a lab would apply, on the real control plane as far as Kubernetes 1.20 allows: each gets
a status within one reconcile that says in one line why it does not run here, and no Job is made."""

from __future__ import annotations

import re

import pytest

from tests.helpers import EXAMPLES, load_example
from tests.realcluster.conftest import Installed, tenant

pytestmark = pytest.mark.realcluster


@pytest.mark.parametrize("example", [p.name for p in EXAMPLES])
def test_each_example_is_told_why_it_cannot_run_here(installed: Installed, example: str) -> None:
    cluster = installed.cluster
    doc = load_example(example)
    ns = tenant(cluster, "ex-" + re.sub(r"[^a-z0-9-]", "-", example.removesuffix(".yaml"))[:40])
    doc["metadata"]["namespace"] = ns
    resp = cluster.apply(doc)
    assert resp.status_code == 201, resp.text
    plural = {"SceneJob": "scenejobs", "DatasetJob": "datasetjobs", "TuningRun": "tuningruns"}[doc["kind"]]
    path = f"/apis/genfab.dev/v1alpha1/namespaces/{ns}/{plural}/{doc['metadata']['name']}"
    status = cluster.wait(f"{example}'s status", lambda: ((cluster.get(path) or {}).get("status") or {}).get(
        "conditions") and cluster.get(path)["status"], timeout=30)
    blocking = [c for c in status["conditions"] if c["status"] == "True" and c["type"] in ("Stalled", "InvalidSpec")]
    blocking += [c for c in status["conditions"] if c["type"] == "Accepted" and c["status"] == "False"]
    print(f"\n{example}: {[(c['type'], c['reason'], c['message'][:160]) for c in blocking]}")
    assert blocking, status
    assert all(c["message"] and "\n" not in c["message"] for c in blocking)
    assert status.get("phase") not in ("Succeeded", "PartiallySucceeded")
    assert cluster.get(f"/apis/batch/v1/namespaces/{ns}/jobs")["items"] == []

"""What the real control plane does around a resource that the operator has stalled: its Event and
metrics, a restart of the operator (nothing written again), its namespace deleted under it (the
namespace controller and garbage collector remove it; the operator follows without an error), and a
watch that expires (410 Gone) while a resource is deleted."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.emulator.conftest import make_scenejob
from tests.realcluster.conftest import Installed, tenant

pytestmark = pytest.mark.realcluster


def stalled_scenejob(installed: Installed, tmp: Path, ns_name: str, name: str | None = None
                     ) -> tuple[dict[str, Any], str]:
    cluster = installed.cluster
    doc = make_scenejob(tmp, samples=1)
    doc["metadata"]["namespace"] = tenant(cluster, ns_name)
    doc["metadata"]["name"] = name or doc["metadata"]["name"]
    assert cluster.apply(doc).status_code == 201
    path = f"/apis/genfab.dev/v1alpha1/namespaces/{ns_name}/scenejobs/{doc['metadata']['name']}"
    cluster.wait("stalled", lambda: any(c["type"] == "Stalled" and c["status"] == "True" for c in (
        (cluster.get(path) or {}).get("status") or {}).get("conditions") or []), timeout=30)
    return doc, path


def operator_writes(installed: Installed, path: str) -> list[dict[str, Any]]:
    return [e for e in installed.cluster.audit() if e["user"]["username"] == installed.user
            and e["verb"] in ("patch", "update", "create") and e["requestURI"].split("?")[0].startswith(path)]


def test_the_stall_is_an_event_on_the_resource_and_the_metrics_count_it(installed: Installed,
                                                                         tmp_path: Path) -> None:
    doc, _ = stalled_scenejob(installed, tmp_path, "events")
    events = installed.cluster.wait("the Warning Event", lambda: [
        e for e in installed.cluster.get("/api/v1/namespaces/events/events")["items"]
        if e["involvedObject"]["name"] == doc["metadata"]["name"] and e["reason"] == "ClusterUnsupported"])
    assert events[0]["type"] == "Warning" and events[0]["involvedObject"]["kind"] == "SceneJob"
    assert events[0]["message"].startswith("this cluster's API server (Kubernetes v1.20.2) does not keep")
    metrics = installed.operator.metrics()
    assert 'genfab_reconcile_seconds_count{kind="SceneJob"}' in metrics
    # refused before its stages are looked at, it is still counted, and as stalled (an alert's series)
    stalled = re.search(r'^genfab_resources_stalled\{kind="SceneJob",reason="ClusterUnsupported"\} (\S+)$', metrics,
                        re.M)
    assert stalled is not None and float(stalled[1]) >= 1, metrics


def test_a_restarted_operator_writes_nothing_again_for_a_resource_whose_status_is_right(
        installed: Installed, tmp_path: Path) -> None:
    _, path = stalled_scenejob(installed, tmp_path, "restart")
    status_path = path + "/status"
    before = len(operator_writes(installed, status_path))
    installed.operator.kill()  # SIGKILL, as a node loss would
    installed.operator.start()
    installed.cluster.wait("the operator again", installed.operator.healthy, timeout=60)
    time.sleep(3)  # its first reconcile of every resource (progress and resync periods of the tests: 0.2 s, 2 s)
    assert len(operator_writes(installed, status_path)) == before


def test_a_namespace_deleted_under_a_resource_takes_it_and_the_operator_follows(installed: Installed,
                                                                               tmp_path: Path) -> None:
    _, path = stalled_scenejob(installed, tmp_path, "doomed")
    cluster = installed.cluster
    assert cluster.request("DELETE", "/api/v1/namespaces/doomed").status_code == 200
    cluster.wait("the namespace gone", lambda: cluster.get("/api/v1/namespaces/doomed") is None, timeout=60)
    assert cluster.get(path) is None
    time.sleep(1)
    log = installed.operator.logs()
    assert "Traceback" not in log and "reconcile failed" not in log


def scenejobs_counted(installed: Installed) -> float:
    """The SceneJobs the operator's metrics count (every phase)."""
    return sum(float(m[1]) for m in re.finditer(r'^genfab_resources\{kind="SceneJob",phase="[^"]*"\} (\S+)$',
                                                 installed.operator.metrics(), re.M))


def test_a_resource_deleted_while_the_watch_was_away_is_forgotten_after_410_gone(installed: Installed,
                                                                                   tmp_path: Path) -> None:
    """The operator stops (SIGSTOP) for longer than its watches' timeout: the API server ends them, a
    SceneJob is deleted, and etcd compacts its history (the tier's server: no watch cache, compaction every
    2 s). Resumed, kopf's watch from its last version gets the server's 410 Gone and lists again, which says
    nothing of the deleted one; the operator's own list (every GENFAB_RELIST_SECONDS) forgets it."""
    cluster, op = installed.cluster, installed.operator
    before = dict(op.env)
    op.stop()
    op.env.update(GENFAB_WATCH_SERVER_TIMEOUT="2", GENFAB_RELIST_SECONDS="2")
    op.start()
    try:
        cluster.wait("the operator again", op.healthy, timeout=60)
        stalled_scenejob(installed, tmp_path, "expiry", "kept")
        _, doomed = stalled_scenejob(installed, tmp_path, "expiry", "doomed")
        counted = cluster.wait("both counted", lambda: (n := scenejobs_counted(installed)) >= 2 and n, timeout=30)
        assert op.process is not None
        op.process.send_signal(signal.SIGSTOP)
        try:
            time.sleep(3)  # past the watches' 2 s: the server has ended them
            stopped = time.time()
            assert cluster.request("DELETE", doomed).status_code == 200
            time.sleep(7)  # past two compactions (2 s each, and a margin): the versions the watches stopped at are gone
        finally:
            op.process.send_signal(signal.SIGCONT)
        cluster.wait("the deleted SceneJob forgotten", lambda: scenejobs_counted(installed) == counted - 1,
                     timeout=30)
        assert "SceneJob expiry/doomed was deleted while the watch was away" in op.logs()
        cluster.wait("kopf's list after the 410", lambda: [
            e for e in cluster.audit() if e["user"]["username"] == installed.user and e["verb"] == "list"
            and "/scenejobs" in e["requestURI"] and e["userAgent"].startswith("kopf")
            and _epoch(e["requestReceivedTimestamp"]) > stopped], timeout=30)
        assert "Traceback" not in op.logs()
    finally:
        op.stop()
        op.env.clear()
        op.env.update(before)
        op.start()
        cluster.wait("the operator again", op.healthy, timeout=60)


def _epoch(stamp: str) -> float:
    from datetime import datetime
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()

"""HA as the chart installs it (`operator.ha.enabled`, two replicas): exactly one replica reconciles, a
killed leader is replaced within the Lease's duration plus a retry, and a cleanly stopped one gives the
Lease up at once. (Before: kopf peering with equal priorities paused both replicas, and a new SceneJob
waited until one was stopped.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from genfab.operator.leader import LeaseTiming
from tests.emulator.conftest import make_scenejob
from tests.emulator.harness import OperatorProcess
from tests.realcluster.conftest import (
    LAB_VALUES,
    RELEASE_NAMESPACE,
    Installed,
    chart_objects,
    install,
    start_operator,
    tenant,
)

pytestmark = pytest.mark.realcluster
LEASE = "genfab-operator"
FAILOVER_SECONDS = LeaseTiming().duration + LeaseTiming().retry + 3.0
"""The bound on a killed leader's replacement reconciling: the Lease's duration, a retry period, and 3 s
for the new leader's first reconcile."""


@pytest.fixture()
def alone(installed: Installed) -> Iterator[Installed]:
    """The tier's own (non-HA) operator stopped for this test, started again after it."""
    installed.operator.stop()
    try:
        yield installed
    finally:
        installed.operator.start()
        installed.cluster.wait("the tier's operator again", installed.operator.healthy, timeout=60)


def lease(installed: Installed) -> dict[str, Any]:
    return installed.cluster.get(f"/apis/coordination.k8s.io/v1/namespaces/{RELEASE_NAMESPACE}/leases/{LEASE}") or {}


def reconciles(op: OperatorProcess) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in op.metrics().splitlines()
               if line.startswith("genfab_reconcile_seconds_count{"))


def stalled_by_then(installed: Installed, doc: dict[str, Any], timeout: float) -> float:
    """Seconds until the resource has a status (on 1.20: Stalled, ClusterUnsupported): a reconcile ran."""
    started = time.monotonic()
    path = f"/apis/genfab.dev/v1alpha1/namespaces/{doc['metadata']['namespace']}/scenejobs/{doc['metadata']['name']}"
    installed.cluster.wait(f"{doc['metadata']['name']} reconciled", lambda: (
        installed.cluster.get(path) or {}).get("status", {}).get("conditions"), timeout=timeout)
    return time.monotonic() - started


def scenejob(installed: Installed, tmp: Path, name: str) -> dict[str, Any]:
    folder = tmp / name
    folder.mkdir()
    doc = make_scenejob(folder, samples=1)
    doc["metadata"]["namespace"] = tenant(installed.cluster, name)
    assert installed.cluster.apply(doc).status_code == 201
    return doc


def test_one_replica_reconciles_and_a_killed_leader_is_replaced_within_the_lease(
        alone: Installed, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    installed = alone
    values = {**LAB_VALUES, "operator": {"ha": {"enabled": True, "leaseName": LEASE}, "replicas": 2}}
    install(installed.cluster, chart_objects(values, tmp_path))  # the tier's ClusterRole, the Lease's Role
    replicas = {name: start_operator(installed.cluster, tmp_path_factory.mktemp(name), "genfab",
                                     "--leader-election", LEASE, POD_NAME=name)
                for name in ("genfab-a", "genfab-b")}
    try:
        for op in replicas.values():
            installed.cluster.wait("replica liveness", op.healthy, timeout=60)
        leader = installed.cluster.wait("a leader", lambda: lease(installed).get("spec", {}).get("holderIdentity"),
                                        timeout=30)
        follower = next(n for n in replicas if n != leader)
        stalled_by_then(installed, scenejob(installed, tmp_path, "ha-first"), timeout=15)
        assert reconciles(replicas[leader]) > 0 and reconciles(replicas[follower]) == 0  # one active replica
        replicas[leader].kill()  # SIGKILL: no chance to give the Lease up
        killed = time.monotonic()
        doc = scenejob(installed, tmp_path, "ha-after")
        stalled_by_then(installed, doc, timeout=FAILOVER_SECONDS + 10)
        failover = time.monotonic() - killed
        print(f"\nfailover after SIGKILL of the leader: {failover:.1f} s (bound {FAILOVER_SECONDS:.0f} s)")
        assert failover < FAILOVER_SECONDS, failover
        spec = lease(installed)["spec"]
        assert spec["holderIdentity"] == follower and spec["leaseTransitions"] >= 1
        assert reconciles(replicas[follower]) > 0
        replicas[follower].stop()  # SIGTERM: gives the Lease up for the next replica
        assert lease(installed)["spec"]["holderIdentity"] == ""
    finally:
        for op in replicas.values():
            op.stop()

"""Real-cluster tier: genfab installed as the chart renders it on a real control plane (kube-apiserver,
kube-controller-manager and kube-scheduler 1.20, built by scripts/real_cluster.sh), the operator running
as the chart's ServiceAccount, a node agent of the tests' own in place of a kubelet.

Kubernetes 1.20 is the newest core server that can be built here; it has no Indexed Jobs, per-index
backoff, pod replacement policy, Pod Security admission or CEL (those are covered by the CRD server tier,
tests/realserver, and the emulator). A machine without the binaries skips the tier with one line; CI builds
them and sets GENFAB_REQUIRE_REAL_CLUSTER=1, so there a missing binary is an error, not a skip.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.emulator.harness import OperatorProcess
from tests.helpers import ROOT, helm_binary
from tests.realcluster.cluster import RealCluster, available, running
from tests.realcluster.node import NodeAgent

pytestmark = pytest.mark.realcluster
NOT_BUILT = ("the real control plane is not built here (scripts/real_cluster.sh builds kube-apiserver, "
             "kube-controller-manager and kube-scheduler 1.20 from Debian's sources: root, about 6 minutes)")
RELEASE_NAMESPACE = "genfab-system"
CHART = ROOT / "charts" / "genfab"
INSTALLED_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
                   "CustomResourceDefinition")
"""What the tier takes from the chart's render: the operator's identity and its rights, and the CRDs."""


LAB_VALUES: dict[str, Any] = {"storage": {"endpoints": ["http://minio.minio.svc:9000"],
                                          "filePrefixes": [tempfile.gettempdir(), str(ROOT / "examples")]},
                               "rbac": {"secretNames": ["genfab-s3", "lab-s3"]}}
"""A lab's install: the examples' object store and its Secrets allowed, the tests' folders as the shared disk."""


def render(values: dict[str, Any], tmp: Path) -> list[dict[str, Any]]:
    """`helm template` of the chart (CRDs included) with `values`."""
    import subprocess
    path = tmp / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    out = subprocess.run([str(helm_binary()), "template", "genfab", str(CHART), "--namespace", RELEASE_NAMESPACE,
                          "--include-crds", "-f", str(path)], capture_output=True, text=True, check=True)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def chart_objects(values: dict[str, Any], tmp: Path) -> list[dict[str, Any]]:
    """The objects of `INSTALLED_KINDS` the chart renders with `values`."""
    return [d for d in render(values, tmp) if d.get("kind") in INSTALLED_KINDS]


def chart_env(values: dict[str, Any], tmp: Path) -> dict[str, str]:
    """The settings the chart's Deployment gives the operator (its plain `value` variables)."""
    deployment = next(d for d in render(values, tmp) if d["kind"] == "Deployment")
    env = deployment["spec"]["template"]["spec"]["containers"][0].get("env") or []
    return {e["name"]: str(e["value"]) for e in env if "value" in e}


@dataclass
class Installed:
    cluster: RealCluster
    agent: NodeAgent
    operator: OperatorProcess
    user: str
    """The operator's user name in the audit log (its ServiceAccount)."""


@pytest.fixture(scope="package")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCluster]:
    if not available():
        if os.environ.get("GENFAB_REQUIRE_REAL_CLUSTER") == "1":
            pytest.fail(NOT_BUILT + "; GENFAB_REQUIRE_REAL_CLUSTER=1 requires it")
        pytest.skip(NOT_BUILT)
    with running(tmp_path_factory.mktemp("cluster")) as c:
        yield c


@pytest.fixture(scope="package")
def agent(cluster: RealCluster) -> Iterator[NodeAgent]:
    a = NodeAgent(cluster).start()
    yield a
    a.stop()


def install(cluster: RealCluster, objects: list[dict[str, Any]]) -> None:
    """Apply the chart's objects as an admin would (`kubectl apply`), CRDs first, and wait until served."""
    cluster.namespace(RELEASE_NAMESPACE)
    for obj in sorted(objects, key=lambda o: o["kind"] != "CustomResourceDefinition"):
        resp = cluster.apply(obj)
        assert resp.status_code in (200, 201), f"{obj['kind']} {obj['metadata']['name']}: {resp.text[:500]}"
    for crd in (o for o in objects if o["kind"] == "CustomResourceDefinition"):
        group, plural = crd["spec"]["group"], crd["spec"]["names"]["plural"]
        version = crd["spec"]["versions"][0]["name"]
        cluster.wait(f"{plural} served", lambda g=group, p=plural, v=version: cluster.request(
            "GET", f"/apis/{g}/{v}/{p}").status_code == 200, timeout=60)


def start_operator(cluster: RealCluster, workdir: Path, service_account: str = "genfab", *args: str,
                   **env: str) -> OperatorProcess:
    """The operator as the chart's ServiceAccount (its token, not an admin's certificate)."""
    token = cluster.service_account_token(RELEASE_NAMESPACE, service_account)
    assert token is not None
    kubeconfig = cluster.kubeconfig(workdir / "operator.kubeconfig", token=token)
    op = OperatorProcess(None, workdir, KUBECONFIG=str(kubeconfig), POD_NAMESPACE=RELEASE_NAMESPACE, **env)
    return op.start(*args)


@pytest.fixture(scope="package")
def installed(cluster: RealCluster, agent: NodeAgent, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[Installed]:
    """The chart installed with `LAB_VALUES`, and the operator running as its ServiceAccount with the
    settings its Deployment gives it."""
    install(cluster, chart_objects(LAB_VALUES, tmp_path_factory.mktemp("chart")))
    workdir = tmp_path_factory.mktemp("operator")
    op = start_operator(cluster, workdir, "genfab", **chart_env(LAB_VALUES, tmp_path_factory.mktemp("env")))
    try:
        cluster.wait("operator liveness", op.healthy, timeout=60)
        yield Installed(cluster, agent, op, f"system:serviceaccount:{RELEASE_NAMESPACE}:genfab")
    finally:
        op.stop()


def tenant(cluster: RealCluster, name: str) -> str:
    """A tenant namespace with the stage ServiceAccount the chart's cluster-wide mode expects there."""
    cluster.namespace(name)
    cluster.apply({"apiVersion": "v1", "kind": "ServiceAccount",
                   "metadata": {"name": "genfab-stage", "namespace": name}, "automountServiceAccountToken": False})
    return name

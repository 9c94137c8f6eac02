"""The Helm chart's RBAC is enough for what the real operator does (the emulator logs every request)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.emulator.conftest import make_scenejob
from tests.emulator.harness import Emulator, OperatorProcess
from tests.emulator.kubelet import Behaviour
from tests.helpers import ROOT, helm_binary

pytestmark = pytest.mark.emulator


def chart_grants(*args: str) -> set[tuple[str, str, str]]:
    out = subprocess.run([str(helm_binary()), "template", "genfab", str(ROOT / "charts" / "genfab"), *args],
                         capture_output=True, text=True, check=True).stdout
    grants: set[tuple[str, str, str]] = set()
    for doc in yaml.safe_load_all(out):
        if doc and doc["kind"] in ("ClusterRole", "Role"):
            for rule in doc["rules"]:
                grants |= {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    return grants


@pytest.fixture(scope="module")
def alone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """An emulator and a default operator of this test's own: the shared emulator's request log also
    holds what other tests' operators asked (one started with `-n` lists and watches namespaces),
    which is not the chart's default operator's doing."""
    emu = Emulator().start()
    op = OperatorProcess(emu, tmp_path_factory.mktemp("rbac-operator")).start()
    try:
        emu.wait("operator liveness", op.healthy, timeout=60, interval=0.2)
        yield emu
    finally:
        op.stop()
        emu.stop()


def run_everything(emu: Emulator, tmp_path: Path) -> None:
    """Create, progress, suspend/resume, change the spec (Jobs deleted and recreated), delete."""
    emu.kubelet.script = lambda stage, index, attempt: Behaviour(seconds=0.05)
    doc: dict[str, Any] = make_scenejob(tmp_path, samples=2, suspend=True)
    kind, name, ns = doc["kind"], doc["metadata"]["name"], doc["metadata"]["namespace"]
    emu.apply(doc)
    emu.wait("suspended", lambda: emu.status(kind, name, ns).get("phase") == "Suspended")
    emu.apply({**doc, "spec": {**doc["spec"], "suspend": False}})
    emu.wait("succeeded", lambda: emu.status(kind, name, ns).get("phase") == "Succeeded")
    emu.apply({**doc, "spec": {**doc["spec"], "suspend": False, "gaussians": {"steps": 7000}}})
    emu.wait("re-run", lambda: (st := emu.status(kind, name, ns)).get("observedGeneration") == 3
             and st.get("phase") == "Succeeded")
    emu.delete("scenejobs", name, ns)


def test_the_charts_rbac_covers_every_request_the_operator_makes(alone: Emulator, tmp_path: Path) -> None:
    emu = alone
    run_everything(emu, tmp_path)
    used = set(emu.call(lambda: set(emu.cluster.access)))
    # The operator really did the things RBAC has to allow (so this test cannot pass vacuously).
    assert {("batch", "jobs", "create"), ("batch", "jobs", "delete"), ("batch", "jobs", "patch"),
            ("", "configmaps", "create"), ("genfab.dev", "scenejobs/status", "patch"),
            ("genfab.dev", "scenejobs", "watch"), ("", "pods", "watch"), ("", "events", "create"),
            ("genfab.dev", "scenejobs/finalizers", "update")} <= used  # blockOwnerDeletion, checked on create
    missing = used - chart_grants()
    assert not missing, f"the operator made requests the chart's ClusterRole does not allow: {sorted(missing)}"
    namespaced = chart_grants("--set", "operator.watchNamespaces={lab-a}")
    assert not {u for u in used if u[1] != "namespaces"} - namespaced

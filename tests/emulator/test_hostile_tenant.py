"""A hostile tenant against the real operator with the chart's default policy: what a resource must
not obtain (a host path, a control-plane node, a system priority, a wildcard toleration, genfab's
reserved env) ends as InvalidSpec naming the field, and no Job or ConfigMap is created."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.emulator.conftest import make_scenejob
from tests.emulator.harness import Emulator, OperatorProcess
from tests.emulator.test_scenarios import condition, wait_phase

pytestmark = pytest.mark.emulator

ATTEMPTS = [
    ("host path", {"models": {"hubCache": "/var/lib/kubelet/pods"}}, "spec.models.hubCache",
     "host paths are disabled"),
    ("control-plane node", {"resources": {"nodeSelector": {"node-role.kubernetes.io/control-plane": ""}}},
     "spec.resources.nodeSelector", "'node-role.kubernetes.io/control-plane' not allowed"),
    ("system priority", {"stages": {"gaussians": {"priorityClassName": "system-node-critical"}}},
     "spec.stages.gaussians.priorityClassName", "priority class not allowed"),
    ("wildcard toleration", {"resources": {"tolerations": [{"operator": "Exists"}]}},
     "spec.resources.tolerations[0]", "toleration not allowed"),
    ("ambient credentials", {"output": "s3://lab-out/team-a/x"}, "spec.storage", "never reads a resource's storage"),
    ("unnamed secret", {"output": "s3://lab-out/team-a/x", "storage": {"secretRef": {"name": "team-b-s3"}}},
     "spec.storage.secretRef.name", "Secret 'team-b-s3' is not one the operator may read"),
    ("reserved env", {"customStages": [{"name": "scaffold", "image": "evil:1", "command": ["sh"],
                                        "env": [{"name": "AWS_SECRET_ACCESS_KEY", "value": "x"}]}]},
     "spec.customStages[0].env[0].name", "reserved by genfab"),
]


@pytest.mark.parametrize(("what", "spec", "path", "message"), ATTEMPTS, ids=[a[0] for a in ATTEMPTS])
def test_refused_with_the_field_and_nothing_created(emu: Emulator, tmp_path: Path, what: str, spec: dict[str, Any],
                                                     path: str, message: str) -> None:
    doc = make_scenejob(tmp_path, **spec)
    ns = doc["metadata"]["namespace"]
    emu.apply(doc)
    st = wait_phase(emu, doc, "Failed")
    invalid = condition(st, "InvalidSpec")
    assert invalid["status"] == "True" and path in invalid["message"] and message in invalid["message"], invalid
    assert not emu.objects("jobs", ns, f"genfab.dev/resource={doc['metadata']['name']}")
    assert not emu.objects("configmaps", ns, f"genfab.dev/resource={doc['metadata']['name']}")


@pytest.fixture(scope="module")
def bound(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Emulator, Path]]:
    """An emulator and an operator whose chart binds each namespace to `file://{root}/{namespace}/`."""
    root = tmp_path_factory.mktemp("tenants")
    emu = Emulator().start()
    op = OperatorProcess(emu, tmp_path_factory.mktemp("bound-operator"),
                         GENFAB_STORAGE_PREFIXES=json.dumps({"*": [f"file://{root}/{{namespace}}/"]})).start()
    try:
        emu.wait("operator liveness", op.healthy, timeout=60, interval=0.2)
        yield emu, root
    finally:
        op.stop()
        emu.stop()


def scenejob(root: Path, namespace: str, name: str, output_ns: str) -> dict[str, Any]:
    inputs = root / namespace / "in"
    inputs.mkdir(parents=True, exist_ok=True)
    (inputs / "img_00.png").write_bytes(b"png")
    return {"apiVersion": "genfab.dev/v1alpha1", "kind": "SceneJob", "metadata": {"name": name, "namespace": namespace},
            "spec": {"pipeline": "worldexplorer", "input": {"datasetUri": f"file://{inputs}", "samples": [
                {"index": 0, "photorealistic": {"path": "img_00.png"}}]}, "output": f"file://{root}/{output_ns}/out"}}


def test_an_output_under_another_namespace_is_refused_and_left_untouched(bound: tuple[Emulator, Path]) -> None:
    emu, root = bound
    (root / "team-b" / "out").mkdir(parents=True)
    (root / "team-b" / "out" / "keep.txt").write_text("team-b's data")
    hostile = scenejob(root, "team-a", "steal", "team-b")
    own = scenejob(root, "team-a", "mine", "team-a")
    emu.apply(hostile)
    emu.apply(own)
    st = wait_phase(emu, hostile, "Failed")
    invalid = condition(st, "InvalidSpec")
    assert "spec.output" in invalid["message"] and "outside this namespace's storage" in invalid["message"]
    assert not emu.objects("jobs", "team-a", "genfab.dev/resource=steal")
    assert [p.name for p in (root / "team-b" / "out").iterdir()] == ["keep.txt"]  # nothing written there
    # The same tenant inside its own prefix is planned and runs.
    emu.wait("own resource's first Job", lambda: emu.objects("jobs", "team-a", "genfab.dev/resource=mine"), 30)

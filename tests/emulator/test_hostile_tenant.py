"""A hostile tenant against the real operator with the chart's default policy: what a resource must
not obtain (a host path, a control-plane node, a system priority, a wildcard toleration, genfab's
reserved env) ends as InvalidSpec naming the field, and no Job or ConfigMap is created."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.emulator.conftest import make_scenejob
from tests.emulator.harness import STAGE_ACCOUNT, STAGE_NETWORK_POLICY, Emulator
from tests.emulator.reading import condition, wait_phase
from tests.emulator.resources import tenant_scenejob as scenejob

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


def test_an_unprepared_namespace_gets_no_job_until_an_admin_prepares_it(bound: tuple[Emulator, Path]) -> None:
    """Cluster-wide mode: a namespace the chart did not prepare lacks the stage ServiceAccount and
    NetworkPolicy. The resource is Stalled naming both, nothing is created; once they exist it runs."""
    emu, root = bound
    doc = scenejob(root, "team-c", "early", "team-c")
    emu.apply(doc, prepare=False)
    stalled = emu.wait("NamespaceNotReady", lambda: next(
        (c for c in emu.status("SceneJob", "early", "team-c").get("conditions", [])
         if c["type"] == "Stalled" and c["status"] == "True"), None), 30)
    assert stalled["reason"] == "NamespaceNotReady"
    for text in (f"ServiceAccount {STAGE_ACCOUNT!r}", f"NetworkPolicy {STAGE_NETWORK_POLICY!r}", "team-c"):
        assert text in stalled["message"], stalled
    assert emu.status("SceneJob", "early", "team-c")["phase"] == "Pending"
    assert not emu.objects("jobs", "team-c") and not emu.objects("configmaps", "team-c")
    emu.prepare_namespace("team-c")  # what `stages.tenantNamespaces: [team-c]` renders
    emu.wait("first Job once the namespace is prepared", lambda: emu.objects("jobs", "team-c"), 30)
    emu.wait("Stalled cleared", lambda: condition(emu.status("SceneJob", "early", "team-c"), "Stalled")["status"]
             == "False", 30)


def test_a_missing_storage_secret_is_named(bound: tuple[Emulator, Path]) -> None:
    """The namespace's default Secret (or the resource's secretRef) must exist: the condition names it
    and the operator never falls back to its own credentials."""
    emu, root = bound
    doc = scenejob(root, "team-d", "nosecret", "team-d")
    doc["spec"].update(output="s3://lab-out/team-d/run", storage={"secretRef": {"name": "lab-s3"}})
    emu.apply(doc)
    stalled = emu.wait("NamespaceNotReady", lambda: next(
        (c for c in emu.status("SceneJob", "nosecret", "team-d").get("conditions", [])
         if c["type"] == "Stalled" and c["status"] == "True"), None), 30)
    assert "Secret 'lab-s3'" in stalled["message"] and "spec.storage.secretRef" in stalled["message"], stalled
    assert "ServiceAccount" not in stalled["message"]  # only what is really missing
    assert not emu.objects("jobs", "team-d") and not emu.objects("configmaps", "team-d")


def test_custom_stages_get_no_credentials_when_the_chart_says_so(bound: tuple[Emulator, Path]) -> None:
    emu, root = bound
    doc = scenejob(root, "team-a", "custom", "team-a")
    doc["spec"].update(output="s3://lab-out/team-a/run", storage={"secretRef": {"name": "lab-s3"}},
                       customStages=[{"name": "package", "image": "lab/tool:1", "after": ["gaussians"]}])
    emu.apply(doc)
    invalid = condition(wait_phase(emu, doc, "Failed"), "InvalidSpec")
    assert "spec.customStages[0]" in invalid["message"] and "stages.customStageCredentials" in invalid["message"]
    assert not emu.objects("jobs", "team-a", "genfab.dev/resource=custom")


def test_a_config_too_large_for_a_configmap_is_invalid_spec(emu: Emulator, tmp_path: Path) -> None:
    """A resource the API server accepts (under 1.5 MiB) whose stage config would not fit a ConfigMap
    (1 MiB) is refused before any Job: a 422 from the API server would otherwise repeat forever."""
    doc = make_scenejob(tmp_path)
    doc["spec"]["input"]["samples"] = [{"index": i, "photorealistic": {"path": f"{i:05d}/{'p' * 850}.png"}}
                                       for i in range(1200)]  # 1.04 MB: the scaffold config carries them
    emu.apply(doc)
    invalid = condition(wait_phase(emu, doc, "Failed"), "InvalidSpec")
    assert "stage scaffold" in invalid["message"] and "over the 1024 KiB a ConfigMap holds" in invalid["message"]
    assert not emu.objects("configmaps", doc["metadata"]["namespace"])


def test_a_web_url_input_is_invalid_spec(emu: Emulator, tmp_path: Path) -> None:
    doc = make_scenejob(tmp_path)
    doc["spec"]["input"] = {"datasetUri": "https://example.org/photos/", "samples": doc["spec"]["input"]["samples"]}
    emu.apply(doc)
    invalid = condition(wait_phase(emu, doc, "Failed"), "InvalidSpec")
    assert "spec.input.datasetUri" in invalid["message"] and "s3://... or file://" in invalid["message"], invalid
    assert not emu.objects("jobs", doc["metadata"]["namespace"])

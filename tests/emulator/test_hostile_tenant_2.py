"""A hostile tenant, second round (issue: one tenant must not stop the operator, borrow its
credentials, or hand storage keys to its own image). Each scenario is refused or contained with one
line naming the field, no Job is created for it, and other tenants' resources keep running."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.emulator.conftest import OWN_METHODS, make_scenejob
from tests.emulator.harness import Emulator
from tests.emulator.kubelet import Behaviour
from tests.emulator.reading import condition, jobs, wait_phase
from tests.emulator.resources import tenant_scenejob as scenejob
from tests.emulator.resources import tuning_run

pytestmark = pytest.mark.emulator
LEVELS = 980
"""About where kopf's own JSON decoding of the watch stream gave up (RecursionError: the operator
exited, on every restart); from about 600 levels its deep copy of the body looped forever."""


@pytest.fixture
def deep_python() -> Iterator[None]:
    """This test process builds and stores the body; the operator (a subprocess) keeps Python's limits."""
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(20000)
    yield
    sys.setrecursionlimit(before)


def nested(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {"leaf": 1}
    for _ in range(levels - 1):
        node = {"a": node}
    return node


def refused(emu: Emulator, doc: dict[str, Any], path: str, message: str) -> dict[str, Any]:
    invalid = condition(wait_phase(emu, doc, "Failed", timeout=60), "InvalidSpec")
    assert invalid["status"] == "True" and path in invalid["message"] and message in invalid["message"], invalid
    ns, name = doc["metadata"]["namespace"], doc["metadata"]["name"]
    assert not emu.objects("jobs", ns, f"genfab.dev/resource={name}")
    assert not emu.objects("configmaps", ns, f"genfab.dev/resource={name}")
    return invalid


def test_a_body_nested_a_thousand_levels_is_invalid_and_the_operator_serves_everyone_else(
        emu: Emulator, tmp_path: Path, deep_python: None) -> None:
    (tmp_path / "a").mkdir()
    hostile = make_scenejob(tmp_path / "a", customStages=[
        {"name": "extra", "image": "lab/tool:1", "command": ["true"], "config": nested(LEVELS)}])
    emu.apply(hostile)
    refused(emu, hostile, "spec.customStages[0].config", "levels deep")
    (tmp_path / "b").mkdir()
    other = make_scenejob(tmp_path / "b", samples=1,
                          worldexplorer=OWN_METHODS)
    emu.apply(other)  # another tenant: planned and started, the operator alive
    emu.wait("the other tenant's first Job", lambda: emu.objects(
        "jobs", other["metadata"]["namespace"], f"genfab.dev/resource={other['metadata']['name']}"), 60)


def test_an_s3_input_needs_the_resources_secret_even_with_a_local_output(emu: Emulator, tmp_path: Path) -> None:
    """The operator would list `s3://team-b-private/...` signed with its own credentials."""
    doc = make_scenejob(tmp_path, input={"image": "s3://team-b-private/in/x.png"})
    emu.apply(doc)
    invalid = refused(emu, doc, "spec.storage", "never reads a resource's storage with its own credentials")
    assert "s3://" not in invalid["message"] or "spec.input.image" in invalid["message"]


@pytest.mark.parametrize(("override", "path"), [
    ({"images": {"scene": "attacker.example/x:1"}}, "spec.images.scene"),
    ({"stages": {"expansion": {"image": "attacker.example/x:1"}}}, "spec.stages.expansion.image"),
])
def test_an_image_override_gets_no_storage_keys_when_custom_stages_get_none(
        bound: tuple[Emulator, Path], override: dict[str, Any], path: str) -> None:
    emu, root = bound
    doc = scenejob(root, "team-a", f"img-{path.rsplit('.', 2)[-2]}", "team-a")
    doc["spec"].update(output="s3://lab-out/team-a/run", storage={"secretRef": {"name": "lab-s3"}},
                       worldexplorer=OWN_METHODS, **override)
    emu.apply(doc)
    refused(emu, doc, path, "stages.customStageCredentials")


def test_the_operator_is_no_proxy_to_an_internal_address(emu: Emulator, tmp_path: Path) -> None:
    """`storage.endpoint` would make the operator GET (manifests), list and PUT there."""
    doc = make_scenejob(tmp_path, input={"manifest": "s3://meta/latest/meta-data/iam/metadata.json"},
                        storage={"endpoint": "http://169.254.169.254", "secretRef": {"name": "genfab-s3"}})
    emu.apply(doc)
    refused(emu, doc, "spec.storage.endpoint", "not an object store this cluster allows")


def test_the_operators_own_disk_is_not_a_tenants_input(emu: Emulator, tmp_path: Path) -> None:
    doc = make_scenejob(tmp_path, input={"manifest": "file:///etc/genfab/metadata.json"})
    emu.apply(doc)
    refused(emu, doc, "spec.input.manifest", "file:// is this cluster's local disk")


def test_a_process_group_admits_only_its_own_pods(emu: Emulator, tmp_path: Path) -> None:
    """(6) The torch rendezvous has no authentication: each process group gets its own NetworkPolicy,
    created before its Job, that admits only Pods carrying its resource's UID, stage and config hash
    (no other namespace's Pod, nor a Pod of this namespace labelled `process-group: "true"`), and goes
    with the Job when its config changes."""
    emu.kubelet.script = lambda stage_name, index, attempt: Behaviour(hold=True)
    doc = tuning_run(tmp_path)
    ns, name = doc["metadata"]["namespace"], doc["metadata"]["name"]
    emu.apply(doc)
    job = emu.wait("the train Job", lambda: next(iter(jobs(emu, doc)), None))
    policy = next(p for p in emu.objects("networkpolicies", ns) if p["metadata"]["name"] == job["metadata"]["name"])
    assert int(policy["metadata"]["resourceVersion"]) < int(job["metadata"]["resourceVersion"])  # never open
    uid = emu.get("TuningRun", name, ns)["metadata"]["uid"]
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector["genfab.dev/process-group"] == uid and policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["ingress"][0] == {"from": [{"podSelector": {"matchLabels": selector}}]}
    pods = emu.wait("both nodes", lambda: found if len(found := emu.objects("pods", ns)) == 2 else None)
    assert all(selector.items() <= p["metadata"]["labels"].items() for p in pods)
    emu.patch("TuningRun", name, {"spec": {"hyperparameters": {"maxSteps": 5}}}, ns)  # a new config: a new group
    emu.wait("the old group's policy gone", lambda: all(
        p["metadata"]["name"] != job["metadata"]["name"] for p in emu.objects("networkpolicies", ns)), timeout=30)
    fresh = emu.wait("the new group's policy", lambda: next(
        iter(emu.objects("networkpolicies", ns, "genfab.dev/stage=train")), None))
    assert fresh["spec"]["podSelector"]["matchLabels"]["genfab.dev/config-hash"] != selector["genfab.dev/config-hash"]
    emu.kubelet.release("train")
    wait_phase(emu, doc, "Succeeded", timeout=60)

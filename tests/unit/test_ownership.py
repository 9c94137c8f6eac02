"""Which objects the operator may touch: only those whose UID it recorded, or, in the window before
a status write, one that is in every field what it would make (genfab.operator.ownership)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from genfab.operator.ownership import child_refs, contains, made_like, recorded

UID = "resource-uid"
OWNER = {"apiVersion": "genfab.dev/v1alpha1", "kind": "TuningRun", "name": "t", "uid": UID, "controller": True}
LABELS = {"app.kubernetes.io/managed-by": "genfab", "genfab.dev/resource": "t", "genfab.dev/stage": "train"}


def job(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Job", "metadata": {"name": "t-train-0123456789", "labels": dict(LABELS), "ownerReferences": [OWNER]},
        "spec": {"completionMode": "Indexed", "completions": 2, "template": {"spec": {
            "serviceAccountName": "genfab-stage",
            "containers": [{"name": "stage", "image": "genfab/diffusion:1", "command": ["genfab-stage"],
                            "env": [{"name": "GENFAB_STAGE", "value": "train"}]}]}}}}
    for path, value in changes.items():
        node = body
        *parents, last = path.split(".")
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[last] = value
    return body


def served(body: dict[str, Any]) -> dict[str, Any]:
    """What an API server returns: defaults added, the same content."""
    out = copy.deepcopy(body)
    out["metadata"].update(uid="job-uid", resourceVersion="7", creationTimestamp="2026-11-24T00:00:00Z")
    pod = out["spec"]["template"]["spec"]
    pod.update(restartPolicy="Never", dnsPolicy="ClusterFirst")
    pod["containers"][0].update(terminationMessagePath="/dev/termination-log", imagePullPolicy="IfNotPresent")
    out["spec"]["backoffLimit"] = 6
    return out


@pytest.mark.parametrize(("existing", "why"), [
    (served(job()), ""),  # what the operator made before a restart, defaults added by the server
    (served(job(**{"metadata.labels": {"app.kubernetes.io/managed-by": "genfab"}})), "it lacks genfab's labels"),
    (served(job(**{"metadata.ownerReferences": [{**OWNER, "controller": False}]})),
     "the resource is not its controller"),
    (served(job(**{"metadata.ownerReferences": [{**OWNER, "uid": "another"}]})), "the resource is not its controller"),
    (served(job(**{"spec.template.spec.containers.0.image": "attacker/x:1"})), "its content is not what genfab makes"),
    (served(job(**{"spec.template.spec.serviceAccountName": "default"})), "its content is not what genfab makes"),
    (served(job(**{"spec.template.spec.containers.0.env": []})), "its content is not what genfab makes"),
])
def test_an_unrecorded_job_is_adopted_only_when_it_is_what_genfab_makes(existing: dict[str, Any], why: str) -> None:
    assert made_like(existing, job(), UID) == why


def test_a_job_made_before_jobs_carried_their_shard_bucket_is_still_genfabs() -> None:
    """The bucket label is the owner's UID hashed (the owner reference is checked on its own): a Job an
    older operator made without it is adopted; with a wrong one it is not genfab's label set."""
    built = job(**{"metadata.labels": {**LABELS, "genfab.dev/shard-bucket": "3f"}})
    assert made_like(served(job()), built, UID) == ""
    assert made_like(served(job(**{"metadata.labels": {"genfab.dev/shard-bucket": "3f"}})), built, UID) == (
        "it lacks genfab's labels")


def test_a_network_policy_put_there_first_is_not_adopted() -> None:
    """L1: an allow-all NetworkPolicy under a process group's predictable name, with genfab's labels and
    the resource as controller, is still not genfab's: its rules differ."""
    ours = {"kind": "NetworkPolicy", "metadata": {"labels": LABELS, "ownerReferences": [OWNER]},
            "spec": {"podSelector": {"matchLabels": {"genfab.dev/process-group": UID}}, "policyTypes": ["Ingress"],
                     "ingress": [{"from": [{"podSelector": {"matchLabels": {"genfab.dev/process-group": UID}}}]}]}}
    allow_all = copy.deepcopy(ours)
    allow_all["spec"]["ingress"] = [{}]
    assert made_like(allow_all, ours, UID) == "its content is not what genfab makes"
    assert made_like(copy.deepcopy(ours), ours, UID) == ""


@pytest.mark.parametrize(("actual", "wanted", "expected"), [
    ({"a": 1, "b": 2}, {"a": 1}, True),
    ({"a": 1}, {"a": 1, "b": 2}, False),
    ([{"a": 1, "x": 0}], [{"a": 1}], True),
    ([{"a": 1}, {"a": 2}], [{"a": 1}], False),  # a list holds exactly the items asked for
    ("1", 1, False),
    ({"a": [1, 2]}, {"a": [1, 2]}, True),
])
def test_contains(actual: Any, wanted: Any, expected: bool) -> None:
    assert contains(actual, wanted) is expected


def test_recorded_children_round_trip_and_malformed_entries_are_ignored() -> None:
    owned = {("Job", "t-train-0123456789"): "u1", ("ConfigMap", "t-train-0123456789"): "u2"}
    refs = child_refs(owned)
    assert refs is not None
    status = {"children": [r.to_yaml_dict() for r in refs] + [{"kind": "Job", "name": 3}, "x", {"kind": "Job"}]}
    assert recorded(status) == owned
    assert child_refs({}) is None and recorded(None) == {}

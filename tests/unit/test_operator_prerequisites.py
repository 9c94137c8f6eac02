"""What a namespace must provide before stage Jobs run there, and the status when it does not."""

from __future__ import annotations

from typing import Any

import pytest

from genfab.api import parse_resource
from genfab.api.common import SecretRef, Storage
from genfab.api.status import ResourceStatus
from genfab.operator.decide import stalled_status
from genfab.operator.prerequisites import REASON, not_ready_message, prerequisites

DEFAULT = Storage(secret_ref=SecretRef(name="lab-s3"))


def spec(**fields: Any) -> Any:
    return parse_resource({
        "apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob", "metadata": {"name": "d", "namespace": "team-a"},
        "spec": {"type": "relighting", "output": "s3://lab-out/team-a/d",
                 "relighting": {"input": {"uri": "s3://lab-in/x"}}, **fields}}).spec


@pytest.mark.parametrize(("fields", "default", "network_policy", "expected"), [
    ({}, None, None, [("ServiceAccount", "genfab-stage")]),  # ambient credentials: no Secret to check
    ({}, DEFAULT, None, [("ServiceAccount", "genfab-stage"), ("Secret", "lab-s3")]),  # the namespace's default
    ({"storage": {"secretRef": {"name": "team-a-s3"}}}, DEFAULT, None,
     [("ServiceAccount", "genfab-stage"), ("Secret", "team-a-s3")]),  # the resource's own wins
    ({"storage": {"endpoint": "http://minio:9000"}}, DEFAULT, None, [("ServiceAccount", "genfab-stage")]),
    ({"output": "file:///data/out", "relighting": {"input": {"uri": "file:///data/in"}}}, DEFAULT, "genfab-stages",
     [("ServiceAccount", "genfab-stage"), ("NetworkPolicy", "genfab-stages")]),  # nothing in S3: no Secret
    # Any s3:// URI needs it, not only the output (L5: s3:// models with a file:// output left the status
    # empty and the log full of NotFound tracebacks).
    ({"output": "file:///data/out"}, DEFAULT, "genfab-stages",
     [("ServiceAccount", "genfab-stage"), ("Secret", "lab-s3"), ("NetworkPolicy", "genfab-stages")]),
    ({"output": "file:///data/out", "relighting": {"input": {"uri": "file:///data/in"}},
      "models": {"uri": "s3://lab-models/"}}, DEFAULT, None,
     [("ServiceAccount", "genfab-stage"), ("Secret", "lab-s3")]),
])
def test_prerequisites(fields: dict[str, Any], default: Storage | None, network_policy: str | None,
                       expected: list[tuple[str, str]]) -> None:
    s = spec(**fields)
    storage = s.storage if s.storage is not None else default
    found = prerequisites(s, storage, "genfab-stage", network_policy)
    assert [(p.kind, p.name) for p in found] == expected
    where = {p.kind: p.why for p in found}.get("Secret", "")
    assert ("spec.storage.secretRef" in where) == ("storage" in fields and "secretRef" in fields["storage"])


def test_the_message_names_every_missing_object_and_the_way_out() -> None:
    needed = prerequisites(spec(), DEFAULT, "genfab-stage", "genfab-stages")
    message = not_ready_message("team-c", needed)
    for text in ("namespace team-c", "ServiceAccount 'genfab-stage'", "Secret 'lab-s3'",
                 "NetworkPolicy 'genfab-stages'", "No Job was created", "stages.tenantNamespaces"):
        assert text in message


def test_not_ready_is_stalled_pending_and_keeps_earlier_results() -> None:
    fresh = stalled_status(None, REASON, "missing", 1, "2026-11-22T10:00:00Z")
    stalled = next(c for c in fresh.conditions if c.type == "Stalled")
    assert fresh.phase == "Pending" and fresh.observed_generation == 1
    assert (stalled.status, stalled.reason, stalled.message) == ("True", REASON, "missing")
    assert next(c for c in fresh.conditions if c.type == "InvalidSpec").status == "False"
    running = ResourceStatus.model_validate({"phase": "Running", "stages": [
        {"name": "segment", "phase": "Running", "configHash": "a" * 64}]})
    later = stalled_status(running, REASON, "missing", 2, "2026-11-22T10:05:00Z")
    assert later.phase == "Running" and [s.name for s in later.stages] == ["segment"]
    again = stalled_status(later, REASON, "still missing", 2, "2026-11-22T10:06:00Z")
    assert next(c for c in again.conditions if c.type == "Stalled").last_transition_time == "2026-11-22T10:05:00Z"

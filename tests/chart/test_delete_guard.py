"""The chart's delete guard: a ValidatingAdmissionPolicy that lets the operator's ServiceAccount delete
only genfab-labelled Jobs, ConfigMaps, Services, NetworkPolicies and Pods (RBAC cannot narrow `delete`
to the objects one created). Its CEL is evaluated here with cel-python on the objects of the hostile
tenant scenario (the admin's stage NetworkPolicy, a CA ConfigMap, a Service) and on genfab's own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import celpy
import pytest

from genfab.operator.objects import LABEL_MANAGED
from tests.chart.conftest import render

VAP = "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy"


def _eval(expression: str, **activation: Any) -> bool:
    env = celpy.Environment()
    program = env.program(env.compile(expression))
    return bool(program.evaluate({k: celpy.json_to_cel(v) for k, v in activation.items()}))


@pytest.fixture(scope="module")
def policy(helm: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    docs = render(helm, {}, tmp_path_factory.mktemp("guard"), "--api-versions", VAP)
    found = [d for d in docs if d["kind"] in ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")]
    assert [d["kind"] for d in found] == ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]
    assert found[1]["spec"] == {"policyName": found[0]["metadata"]["name"], "validationActions": ["Deny"]}
    return found[0]


def test_only_the_operators_deletes_are_matched(policy: dict[str, Any]) -> None:
    rules = policy["spec"]["matchConstraints"]["resourceRules"]
    assert {op for r in rules for op in r["operations"]} == {"DELETE"}
    assert {res for r in rules for res in r["resources"]} == {"jobs", "configmaps", "services", "networkpolicies",
                                                              "pods"}
    condition = policy["spec"]["matchConditions"][0]["expression"]
    operator = {"userInfo": {"username": "system:serviceaccount:genfab-system:genfab"}}
    tenant = {"userInfo": {"username": "alice@example.org"}}
    assert _eval(condition, request=operator) and not _eval(condition, request=tenant)


@pytest.mark.parametrize(("labels", "allowed"), [
    ({LABEL_MANAGED: "genfab", "genfab.dev/stage": "train"}, True),  # a stage Job, ConfigMap, Pod of genfab's
    ({LABEL_MANAGED: "Helm", "app.kubernetes.io/name": "genfab"}, False),  # the chart's stage NetworkPolicy
    ({"team": "platform"}, False),  # an admin's CA ConfigMap or Service
    (None, False),  # no labels at all
])
def test_the_operator_deletes_only_genfab_labelled_objects(policy: dict[str, Any], labels: dict[str, str] | None,
                                                           allowed: bool) -> None:
    meta: dict[str, Any] = {"name": "x", "namespace": "team-a"}
    if labels is not None:
        meta["labels"] = labels
    expression = policy["spec"]["validations"][0]["expression"]
    assert _eval(expression, oldObject={"metadata": meta}) is allowed


def test_not_rendered_where_the_api_server_lacks_the_api(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """`helm template` without the capability (and clusters before 1.30): no object the server would refuse."""
    assert not [d for docs in rendered.values() for d in docs if d["kind"].startswith("ValidatingAdmissionPolicy")]

"""The Helm chart, rendered by the real helm binary over four value sets and checked object by object."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from genfab.api.families import FAMILIES
from genfab.api.resources import KINDS
from genfab.operator.access import (
    GROUP_POLICY_ACCESS,
    LEADER_ACCESS,
    OBSERVE_ACCESS,
    OPERATOR_ACCESS,
    STAGE_POLICY_ACCESS,
)
from genfab.operator.builders import build_job
from genfab.operator.objects import Owner
from genfab.operator.policy import ClusterPolicy
from genfab.planner import plan, stage_config
from tests.chart.conftest import CHART, ROOT, VALUE_SETS, render, run_helm

MONITORING_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
# What the operator does with each resource (README "Least privilege"); nothing else is granted.
OPERATOR_RULES = {k: set(v) for k, v in OPERATOR_ACCESS.items()}
STAGE_NETWORK_POLICY_RULE = {k: set(v) for k, v in STAGE_POLICY_ACCESS.items()}
GROUP_POLICY_RULE = {k: set(v) for k, v in GROUP_POLICY_ACCESS.items()}
OBSERVE_RULES = {k: set(v) for k, v in OBSERVE_ACCESS.items()}


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def grants(rules: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


def test_helm_lint_strict_on_every_value_set(helm: Path, tmp_path: Path) -> None:
    for name, values in VALUE_SETS.items():
        out = run_helm(helm, "lint", "--strict", str(CHART), values=values, tmp=tmp_path)
        assert out.returncode == 0, f"{name}: {out.stdout}{out.stderr}"


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_every_object_is_valid_kubernetes(rendered: dict[str, list[dict[str, Any]]], name: str) -> None:
    docs = rendered[name]
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "ServiceAccount", "CustomResourceDefinition", "ConfigMap", "Service"} <= kinds
    for doc in docs:
        if doc["kind"] in MONITORING_KINDS:
            continue  # not core Kubernetes: checked by the tests below
        kubernetes_validate.validate(doc, "1.35", strict=True)
    names = [(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs]
    assert len(names) == len(set(names)), "two objects with the same kind/namespace/name"


def test_everything_on_renders_every_optional_object(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["everything"]
    kinds = {d["kind"] for d in docs}
    assert MONITORING_KINDS | {"NetworkPolicy", "Secret", "Role", "RoleBinding"} <= kinds
    assert not (MONITORING_KINDS | {"NetworkPolicy", "Secret", "Role"}) & {d["kind"] for d in rendered["defaults"]}
    for with_ha in (docs, rendered["ha"]):  # the leader election's Role, in the release namespace only
        assert [(r["metadata"]["namespace"], r["metadata"]["name"]) for r in of_kind(with_ha, "Role")
                if "leases" in r["rules"][0]["resources"]] == [("genfab-system", "genfab-leader-election")]
    secrets = of_kind(docs, "Secret")
    assert {s["metadata"]["namespace"] for s in secrets} == {"lab-a", "lab-b"}
    assert set(secrets[0]["stringData"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    monitor = of_kind(docs, "PodMonitor")[0]["spec"]
    assert monitor["namespaceSelector"] == {"matchNames": ["lab-a", "lab-b"]}
    assert "genfab.dev/stage" in monitor["podTargetLabels"]
    assert of_kind(docs, "ServiceMonitor")[0]["metadata"]["labels"]["release"] == "prom"
    dashboard = of_kind(docs, "ConfigMap")[0]
    assert dashboard["metadata"]["namespace"] == "monitoring" and dashboard["metadata"]["labels"]["grafana_dashboard"]
    json.loads(dashboard["data"]["genfab.json"])


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_rbac_is_least_privilege_without_wildcards(rendered: dict[str, list[dict[str, Any]]], name: str) -> None:
    docs = rendered[name]
    values = VALUE_SETS[name]
    namespaced = bool(values.get("operator", {}).get("watchNamespaces"))
    ha = bool(values.get("operator", {}).get("ha", {}).get("enabled"))
    for role in of_kind(docs, "ClusterRole") + of_kind(docs, "Role"):
        for rule in role["rules"]:
            for key in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(key, []), f"{role['metadata']['name']}: wildcard in {key}"
    cluster = grants([r for role in of_kind(docs, "ClusterRole") for r in role["rules"]])
    secret_names = sorted({*values.get("rbac", {}).get("secretNames", []),
                           *([values["storage"]["secret"]["name"]] if values.get("storage", {}).get("secret") else [])})
    operator_rules = {k: v for k, v in OPERATOR_RULES.items() if k != ("", "secrets") or secret_names}
    if values.get("networkPolicy", {}).get("processGroups", True):
        operator_rules |= GROUP_POLICY_RULE
    elif values.get("networkPolicy", {}).get("enabled"):
        operator_rules |= STAGE_NETWORK_POLICY_RULE
    leases = grants([r for role in of_kind(docs, "Role") if role["metadata"]["name"].endswith("-leader-election")
                     for r in role["rules"]])
    assert leases == ({k: set(v) for k, v in LEADER_ACCESS.items()} if ha else {})
    if namespaced:
        assert cluster == OBSERVE_RULES  # nothing namespaced is granted cluster-wide
        roles = [r for r in of_kind(docs, "Role") if not r["metadata"]["name"].endswith("-leader-election")]
        assert {r["metadata"]["namespace"] for r in roles} == set(values["operator"]["watchNamespaces"])
        for role in roles:
            assert grants(role["rules"]) == operator_rules
    else:
        assert cluster == {**operator_rules, **OBSERVE_RULES}
    for role in of_kind(docs, "ClusterRole") + of_kind(docs, "Role"):
        for rule in role["rules"]:
            if "secrets" in rule["resources"]:  # by name only, and only the Secrets the chart names
                assert rule["verbs"] == ["get"]
                assert sorted(rule["resourceNames"]) == secret_names
            if rule["resources"] == ["serviceaccounts"] or (rule["resources"] == ["networkpolicies"]
                                                            and "create" not in rule["verbs"]):  # by name
                assert rule["verbs"] == ["get"] and rule["resourceNames"] in (["genfab-stage"], ["genfab-stages"])
            if rule["resources"] == ["leases"] and "update" in rule["verbs"]:  # its own Lease only
                assert rule["resourceNames"] == [values["operator"]["ha"].get("leaseName", "genfab-operator")]


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_stage_account_is_minimal(rendered: dict[str, list[dict[str, Any]]], name: str) -> None:
    docs = rendered[name]
    stage_accounts = [sa for sa in of_kind(docs, "ServiceAccount") if sa["metadata"]["name"] == "genfab-stage"]
    assert stage_accounts and all(sa["automountServiceAccountToken"] is False for sa in stage_accounts)
    bound = {s["name"] for b in of_kind(docs, "RoleBinding") + of_kind(docs, "ClusterRoleBinding")
             for s in b["subjects"]}
    assert bound == {"genfab"}, "only the operator's account is bound to a role"


def _containers_secure(pod: dict[str, Any], where: str) -> None:
    pod_sc = pod.get("securityContext", {})
    for c in pod["containers"] + pod.get("initContainers", []):
        sc = {**pod_sc, **c.get("securityContext", {})}
        assert sc.get("runAsNonRoot") is True, where
        assert sc.get("runAsUser", 0) != 0, where
        assert sc.get("allowPrivilegeEscalation") is False, where
        assert sc.get("capabilities", {}).get("drop") == ["ALL"] and not sc["capabilities"].get("add"), where
        assert sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        assert sc.get("readOnlyRootFilesystem") is True, where
        assert not sc.get("privileged"), where


def _operator_env(docs: list[dict[str, Any]]) -> dict[str, str]:
    container = of_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def _stage_job(docs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, stage: str = "segment"
               ) -> dict[str, Any]:
    """The Job the operator, configured by this rendering's env, builds for a relighting stage."""
    from genfab.operator.settings import OperatorSettings

    for key, value in _operator_env(docs).items():
        monkeypatch.setenv(key, value)
    settings = OperatorSettings()
    doc = yaml.safe_load((ROOT / "examples" / "datasetjob-relighting.yaml").read_text())
    # A stage on a GPU: the example's segment lists only `classical` and asks for none.
    doc["spec"]["relighting"]["segmentation"]["backends"] = ["sam3", "sam2", "classical"]
    resource = KINDS["DatasetJob"].model_validate(doc)
    p = plan(resource)
    s = p.stage(stage)
    owner = Owner("genfab.dev/v1alpha1", "DatasetJob", "relight", "lab-a", "uid-1")
    return build_job(p, s, stage_config(p, s), resource.spec, 2, 8, owner, settings)


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_every_container_runs_restricted(rendered: dict[str, list[dict[str, Any]]], name: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    deployment = of_kind(rendered[name], "Deployment")[0]
    _containers_secure(deployment["spec"]["template"]["spec"], f"{name}: operator")
    job = _stage_job(rendered[name], monkeypatch)
    pod = job["spec"]["template"]["spec"]
    _containers_secure(pod, f"{name}: stage Pod")
    # Bounded node disk: an ephemeral-storage request and limit, and the same size limit on /tmp.
    (container,) = pod["containers"]
    disk = container["resources"]["limits"]["ephemeral-storage"]
    assert container["resources"]["requests"]["ephemeral-storage"] == disk == "50Gi"
    assert all(v["emptyDir"].get("sizeLimit") == disk for v in pod["volumes"] if "emptyDir" in v)


def test_chart_values_reach_the_operator_and_its_stage_pods(rendered: dict[str, list[dict[str, Any]]],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    docs = rendered["everything"]
    job = _stage_job(docs, monkeypatch)
    kubernetes_validate.validate(job, "1.35", strict=True)
    pod = job["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["image"] == "registry.lab.example/ml/genfab-segment@sha256:" + "e" * 64  # digest wins over the tag
    assert c["resources"]["limits"]["nvidia.com/mig-3g.40gb"] == "1"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "lab-gpus"
    env = {e["name"]: e for e in c["env"]}
    assert env["GENFAB_S3_ENDPOINT"]["value"] == "http://minio.storage:9000"
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "lab-s3"
    assert pod["serviceAccountName"] == "genfab-stage"
    scene = _operator_env(docs)["GENFAB_IMAGE_SCENE"]
    assert scene == "registry.lab.example/ml/genfab-scene@sha256:" + "a" * 64
    defaults = _stage_job(rendered["defaults"], monkeypatch, "albedo")
    assert defaults["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/genfab/genfab-cv:0.1.0"


@pytest.mark.parametrize(("name", "expected"), [
    ("defaults", ClusterPolicy()),
    ("everything", ClusterPolicy(
        host_path_prefixes=("/var/cache/huggingface",),
        tolerations=({"key": "lab/spot", "operator": "Equal", "value": "yes"},),
        node_selector_keys=("nvidia.com/gpu.product",), priority_classes=("lab-batch",),
        gpu_tolerations=({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},),
        gpu_node_selector_keys=("nvidia.com/gpu.product",), secret_names=("lab-s3",), default_secret="lab-s3",
        storage_endpoints=("http://minio.storage:9000",))),
])
def test_the_chart_sets_the_cluster_policy(rendered: dict[str, list[dict[str, Any]]], name: str,
                                           expected: ClusterPolicy, monkeypatch: pytest.MonkeyPatch) -> None:
    """What resources may ask of the cluster comes from the chart; by default only its GPU placement."""
    from genfab.operator.settings import OperatorSettings

    for key, value in _operator_env(rendered[name]).items():
        monkeypatch.setenv(key, value)
    assert OperatorSettings().policy == expected


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_operator_deployment_arguments_parse(rendered: dict[str, list[dict[str, Any]]], name: str) -> None:
    from genfab.operator.main import operator

    values = VALUE_SETS[name].get("operator", {})
    shards = values.get("shards", 1)
    deployments = of_kind(rendered[name], "Deployment")
    assert len(deployments) == shards
    for i, deployment in enumerate(deployments):
        _check_operator_deployment(rendered[name], deployment, values, operator,
                                   f"{i}/{shards}" if shards > 1 else None)
    names = {d["metadata"]["name"] for d in deployments}
    assert names == ({f"genfab-shard-{i}" for i in range(shards)} if shards > 1 else {"genfab"})
    selectors = [tuple(sorted(d["spec"]["selector"]["matchLabels"].items())) for d in deployments]
    assert len(set(selectors)) == shards  # no shard's ReplicaSet adopts another's Pods


def _check_operator_deployment(docs: list[dict[str, Any]], deployment: dict[str, Any], values: dict[str, Any],
                               operator: Any, shard: str | None) -> None:
    spec = deployment["spec"]
    container = spec["template"]["spec"]["containers"][0]
    ctx = operator.make_context("operator", list(container["args"]))
    assert ctx.params["shard"] == shard
    assert ctx.params["namespaces"] == tuple(values.get("watchNamespaces", ()))
    assert ctx.params["lease"] == (values["ha"].get("leaseName", "genfab-operator") if values.get("ha") else None)
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in container["env"]}
    assert (env["POD_NAMESPACE"], env["POD_NAME"]) == ("metadata.namespace", "metadata.name")
    assert spec["replicas"] == values.get("replicas", 1)
    assert spec["strategy"]["type"] == ("RollingUpdate" if values.get("ha") else "Recreate")
    probe = container["livenessProbe"]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ctx.params["liveness"] == f"http://0.0.0.0:{ports[probe['port']]}{probe['path']}"
    assert ctx.params["metrics_port"] == ports["metrics"]
    service = of_kind(docs, "Service")[0]  # every shard's metrics
    assert service["spec"]["selector"].items() <= spec["template"]["metadata"]["labels"].items()


def test_crds_in_the_chart_equal_the_generated_ones(rendered: dict[str, list[dict[str, Any]]]) -> None:
    generated = {yaml.safe_load(p.read_text())["metadata"]["name"]: yaml.safe_load(p.read_text())
                 for p in sorted((ROOT / "crds").glob("*.yaml"))}
    in_chart = {d["metadata"]["name"]: d for d in of_kind(rendered["defaults"], "CustomResourceDefinition")}
    assert {n: in_chart[n] for n in generated} == generated
    assert set(in_chart) == set(generated)
    for path in (ROOT / "crds").glob("*.yaml"):
        assert (CHART / "crds" / path.name).read_bytes() == path.read_bytes()


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_every_namespace_with_stage_pods_is_prepared(rendered: dict[str, list[dict[str, Any]]], name: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The stage ServiceAccount, NetworkPolicy and created Secret exist in every namespace the chart
    prepares (watched ones, else the release's plus stages.tenantNamespaces), and the operator is told
    what to check for in any other namespace before it creates a Job there."""
    from genfab.operator.settings import OperatorSettings

    docs, values = rendered[name], VALUE_SETS[name]
    prepared = set(values.get("operator", {}).get("watchNamespaces", [])) or {
        "genfab-system", *values.get("stages", {}).get("tenantNamespaces", [])}
    netpol = values.get("networkPolicy", {}).get("enabled", False)
    created_secret = values.get("storage", {}).get("secret", {}).get("create", False)

    def where(kind: str, object_name: str) -> set[str]:
        return {d["metadata"]["namespace"] for d in of_kind(docs, kind) if d["metadata"]["name"] == object_name}
    assert where("ServiceAccount", "genfab-stage") == prepared
    assert where("NetworkPolicy", "genfab-stages") == (prepared if netpol else set())
    assert where("Secret", "lab-s3") == (prepared if created_secret else set())
    for key, value in _operator_env(docs).items():
        monkeypatch.setenv(key, value)
    settings = OperatorSettings()
    assert settings.stage_service_account == "genfab-stage"
    assert settings.stage_network_policy == ("genfab-stages" if netpol else None)
    assert settings.custom_stage_credentials is values.get("stages", {}).get("customStageCredentials", True)
    assert settings.group_network_policy is values.get("networkPolicy", {}).get("processGroups", True)
    metrics_from = values.get("networkPolicy", {}).get("metricsFrom", [])
    assert settings.stage_metrics_from == (tuple(metrics_from) if netpol else ())


def test_stage_images_can_be_pinned_by_digest(rendered: dict[str, list[dict[str, Any]]]) -> None:
    env = _operator_env(rendered["shared"])
    assert env["GENFAB_IMAGE_CV"] == "ghcr.io/genfab/genfab-cv@sha256:" + "b" * 64
    assert env["GENFAB_IMAGE_SCENE"] == "ghcr.io/genfab/genfab-scene:0.1.0"


def test_stage_image_families_follow_the_catalog() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    for per_family in ("overrides", "digests"):
        assert tuple(sorted(values["stages"]["images"][per_family])) == tuple(sorted(FAMILIES))
        listed = schema["properties"]["stages"]["properties"]["images"]["properties"][per_family]
        assert sorted(listed["properties"]) == sorted(FAMILIES) == sorted(listed["required"])


@pytest.mark.parametrize(("values", "message"), [
    ({"operator": {"replicas": 2}}, "operator.replicas > 1 needs operator.ha.enabled=true"),
    ({"operator": {"shards": 2, "replicas": 2, "ha": {"enabled": True}}}, "operator.shards > 1 runs one replica"),
    ({"operator": {"shards": 0}}, "at '/operator/shards'"),
    ({"operator": {"replica": 2}}, "additional properties 'replica' not allowed"),
    ({"storage": {"addressingStyle": "pathy"}}, "at '/storage/addressingStyle'"),
    ({"storage": {"endpoint": "minio:9000"}}, "at '/storage/endpoint'"),
    ({"storage": {"secret": {"name": "s3", "create": True}}}, "needs storage.secret.accessKeyId"),
    ({"operator": {"watchNamespaces": ["Lab_A"]}}, "at '/operator/watchNamespaces/0'"),
    ({"operator": {"watchNamespaces": ["lab-a"]}, "stages": {"tenantNamespaces": ["lab-b"]}},
     "stages.tenantNamespaces is for cluster-wide mode"),
    ({"stages": {"images": {"digests": {"cv": "latest"}}}}, "at '/stages/images/digests/cv'"),
    ({"stages": {"gpu": {"tolerations": [{"operator": "Sometimes"}]}}}, "at '/stages/gpu/tolerations/0/operator'"),
    ({"metrics": {"serviceMonitor": {"enabled": True}, "service": {"enabled": False}}},
     "metrics.serviceMonitor.enabled needs metrics.service.enabled"),
])
def test_bad_values_are_refused_with_the_field(helm: Path, tmp_path: Path, values: dict[str, Any],
                                               message: str) -> None:
    out = run_helm(helm, "template", "genfab", str(CHART), values=values, tmp=tmp_path)
    assert out.returncode != 0 and message in out.stderr, out.stderr


def test_network_policies_limit_ingress_to_metrics(rendered: dict[str, list[dict[str, Any]]]) -> None:
    policies = {(p["metadata"]["namespace"], p["metadata"]["name"]): p["spec"]
                for p in of_kind(rendered["everything"], "NetworkPolicy")}
    assert set(policies) == {("genfab-system", "genfab-operator"), ("lab-a", "genfab-stages"),
                             ("lab-b", "genfab-stages")}
    stages = policies[("lab-a", "genfab-stages")]
    assert stages["podSelector"] == {"matchLabels": {"app.kubernetes.io/managed-by": "genfab"}}
    group = {"podSelector": {"matchExpressions": [{"key": "genfab.dev/process-group", "operator": "Exists"}]}}
    assert [p["port"] for rule in stages["ingress"] for p in rule.get("ports", [])] == ["metrics"]
    # the Pods of a distributed training group reach each other (NCCL: any port) through their own
    # group's policy (the operator's), not this namespace-wide one
    assert [r for r in stages["ingress"] if "ports" not in r] == []
    assert [r for r in stages["egress"] if "ports" not in r] == [{"to": [group]}]
    egress_ports = {p["port"] for rule in stages["egress"] for p in rule.get("ports", [])}
    assert egress_ports == {53, 443, 9000}  # DNS and storage only: no API server for stage Pods
    operator = policies[("genfab-system", "genfab-operator")]
    assert {"ipBlock": {"cidr": "10.0.0.1/32"}} in [t for r in operator["egress"] for t in r.get("to", [])]


@pytest.mark.parametrize("process_groups", [True, False])
def test_process_groups_are_isolated_by_their_own_policies(helm: Path, tmp_path: Path, process_groups: bool
                                                           ) -> None:
    """With `processGroups` (the default) the operator may create and delete NetworkPolicies, and the
    namespace-wide stage policy admits no process group; without, the namespace-wide policy must let
    every group's Pods reach each other, and the operator gets no such verb."""
    docs = render(helm, {"networkPolicy": {"enabled": True, "processGroups": process_groups}}, tmp_path)
    rules = [r for role in of_kind(docs, "ClusterRole") for r in role.get("rules", [])]
    verbs = {v for r in rules if "networkpolicies" in r["resources"] and "resourceNames" not in r for v in r["verbs"]}
    assert verbs == ({"get", "create", "delete"} if process_groups else set())
    stages = next(p["spec"] for p in of_kind(docs, "NetworkPolicy") if p["metadata"]["name"] == "genfab-stages")
    open_to_groups = [r for r in stages["ingress"] if "ports" not in r]
    assert bool(open_to_groups) is not process_groups
    assert _operator_env(docs)["GENFAB_GROUP_NETWORK_POLICY"] == str(process_groups).lower()


def test_checked_in_argocd_files_are_not_stale() -> None:
    from genfab.cli.main import cli

    result = CliRunner().invoke(cli, ["argocd", "--out", str(ROOT / "deploy" / "argocd"), "--check"])
    assert result.exit_code == 0, result.output

"""The cluster policy the operator applies before creating anything (table tests)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from genfab.api import parse_resource
from genfab.operator.policy import ClusterPolicy as Policy
from genfab.operator.policy import policy_errors
from tests.helpers import ROOT

FILES = ("/data", "/in")
"""Folders these tables' file:// URIs may name (the chart's storage.filePrefixes)."""


def ClusterPolicy(**fields: Any) -> Policy:
    return Policy(**{"file_prefixes": FILES, **fields})

GPU = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
CONFIGURED = ClusterPolicy(host_path_prefixes=("/var/cache/hf",), tolerations=({"key": "lab/spot", "value": "yes"},),
                           node_selector_keys=("nvidia.com/gpu.product",), priority_classes=("lab-batch",),
                           gpu_tolerations=(GPU,), gpu_node_selector_keys=("nvidia.com/gpu.present",),
                           secret_names=("lab-s3", "team-a-s3"), default_secret="lab-s3",
                           storage_endpoints=("http://minio:9000",))
S3 = {"output": "s3://lab-out/team-a/d"}
CUSTOM = {"name": "export", "image": "lab/tool:1"}
NO_CUSTOM_CREDENTIALS = replace(CONFIGURED, custom_stage_credentials=False)


def spec(**fields: Any) -> Any:
    return parse_resource({
        "apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob", "metadata": {"name": "d", "namespace": "team-a"},
        "spec": {"type": "relighting", "output": "file:///data/out", "relighting": {"input": {"uri": "file:///in/x"}},
                 **fields}}).spec


POLICY_IDS = [  # test_policy's rows, in order
    'nothing asked', 'hub cache, host paths off', 'hub cache under an allowed prefix',
    'hub cache, a prefix of the text only', 'hub cache outside', "the chart's GPU toleration",
    'an allowed toleration', 'a wildcard toleration', 'GPU node selectors', 'a control-plane node selector',
    'an allowed priority class', 'a system priority class', "a custom stage's system priority and wildcard",
    's3 output without a Secret', 's3 input without a Secret', 's3 models without a Secret',
    "s3 input, the chart's Secret", 's3 input, ambient credentials', 's3 output, ambient credentials',
    "s3 output, the chart's Secret", "the tenant's own Secret", "another tenant's Secret",
    'an endpoint without a Secret', 'a custom stage, credentials allowed', 'custom stages, credentials not allowed',
    'a custom stage, ambient credentials', 'a custom stage, file output'
]


@pytest.mark.parametrize(("fields", "policy", "errors"), [
    ({}, ClusterPolicy(), []),
    ({"models": {"hubCache": "/var/cache/hf"}}, ClusterPolicy(), ["spec.models.hubCache"]),  # disabled by default
    ({"models": {"hubCache": "/var/cache/hf/hub"}}, CONFIGURED, []),
    ({"models": {"hubCache": "/var/cache/hfx"}}, CONFIGURED, ["spec.models.hubCache"]),  # a prefix, not a string
    ({"models": {"hubCache": "/var/lib/kubelet"}}, CONFIGURED, ["spec.models.hubCache"]),
    ({"resources": {"tolerations": [GPU]}}, CONFIGURED, []),  # the chart's own GPU placement
    ({"resources": {"tolerations": [{"key": "lab/spot", "operator": "Equal", "value": "yes"}]}}, CONFIGURED, []),
    ({"resources": {"tolerations": [{"operator": "Exists"}]}}, CONFIGURED, ["spec.resources.tolerations[0]"]),
    ({"stages": {"segment": {"nodeSelector": {"nvidia.com/gpu.product": "H100", "nvidia.com/gpu.present": "true"}}}},
     CONFIGURED, []),
    ({"stages": {"segment": {"nodeSelector": {"node-role.kubernetes.io/control-plane": ""}}}}, CONFIGURED,
     ["spec.stages.segment.nodeSelector"]),
    ({"resources": {"priorityClassName": "lab-batch"}}, CONFIGURED, []),
    ({"resources": {"priorityClassName": "system-node-critical"}}, CONFIGURED, ["spec.resources.priorityClassName"]),
    ({"customStages": [{"name": "extra", "image": "x:1", "resources": {"priorityClassName": "system-cluster-critical",
                                                                        "tolerations": [{"operator": "Exists"}]}}]},
     CONFIGURED, ["spec.customStages[0].resources.tolerations[0]", "spec.customStages[0].resources.priorityClassName"]),
    # storage: the resource's Secret (or the chart's default), by name; never the operator's own credentials
    (S3, ClusterPolicy(), ["spec.storage"]),
    # every s3:// URI needs it, not only the output: the operator lists inputs, manifests and models
    ({"relighting": {"input": {"uri": "s3://team-b-private/in"}}}, ClusterPolicy(), ["spec.storage"]),
    ({"models": {"uri": "s3://team-b-private/models"}}, ClusterPolicy(), ["spec.storage"]),
    ({"relighting": {"input": {"uri": "s3://lab-in/x"}}}, CONFIGURED, []),  # the chart's default Secret
    ({"relighting": {"input": {"uri": "s3://lab-in/x"}}}, ClusterPolicy(ambient_credentials=True), []),
    (S3, ClusterPolicy(ambient_credentials=True), []),
    (S3, CONFIGURED, []),  # the chart's default Secret
    ({**S3, "storage": {"secretRef": {"name": "team-a-s3"}}}, CONFIGURED, []),
    ({**S3, "storage": {"secretRef": {"name": "team-b-s3"}}}, CONFIGURED, ["spec.storage.secretRef.name"]),
    ({**S3, "storage": {"endpoint": "http://minio:9000"}}, CONFIGURED, ["spec.storage.secretRef"]),
    # custom stages (images the tenant chose) get the Secret's credentials only if the chart says so
    ({**S3, "customStages": [CUSTOM]}, CONFIGURED, []),
    ({**S3, "customStages": [CUSTOM, {**CUSTOM, "name": "package"}]}, NO_CUSTOM_CREDENTIALS,
     ["spec.customStages[0]", "spec.customStages[1]"]),
    ({**S3, "customStages": [CUSTOM]}, replace(NO_CUSTOM_CREDENTIALS, default_secret=None, ambient_credentials=True),
     []),  # ambient credentials (IRSA on the stage account): no Secret is handed out
    ({"customStages": [CUSTOM]}, NO_CUSTOM_CREDENTIALS, []),  # file:// output: nothing to hand out
], ids=POLICY_IDS)
def test_policy(fields: dict[str, Any], policy: ClusterPolicy, errors: list[str]) -> None:
    found = policy_errors(spec(**fields), policy)
    assert [e.path for e in found] == errors
    for e in found:
        assert ("allowed" in e.message or "required" in e.message) and "chart" in e.message


PREFIXES = ClusterPolicy(storage_prefixes={"*": ("s3://lab-data/{namespace}/",),
                                           "vision": ("s3://lab-data/vision/", "s3://shared-datasets/")},
                         ambient_credentials=True, file_prefixes=("/",))


@pytest.mark.parametrize(("namespace", "fields", "errors"), [
    ("team-a", {"output": "s3://lab-data/team-a/run"}, []),
    ("team-a", {"output": "s3://lab-data/team-b/run"}, ["spec.output"]),
    ("team-a", {"output": "s3://lab-data/team-ab/run"}, ["spec.output"]),  # prefixes match whole segments
    ("vision", {"output": "s3://lab-data/vision/x", "relighting": {"input": {"uri": "s3://shared-datasets/p"}}}, []),
    ("vision", {"output": "s3://lab-data/vision/x", "models": {"uri": "s3://lab-data/team-a/models"}},
     ["spec.models.uri"]),
    ("team-a", {"output": "s3://lab-data/team-a/x", "relighting": {"input": {"uri": "file:///etc"}}},
     ["spec.relighting.input.uri"]),
])
def test_storage_is_bound_to_the_namespace(namespace: str, fields: dict[str, Any], errors: list[str]) -> None:
    base = {"relighting": {"input": {"uri": f"s3://lab-data/{namespace}/in"}}}
    found = policy_errors(spec(**{**base, **fields}), PREFIXES, namespace)
    assert [e.path for e in found] == errors
    assert all("storage.prefixes" in e.message for e in found)


def test_no_prefixes_means_unrestricted_storage() -> None:
    assert policy_errors(spec(output="s3://anywhere/x"), ClusterPolicy(ambient_credentials=True), "team-a") == []


def test_an_s3_field_is_named_in_the_message() -> None:
    found = policy_errors(spec(relighting={"input": {"uri": "s3://team-b-private/in"}}), ClusterPolicy())
    assert "spec.relighting.input.uri" in found[0].message


IMAGE_CASES = [
    ({**S3, "images": {"segment": "attacker.example/x:1"}}, NO_CUSTOM_CREDENTIALS, ["spec.images.segment"]),
    ({**S3, "stages": {"albedo": {"image": "attacker.example/x:1"}}}, NO_CUSTOM_CREDENTIALS,
     ["spec.stages.albedo.image"]),
    ({**S3, "images": {"segment": "attacker.example/x:1"}}, CONFIGURED, []),  # custom images get keys here
    ({"images": {"segment": "attacker.example/x:1"}}, replace(NO_CUSTOM_CREDENTIALS, default_secret=None), []),
    ({**S3, "onlyStages": ["organize"], "images": {"segment": "x:1"}}, NO_CUSTOM_CREDENTIALS, []),  # it does not run
]


@pytest.mark.parametrize(("fields", "policy", "errors"), IMAGE_CASES)
def test_an_image_override_is_a_tenant_image(fields: dict[str, Any], policy: ClusterPolicy,
                                             errors: list[str]) -> None:
    from genfab.operator.policy import tenant_image_errors
    from genfab.planner import plan

    resource = parse_resource({
        "apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob", "metadata": {"name": "d", "namespace": "team-a"},
        "spec": {"type": "relighting", "output": "file:///data/out", "relighting": {"input": {"uri": "file:///in"}},
                 **fields}})
    found = tenant_image_errors(plan(resource), resource.spec, policy)
    assert [e.path for e in found] == errors
    assert all("stages.customStageCredentials" in e.message for e in found)


def test_a_tenant_image_gets_no_credentials_in_its_job() -> None:
    """The Job builder's own rule, whatever the policy said: a built-in stage with the resource's image
    override gets no Secret references when custom stages get none."""
    from genfab.operator.builders import build_job
    from genfab.operator.settings import OperatorSettings
    from genfab.planner import plan, stage_config
    from tests.unit.shared import OWNER

    resource = parse_resource({
        "apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob", "metadata": {"name": "d", "namespace": "team-a"},
        "spec": {"type": "relighting", "output": "s3://lab-out/team-a/d", "storage": {"secretRef": {"name": "lab-s3"}},
                 "relighting": {"input": {"uri": "s3://lab-out/team-a/in"}},
                 "images": {"segment": "attacker.example/x:1"}}})
    p = plan(resource)
    settings = replace(OperatorSettings(), custom_stage_credentials=False)
    for name, keys in (("segment", False), ("albedo", True)):
        stage = p.stage(name)
        job = build_job(p, stage, stage_config(p, stage), resource.spec, 1, 1, OWNER, settings)
        env = job["spec"]["template"]["spec"]["containers"][0]["env"]
        assert any("secretKeyRef" in e.get("valueFrom", {}) for e in env) is keys, name


def _reference_object(generator: str) -> Any:
    import yaml

    doc = yaml.safe_load((ROOT / "examples" / "datasetjob-reference-object.yaml").read_text())
    doc["metadata"]["namespace"] = "team-a"
    doc["spec"]["referenceObject"]["perspectives"]["generator"] = generator
    return parse_resource(doc)


@pytest.mark.parametrize(("generator", "policy", "errors"), [
    ("zero123", NO_CUSTOM_CREDENTIALS, ["spec.referenceObject.perspectives.generator"]),
    ("qwen_multicamera", NO_CUSTOM_CREDENTIALS, []),
    ("zero123", CONFIGURED, []),  # code a resource chooses gets the keys on this cluster
], ids=["zero123-no-custom-credentials", "qwen-runs-genfabs-code", "zero123-credentials-allowed"])
def test_zero123s_pipeline_from_the_model_location_is_the_tenants_code(generator: str, policy: ClusterPolicy,
                                                                       errors: list[str]) -> None:
    """Zero123++ runs the pipeline.py in the resource's model location inside a built-in stage: with
    `stages.customStageCredentials: false` it is refused where it would get the storage Secret, and
    its Job gets no Secret references whatever the policy said."""
    from genfab.operator.builders import build_job
    from genfab.operator.policy import tenant_image_errors
    from genfab.operator.settings import OperatorSettings
    from genfab.planner import plan, stage_config
    from tests.unit.shared import OWNER

    resource = _reference_object(generator)
    p = plan(resource)
    found = tenant_image_errors(p, resource.spec, policy)
    assert [e.path for e in found] == errors
    assert all("pipeline.py" in e.message and "stages.customStageCredentials" in e.message for e in found)
    settings = replace(OperatorSettings(), custom_stage_credentials=False)
    stage = p.stage("perspectives")
    job = build_job(p, stage, stage_config(p, stage), resource.spec, 1, 1, OWNER, settings)
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    assert any("secretKeyRef" in e.get("valueFrom", {}) for e in env) is (generator != "zero123")


def test_a_resolved_reference_is_checked_against_the_prefixes_again() -> None:
    import dataclasses

    from genfab.operator.policy import resolved_input_errors
    from genfab.planner import plan

    resource = parse_resource({
        "apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob", "metadata": {"name": "d", "namespace": "team-a"},
        "spec": {"type": "relighting", "output": "s3://lab-data/team-a/out",
                 "relighting": {"input": {"uri": "s3://lab-data/team-a/in"}}}})
    p = plan(resource)
    assert resolved_input_errors(p, PREFIXES, "team-a") == []
    moved = dataclasses.replace(p, stages=tuple(
        dataclasses.replace(s, input_uris=("s3://lab-data/team-b/secret",)) if s.name == "segment" else s
        for s in p.stages))
    found = resolved_input_errors(moved, PREFIXES, "team-a")
    assert [e.path for e in found] == ["stage segment input"] and "storage.prefixes" in found[0].message


@pytest.mark.parametrize(("fields", "policy", "errors"), [
    # the operator reads the stores the admins list, never an arbitrary address
    ({**S3, "storage": {"endpoint": "http://minio.minio:9000", "secretRef": {"name": "lab-s3"}}},
     ClusterPolicy(secret_names=("lab-s3",), storage_endpoints=("http://minio.minio:9000",)), []),
    ({**S3, "storage": {"endpoint": "http://169.254.169.254", "secretRef": {"name": "lab-s3"}}},
     ClusterPolicy(secret_names=("lab-s3",), storage_endpoints=("http://minio.minio:9000",)),
     ["spec.storage.endpoint"]),
    ({**S3, "storage": {"endpoint": "http://minio.minio:9000", "secretRef": {"name": "lab-s3"}}},
     ClusterPolicy(secret_names=("lab-s3",)), ["spec.storage.endpoint"]),  # none listed: AWS only
    # file:// is the operator's own disk: only listed folders
    ({}, Policy(), ["spec.output", "spec.relighting.input.uri"]),
    ({"relighting": {"input": {"uri": "file:///etc"}}}, ClusterPolicy(), ["spec.relighting.input.uri"]),
])
def test_stores_and_folders_the_operator_reads(fields: dict[str, Any], policy: Policy, errors: list[str]) -> None:
    assert [e.path for e in policy_errors(spec(**fields), policy)] == errors


def test_a_referenced_s3_output_needs_the_resources_secret() -> None:
    """L7: a TuningRun whose `datasetJobRef` resolves to an `s3://` output passed the Secret rule (its
    spec has no s3:// URI) and would have been read with the operator's own credentials."""
    import dataclasses

    from genfab.operator.policy import resolved_input_errors
    from genfab.planner import plan

    resource = parse_resource({
        "apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob", "metadata": {"name": "d", "namespace": "team-a"},
        "spec": {"type": "relighting", "output": "file:///data/out",
                 "relighting": {"input": {"uri": "file:///in/x"}}}})
    p = plan(resource)
    moved = dataclasses.replace(p, stages=tuple(
        dataclasses.replace(s, input_uris=("s3://lab-data/team-a/dataset",)) if s.name == "segment" else s
        for s in p.stages))
    policy = ClusterPolicy(secret_names=("lab-s3",))
    found = resolved_input_errors(moved, policy, "team-a", resource.spec)
    assert [e.path for e in found] == ["stage segment input"] and "names no Secret" in found[0].message
    assert resolved_input_errors(moved, dataclasses.replace(policy, ambient_credentials=True), "team-a",
                                 resource.spec) == []
    with_secret = parse_resource({**resource.to_yaml_dict(), "spec": {
        **resource.spec.to_yaml_dict(), "storage": {"secretRef": {"name": "lab-s3"}}}})
    assert resolved_input_errors(moved, policy, "team-a", with_secret.spec) == []


@pytest.mark.parametrize(("prefixes", "expected"), [
    ({}, FILES),  # namespaces not bound to prefixes: the chart's storage.filePrefixes
    ({"*": ["file:///data/{namespace}/", "s3://lab/{namespace}/"]}, ("/data/team-a/",)),
    ({"*": ["s3://lab/{namespace}/"]}, ()),  # no file:// for this namespace at all
])
def test_file_storage_is_confined_to_the_namespaces_folders(prefixes: dict[str, list[str]],
                                                            expected: tuple[str, ...]) -> None:
    from genfab.operator.policy import file_roots

    policy = ClusterPolicy(storage_prefixes={ns: tuple(p) for ns, p in prefixes.items()})
    assert file_roots(policy, "team-a") == expected


@pytest.mark.parametrize(("execution", "valid"), [
    ("20261124_101500", True), ("lab-run.2", True), ("../../team-b/ro", False), ("a/b", False), ("..", False)])
def test_the_status_execution_is_an_execution_name(execution: str, valid: bool) -> None:
    """L7: a status read back (`status.execution`) is not trusted into the output URI: the schema holds
    the execution-name pattern (the CRD refuses another) and the model refuses it too."""
    from pydantic import ValidationError

    from genfab.api.status import ResourceStatus

    if valid:
        assert ResourceStatus.model_validate({"execution": execution}).execution == execution
    else:
        with pytest.raises(ValidationError):
            ResourceStatus.model_validate({"execution": execution})

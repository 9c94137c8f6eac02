"""Manifest builders: the Job and ConfigMap a stage becomes (schema-validated, no cluster)."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest

from genfab.api import parse_resource
from genfab.operator.builders import Owner, build_configmap, build_job, child_name
from genfab.operator.settings import OperatorSettings
from genfab.planner import plan
from genfab.planner.contract import stage_config

SETTINGS = OperatorSettings(images={f: f"registry.test/genfab-{f}:1" for f in ("cv", "scene", "segment", "diffusion")},
                            gpu_resource="amd.com/gpu")
OWNER = Owner("genfab.dev/v1alpha1", "SceneJob", "x" * 40, "lab", "uid-1")


def resource(**spec: Any) -> Any:
    return parse_resource({
        "apiVersion": "genfab.dev/v1alpha1", "kind": "SceneJob", "metadata": {"name": "x" * 40, "namespace": "lab"},
        "spec": {"pipeline": "worldexplorer", "input": {"image": "s3://lab-in/a.png"}, "output": "s3://lab-out/run",
                 "storage": {"endpoint": "http://minio:9000", "secretRef": {"name": "s3-creds"}}, **spec}})


def job_for(stage_name: str = "scaffold", shards: int = 4, **spec: Any) -> dict[str, Any]:
    r = resource(**spec)
    p = plan(r)
    stage = p.stage(stage_name)
    return build_job(p, stage, stage_config(p, stage), r.spec, shards, 10, OWNER, SETTINGS)


def test_job_is_an_indexed_job_with_the_stage_contract() -> None:
    job = job_for(retries=3, parallelism=2, suspend=True, queueName="gpu-queue", ttlSecondsAfterFinished=600)
    kubernetes_validate.validate(job, "1.35", strict=True)
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 4, 2)
    assert spec["backoffLimitPerIndex"] == 3 and spec["suspend"] is True and spec["ttlSecondsAfterFinished"] == 600
    assert spec["podReplacementPolicy"] == "Failed"
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0] == {"action": "FailIndex", "onExitCodes": {"containerName": "stage", "operator": "In",
                                                               "values": [42]}}
    assert rules[1]["action"] == "Ignore" and rules[1]["onPodConditions"][0]["type"] == "DisruptionTarget"
    labels = job["metadata"]["labels"]
    assert labels["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    assert {labels["genfab.dev/resource"], labels["genfab.dev/stage"]} == {"x" * 40, "scaffold"}
    assert len(labels["genfab.dev/config-hash"]) == 10
    assert job["metadata"]["ownerReferences"] == [OWNER.reference()]
    assert len(job["metadata"]["name"]) <= 63 and job["metadata"]["name"].endswith(labels["genfab.dev/config-hash"])


def test_pod_is_least_privilege_and_gets_credentials_only_by_reference() -> None:
    job = job_for()
    pod = job["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and pod["serviceAccountName"] == "genfab-stage"
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["seccompProfile"]["type"] == \
        "RuntimeDefault"
    c = pod["containers"][0]
    assert c["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}
    env = {e["name"]: e for e in c["env"]}
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "s3-creds"
    assert "value" not in env["AWS_SECRET_ACCESS_KEY"]
    assert env["GENFAB_S3_ENDPOINT"]["value"] == "http://minio:9000" and env["GENFAB_SHARD_COUNT"]["value"] == "4"
    assert env["GENFAB_STAGE_CONFIG"]["value"] == "/etc/genfab/stage.json"
    assert "JOB_COMPLETION_INDEX" not in env  # Kubernetes sets it per Pod
    assert c["command"] == ["python", "-m", "genfab.stages", "scaffold"]
    assert c["image"] == "registry.test/genfab-diffusion:1"
    assert c["resources"]["limits"]["amd.com/gpu"] == "1"
    assert {m["mountPath"] for m in c["volumeMounts"]} >= {"/etc/genfab", "/tmp"}


def test_placement_and_custom_stages() -> None:
    job = job_for("scaffold", resources={"nodeSelector": {"gpu": "h100"}, "priorityClassName": "batch-low",
                                         "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}]},
                  customStages=[{"name": "scaffold", "image": "lab/seva:1", "command": ["python", "-m", "seva"],
                                 "args": ["--fast"], "env": [{"name": "SEVA_MODE", "value": "x"}]}])
    kubernetes_validate.validate(job, "1.35", strict=True)
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"gpu": "h100"} and pod["priorityClassName"] == "batch-low"
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists"}]
    c = pod["containers"][0]
    assert (c["image"], c["command"], c["args"]) == ("lab/seva:1", ["python", "-m", "seva"], ["--fast"])
    assert {"name": "SEVA_MODE", "value": "x"} in c["env"]


def test_configmap_carries_the_stage_config() -> None:
    r = resource()
    p = plan(r)
    stage = p.stage("expansion")
    cm = build_configmap(p, stage, stage_config(p, stage), OWNER)
    kubernetes_validate.validate(cm, "1.35", strict=True)
    cfg = json.loads(cm["data"]["stage.json"])
    assert cfg["stage"] == "expansion" and cfg["configHash"] == stage.config_hash
    assert cfg["upstream"][0]["name"] == "scaffold"
    assert cm["metadata"]["name"] == child_name(p.name, stage)


@pytest.mark.parametrize("name", ["a", "x" * 40])
def test_child_names_are_deterministic_and_fit(name: str) -> None:
    p = plan(resource())
    for s in p.stages:
        n = child_name(name, s)
        assert n == child_name(name, s) and len(n) <= 63 and n.endswith(s.short_hash)

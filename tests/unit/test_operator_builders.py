"""Manifest builders: the Job and ConfigMap a stage becomes (schema-validated, no cluster)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import kubernetes_validate
import pytest

from genfab.api import parse_resource
from genfab.operator.builders import build_configmap, build_job
from genfab.operator.objects import child_name
from genfab.operator.settings import OperatorSettings
from genfab.operator.sharding import bucket_label
from genfab.planner import plan, stage_config
from tests.helpers import load_example
from tests.unit.shared import OWNER, SETTINGS


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
    job = job_for(retries=3, suspend=True, queueName="gpu-queue", ttlSecondsAfterFinished=600)
    kubernetes_validate.validate(job, "1.35", strict=True)
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 4, 4)
    assert spec["backoffLimitPerIndex"] == 3 and spec["suspend"] is True and spec["ttlSecondsAfterFinished"] == 600
    assert job["metadata"]["annotations"]["genfab.dev/shards"] == "4"
    assert "GENFAB_WORKERS" not in {e["name"] for e in spec["template"]["spec"]["containers"][0]["env"]}
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
    # The owner's shard bucket, on the Job and its Pods: sharded operators watch by it (sharding.py).
    assert labels["genfab.dev/shard-bucket"] == bucket_label("uid-1")
    assert spec["template"]["metadata"]["labels"]["genfab.dev/shard-bucket"] == bucket_label("uid-1")
    assert len(job["metadata"]["name"]) <= 63 and job["metadata"]["name"].endswith(labels["genfab.dev/config-hash"])


def test_fewer_pods_than_shards_are_warm_workers_that_count_each_shards_tries_themselves() -> None:
    job = job_for(retries=3, parallelism=2)
    kubernetes_validate.validate(job, "1.35", strict=True)
    spec = job["spec"]
    # two worker Pods take the four shards; a worker gives a shard up after its retries, so its Pod's own
    # restarts may add up over its shards
    assert (spec["completions"], spec["parallelism"], spec["backoffLimitPerIndex"]) == (2, 2, (3 + 1) * 4)
    env = {e["name"]: e.get("value") for e in spec["template"]["spec"]["containers"][0]["env"]}
    assert (env["GENFAB_WORKERS"], env["GENFAB_SHARD_RETRIES"], env["GENFAB_SHARD_COUNT"]) == ("2", "3", "4")
    assert job["metadata"]["annotations"]["genfab.dev/shards"] == "4"


def test_a_streaming_stages_workers_are_not_ready_while_they_wait_for_input() -> None:
    """The runtime keeps `GENFAB_WAITING_FILE` while it waits; the probe fails then, so the Job controller,
    asked for fewer Pods, stops a waiting worker before a busy one (genfab.operator.streams)."""
    doc = load_example("datasetjob-relighting.yaml")
    doc["spec"].update({"shardSize": 2, "parallelism": 3})
    r = parse_resource(doc)
    p = plan(r)
    albedo = p.stage("albedo")
    job = build_job(p, albedo, stage_config(p, albedo, upstream_shards=5), r.spec, 5, 10, OWNER, SETTINGS, ready=2)
    kubernetes_validate.validate(job, "1.35", strict=True)
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["GENFAB_WAITING_FILE"] == "/tmp/genfab-waiting" and job["spec"]["parallelism"] == 2
    assert container["readinessProbe"]["exec"]["command"] == ["/bin/sh", "-c", "test ! -e /tmp/genfab-waiting"]
    segment = p.stage("segment")  # it streams from nothing: always Ready, nothing to release
    plain = build_job(p, segment, stage_config(p, segment), r.spec, 5, 10, OWNER, SETTINGS)
    assert "readinessProbe" not in plain["spec"]["template"]["spec"]["containers"][0]
    assert "kueue.x-k8s.io/elastic-job" not in job["metadata"]["annotations"]  # no queue: Kueue never sees it


def test_a_queued_streaming_stages_job_is_an_elastic_job_and_no_other_is() -> None:
    """Its parallelism follows committed input: Kueue must resize it, not suspend it (streams_under)."""
    doc = load_example("datasetjob-relighting.yaml")
    doc["spec"].update({"shardSize": 2, "parallelism": 3, "queueName": "lab-gpus"})
    r = parse_resource(doc)
    p = plan(r)
    albedo, segment = p.stage("albedo"), p.stage("segment")
    streaming = build_job(p, albedo, stage_config(p, albedo, upstream_shards=5), r.spec, 5, 10, OWNER, SETTINGS,
                          ready=2)
    plain = build_job(p, segment, stage_config(p, segment), r.spec, 5, 10, OWNER, SETTINGS)
    assert streaming["metadata"]["annotations"]["kueue.x-k8s.io/elastic-job"] == "true"
    assert streaming["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "lab-gpus"
    assert "kueue.x-k8s.io/elastic-job" not in plain["metadata"]["annotations"]


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


@pytest.mark.parametrize("credentials", [True, False])
def test_custom_stages_get_storage_credentials_only_if_the_chart_allows(credentials: bool) -> None:
    r = resource(customStages=[{"name": "package", "image": "lab/tool:1", "after": ["gaussians"]}])
    p = plan(r)
    settings = replace(SETTINGS, custom_stage_credentials=credentials)
    env = {}
    for name in ("package", "gaussians"):
        stage = p.stage(name)
        job = build_job(p, stage, stage_config(p, stage), r.spec, 1, 1, OWNER, settings)
        env[name] = {e["name"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "GENFAB_S3_ENDPOINT" in env["package"]  # where the storage is, always
    assert ("AWS_SECRET_ACCESS_KEY" in env["package"]) is credentials
    assert "AWS_SECRET_ACCESS_KEY" in env["gaussians"]  # genfab's own stages always
    # torch's compile artifacts in the run's storage are code whoever holds its keys can place: genfab's
    # stages share them only where the resource's own code may hold those keys too
    assert all(("GENFAB_COMPILE_CACHE" in names) is not credentials for names in env.values())


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


def test_operator_defaults_from_the_chart_apply_only_where_the_resource_is_silent(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENFAB_DEFAULT_STORAGE", json.dumps(
        {"endpoint": "http://lab-minio:9000", "addressingStyle": "path", "secretRef": {"name": "lab-s3"}}))
    monkeypatch.setenv("GENFAB_DEFAULT_QUEUE", "lab-gpus")
    monkeypatch.setenv("GENFAB_GPU_NODE_SELECTOR", json.dumps({"gpu": "h100", "pool": "batch"}))
    monkeypatch.setenv("GENFAB_GPU_TOLERATIONS", json.dumps([{"key": "gpu", "operator": "Exists"}]))
    settings = OperatorSettings()

    def pod_env(stage_name: str, **extra: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        r = parse_resource({
            "apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob", "metadata": {"name": "relit"},
            "spec": {"type": "relighting", "output": "s3://lab-out/relit", "resources": {"nodeSelector": {
                "pool": "spot"}}, "relighting": {"input": {"uri": "s3://lab-in/portraits"}}, **extra}})
        p = plan(r)
        stage = p.stage(stage_name)
        job = build_job(p, stage, stage_config(p, stage), r.spec, 1, 1, OWNER, settings)
        kubernetes_validate.validate(job, "1.35", strict=True)
        pod = job["spec"]["template"]["spec"]
        return job["metadata"]["labels"], pod, {e["name"]: e for e in pod["containers"][0]["env"]}

    labels, gpu_pod, env = pod_env("segment")
    assert labels["kueue.x-k8s.io/queue-name"] == "lab-gpus"
    assert gpu_pod["nodeSelector"] == {"gpu": "h100", "pool": "spot"}  # the resource's keys win
    assert gpu_pod["tolerations"] == [{"key": "gpu", "operator": "Exists"}]
    assert env["GENFAB_S3_ENDPOINT"]["value"] == "http://lab-minio:9000"
    assert env["GENFAB_S3_ADDRESSING_STYLE"]["value"] == "path"
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == "lab-s3"
    _, cpu_pod, _ = pod_env("albedo")  # CPU stages do not go to the GPU pool
    assert cpu_pod["nodeSelector"] == {"pool": "spot"} and "tolerations" not in cpu_pod
    own_labels, _, own_env = pod_env("segment", queueName="mine", storage={"endpoint": "http://other:9000"})
    assert own_labels["kueue.x-k8s.io/queue-name"] == "mine"
    assert own_env["GENFAB_S3_ENDPOINT"]["value"] == "http://other:9000" and "AWS_ACCESS_KEY_ID" not in own_env


@pytest.mark.parametrize(("name", "value", "wrong"), [
    ("GENFAB_DEFAULT_STORAGE", '{"endpoint": "minio:9000"}', "endpoint"),
    ("GENFAB_DEFAULT_STORAGE", '{"endpoint": ', "Expecting value"),
    ("GENFAB_GPU_TOLERATIONS", '[{"operator": "Sometimes"}]', "operator"),
    ("GENFAB_GPU_NODE_SELECTOR", '{"gpu": 3}', "gpu"),
    ("GENFAB_SHARD", "2/2", "0 <= I < N"),
    ("GENFAB_SHARD", "half", "expected I/N"),
])
def test_bad_chart_values_stop_the_operator_with_the_variable_and_field(
        monkeypatch: pytest.MonkeyPatch, name: str, value: str, wrong: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name) as info:
        OperatorSettings()
    assert wrong in str(info.value)


def test_stage_pods_have_bounded_node_disk() -> None:
    default = job_for()["spec"]["template"]["spec"]
    sized = job_for(stages={"scaffold": {"ephemeralStorage": "120Gi"}})["spec"]["template"]["spec"]
    for pod, disk in ((default, SETTINGS.stage_ephemeral_storage), (sized, "120Gi")):
        resources = pod["containers"][0]["resources"]
        assert resources["requests"]["ephemeral-storage"] == resources["limits"]["ephemeral-storage"] == disk
        assert next(v for v in pod["volumes"] if v["name"] == "tmp")["emptyDir"] == {"sizeLimit": disk}


def test_active_deadline_is_per_stage_and_absent_by_default() -> None:
    assert "activeDeadlineSeconds" not in job_for()["spec"]
    spec = job_for(stages={"scaffold": {"activeDeadlineSeconds": 7200}})["spec"]
    assert spec["activeDeadlineSeconds"] == 7200
    assert "activeDeadlineSeconds" not in job_for("expansion", stages={"scaffold": {"activeDeadlineSeconds": 7200}}
                                                  )["spec"]
    r = resource(progressDeadlineSeconds=900, stages={"expansion": {"progressDeadlineSeconds": 60}})
    assert [(s.name, s.progress_deadline_seconds) for s in plan(r).stages] == [
        ("scaffold", 900), ("expansion", 60), ("gaussians", 900)]


def test_an_inventory_job_is_one_cpu_pod_of_genfabs_own_image_with_the_stages_storage_and_confinement() -> None:
    from genfab.operator.builders import build_inventory_job
    from genfab.operator.objects import inventory_name
    from genfab.operator.observe import task_of

    r = resource(retries=2, suspend=True, queueName="gpu-queue", stages={"scaffold": {"nodeSelector": {"a": "b"}}})
    p = plan(r)
    stage = p.stage("scaffold")
    job = build_inventory_job(p, stage, stage_config(p, stage), r.spec, OWNER, SETTINGS)
    kubernetes_validate.validate(job, "1.35", strict=True)
    assert task_of(job) == "inventory" and job["metadata"]["name"] == inventory_name(p.name, stage)
    assert len(job["metadata"]["name"]) <= 63 and job["metadata"]["name"].endswith("-inv")
    assert "kueue.x-k8s.io/queue-name" not in job["metadata"]["labels"]  # CPU work, not the GPU queue's
    spec = job["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"], spec["suspend"]) == (1, 1, 2, True)
    assert spec["podFailurePolicy"]["rules"][0]["action"] == "FailJob" and spec["activeDeadlineSeconds"] > 0
    pod = spec["template"]["spec"]
    c = pod["containers"][0]
    assert c["image"] == "registry.test/genfab-cv:1"
    assert c["command"] == ["python", "-m", "genfab.stages.runtime.inventory"]
    assert "amd.com/gpu" not in c["resources"]["limits"] and "nodeSelector" not in pod
    assert pod["securityContext"]["runAsNonRoot"] and pod["automountServiceAccountToken"] is False
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    env = {e["name"]: e for e in c["env"]}
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "s3-creds"
    assert pod["volumes"][0]["configMap"]["name"] == child_name(p.name, stage)  # the stage's own config


def test_a_stage_job_says_when_its_shards_read_the_sample_manifest() -> None:
    r = resource()
    p = plan(r)
    stage = p.stage("scaffold")
    with_manifest = build_job(p, stage, stage_config(p, stage), r.spec, 4, 10, OWNER, SETTINGS, manifest=True)
    env = {e["name"]: e.get("value") for e in with_manifest["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["GENFAB_SAMPLE_MANIFEST"] == "1"
    plain = {e["name"] for e in job_for()["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "GENFAB_SAMPLE_MANIFEST" not in plain


def test_a_records_job_is_one_cpu_pod_with_its_request_and_the_stages_storage() -> None:
    from genfab.operator.builders import build_records_job
    from genfab.operator.objects import records_name
    from genfab.operator.observe import task_of
    from genfab.sequencing.records import RecordsRequest, records_request

    r = resource(retries=2, queueName="gpu-queue")
    p = plan(r)
    request = records_request(p, "PartiallySucceeded", "2026-11-27T10:00:00Z").model_dump_json(by_alias=True)
    job = build_records_job(p, request, r.spec, OWNER, SETTINGS)
    kubernetes_validate.validate(job, "1.35", strict=True)
    assert task_of(job) == "records" and job["metadata"]["name"] == records_name(p.name, request)
    assert len(job["metadata"]["name"]) <= 63 and "-records-" in job["metadata"]["name"]
    later = records_request(p, "Succeeded", "2026-11-27T11:00:00Z").model_dump_json(by_alias=True)
    assert records_name(p.name, later) != job["metadata"]["name"]  # one per run's end, never an old one reused
    assert "kueue.x-k8s.io/queue-name" not in job["metadata"]["labels"]
    pod = job["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["image"] == "registry.test/genfab-cv:1" and c["command"] == ["python", "-m", "genfab.jobs.records"]
    assert [v["name"] for v in pod["volumes"]] == ["tmp"]  # no stage config, no models
    env = {e["name"]: e for e in c["env"]}
    assert RecordsRequest.model_validate_json(env["GENFAB_RECORDS"]["value"]).stages == records_request(
        p, "x", "y").stages
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "s3-creds"
    assert pod["automountServiceAccountToken"] is False and c["securityContext"]["capabilities"] == {"drop": ["ALL"]}

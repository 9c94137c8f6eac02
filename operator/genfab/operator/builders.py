"""Pure manifest builders: a planned stage -> its ConfigMap and Indexed Job. No I/O.

Names are deterministic (`{resource}-{stage}-{hash10}`), so every create is create-if-absent: a
restarted operator, or two reconciles racing, can only ever produce one Job per stage config.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import cast

from genfab.api.common import CommonSpec, Storage
from genfab.api.errors import FieldError
from genfab.api.families import CUSTOM_FAMILY
from genfab.api.pipeline import tenant_code
from genfab.contract import CONFIG_PATH, EXIT_BAD_INPUT, StageConfig
from genfab.contract.hosted import HostedMember, members_json
from genfab.contract.names import (
    CREDENTIAL_KEYS,
    ENV_COMPILE_CACHE,
    ENV_FILE_ROOTS,
    ENV_HOSTED,
    ENV_METRICS_PORT,
    ENV_RECORDS,
    ENV_SAMPLE_MANIFEST,
    RDZV_PORT,
    WAITING_FILE,
)
from genfab.operator.hosting import ANNOTATION_HOSTS, hosts_value
from genfab.operator.objects import (
    ANNOTATION_ELASTIC,
    ANNOTATION_SAMPLES,
    ANNOTATION_SHARDS,
    ANNOTATION_STREAMS,
    LABEL_GROUP,
    LABEL_HASH,
    LABEL_KIND,
    LABEL_MANAGED,
    LABEL_QUEUE,
    LABEL_RESOURCE,
    LABEL_STAGE,
    LABEL_TASK,
    ConfigMap,
    Container,
    EnvVar,
    IngressRule,
    Job,
    NetworkPolicy,
    Owner,
    PodFailurePolicy,
    PodSecurityContext,
    PodSpec,
    PolicyPeer,
    Probe,
    ResourceRequirements,
    SecurityContext,
    Service,
    Toleration,
    Volume,
    VolumeMount,
    child_name,
    inventory_name,
    records_name,
)
from genfab.operator.policy import file_roots
from genfab.operator.settings import OperatorSettings
from genfab.operator.sharding import LABEL_BUCKET, bucket_label
from genfab.planner import Plan, PlannedStage, stage_config
from genfab.sequencing import (
    MODELS_MOUNT,
    gang_env,
    models_env,
    shard_env,
    stage_command,
    storage_env,
    worker_env,
)

INVENTORY = "inventory"
INVENTORY_COMMAND = ("python", "-m", "genfab.stages.runtime.inventory")
RECORDS = "records"
RECORDS_COMMAND = ("python", "-m", "genfab.jobs.records")
ONE_POD_RESOURCES = {"cpu": "1", "memory": "4Gi"}
"""An inventory Pod holds a stage's sample ids while it writes them (about 200 MB per million), a records
Pod a SceneJob's per-sample rows."""
ONE_POD_DEADLINE_SECONDS = 3600
MAX_WORKER_RESTARTS = 10_000
"""A worker Job's restarts per index at most (see `index_backoff_limit`)."""


def index_backoff_limit(retries: int, shards: int, workers: int) -> int:
    """`backoffLimitPerIndex`: a shard's retries where an index is a shard; where it is a warm worker, the
    worker counts each shard's tries itself (genfab.stages.runtime.claims) and gives a shard up after its
    retries, so its Pod's restarts are bounded by every shard it may take ending its process `retries + 1`
    times (never reached in practice, but a worker's index must not fail for its shards' sum)."""
    if workers >= shards:
        return retries
    return min(MAX_WORKER_RESTARTS, (retries + 1) * shards)


CONTAINER = "stage"
CONFIG_DIR = CONFIG_PATH.rsplit("/", 1)[0]


def child_labels(plan: Plan, stage: PlannedStage) -> dict[str, str]:
    return {
        LABEL_MANAGED: "genfab",
        LABEL_KIND: plan.kind,
        LABEL_RESOURCE: plan.name,
        LABEL_STAGE: stage.name,
        LABEL_HASH: stage.short_hash,
    }


MAX_CONFIGMAP_BYTES = 1 << 20
"""Kubernetes refuses a ConfigMap whose data is larger (and would answer every retry with 422)."""


def configmap_data(stage_cfg: StageConfig) -> dict[str, str]:
    """The mounted stage config: the same JSON `genfab run` writes (`StageConfig.to_json`, pydantic's
    own encoder: the standard library's indenting one cost 10 % of the operator's CPU in a burst)."""
    return {CONFIG_PATH.rsplit("/", 1)[1]: stage_cfg.to_json()}


def build_configmap(plan: Plan, stage: PlannedStage, stage_cfg: StageConfig, owner: Owner) -> ConfigMap:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": child_name(plan.name, stage), "namespace": owner.namespace,
                     "labels": child_labels(plan, stage), "ownerReferences": [owner.reference()]},
        "data": configmap_data(stage_cfg),
    }


def oversized_configs(plan: Plan) -> list[FieldError]:
    """Stages whose mounted config would not fit a ConfigMap: refused before anything is created."""
    errors = []
    for stage in plan.stages:
        size = sum(len(k) + len(v.encode()) for k, v in configmap_data(stage_config(plan, stage)).items())
        if size > MAX_CONFIGMAP_BYTES:
            errors.append(FieldError("spec", f"the config of stage {stage.name} is {size // 1024} KiB, over the "
                                     f"{MAX_CONFIGMAP_BYTES // 1024} KiB a ConfigMap holds (inline samples, "
                                     "custom stage config): move large lists into object storage"))
    return errors


def _storage_env(storage: Storage | None, credentials: bool) -> list[EnvVar]:
    """S3 endpoint settings as values, credentials (when the stage gets them) as Secret references,
    never values."""
    env: list[EnvVar] = [{"name": k, "value": v} for k, v in storage_env(storage).items()]
    if storage is not None and storage.secret_ref is not None and credentials:
        for key, optional in CREDENTIAL_KEYS:
            env.append({"name": key, "valueFrom": {"secretKeyRef": {
                "name": storage.secret_ref.name, "key": key, "optional": optional}}})
    return env


def _model_volume(spec: CommonSpec) -> tuple[list[Volume], list[VolumeMount]]:
    """(volumes, mounts) for a model PVC or hub cache (`spec.models.uri` needs none)."""
    m = spec.models
    if m is None or m.uri is not None:
        return [], []
    volume: Volume
    if m.persistent_volume_claim is not None:
        volume = {"name": "models", "persistentVolumeClaim": {"claimName": m.persistent_volume_claim,
                                                               "readOnly": True}}
    elif m.hub_cache is not None:
        volume = {"name": "models", "hostPath": {"path": m.hub_cache, "type": "Directory"}}
    else:  # (the API refuses `models` without one of the three)
        return [], []
    return [volume], [{"name": "models", "mountPath": MODELS_MOUNT, "readOnly": True}]


def scratch(stage: PlannedStage, settings: OperatorSettings) -> str:
    """Node disk a stage Pod may use: its ephemeral-storage limit and its `/tmp` emptyDir's size."""
    return stage.resources.ephemeral_storage or settings.stage_ephemeral_storage


def _resources(stage: PlannedStage, settings: OperatorSettings) -> ResourceRequirements:
    r = stage.resources
    disk = scratch(stage, settings)
    requests: dict[str, str] = {"cpu": r.cpu, "memory": r.memory, "ephemeral-storage": disk}
    limits: dict[str, str] = {"memory": r.memory, "ephemeral-storage": disk}
    if r.gpus:
        requests[settings.gpu_resource] = limits[settings.gpu_resource] = str(r.gpus)
    return {"requests": requests, "limits": limits}


def stage_image(stage: PlannedStage, settings: OperatorSettings) -> str:
    return stage.image or settings.images[stage.family]


def build_service(plan: Plan, stage: PlannedStage, owner: Owner) -> Service:
    """The headless Service of a gang stage: with the Pods' `subdomain`, node `i` of the group is
    `<job>-<i>.<service>`, and node 0 is the rendezvous point. Not-ready Pods are published, since
    the group meets before any of them is ready."""
    name = child_name(plan.name, stage)
    labels = child_labels(plan, stage)
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": owner.namespace, "labels": labels,
                     "ownerReferences": [owner.reference()]},
        "spec": {"clusterIP": "None", "publishNotReadyAddresses": True, "selector": labels,
                 "ports": [{"name": "rendezvous", "port": RDZV_PORT, "protocol": "TCP"}]},
    }


def group_labels(plan: Plan, stage: PlannedStage, owner: Owner) -> dict[str, str]:
    """The labels that select one process group's Pods: this resource's (by UID), this stage's,
    this config's (a Job of an earlier config never shares a group with the new one)."""
    return {LABEL_GROUP: owner.uid, LABEL_STAGE: stage.name, LABEL_HASH: stage.short_hash}


def group_id(stage: PlannedStage, owner: Owner) -> str:
    """What every worker of a group checks its peers share (`GENFAB_GROUP_ID`)."""
    return f"{owner.uid}/{stage.name}/{stage.short_hash}"


def build_group_policy(plan: Plan, stage: PlannedStage, owner: Owner, settings: OperatorSettings
                       ) -> NetworkPolicy:
    """The NetworkPolicy of one gang stage's Pods: ingress from the same group's Pods (rendezvous on
    29500, NCCL on any port) and to the metrics port, nothing else. Created before the Job, so no
    Pod of the group is ever open; it selects only these Pods, so other stages are untouched (it
    adds no egress rules: those stay the chart's stage NetworkPolicy's, or open without one)."""
    group = group_labels(plan, stage, owner)
    metrics: IngressRule = {"ports": [{"port": "metrics", "protocol": "TCP"}]}
    if settings.stage_metrics_from:
        # the chart's peers as written (any NetworkPolicyPeer: ipBlock, selectors with expressions)
        metrics["from"] = cast(list[PolicyPeer], [dict(peer) for peer in settings.stage_metrics_from])
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": child_name(plan.name, stage), "namespace": owner.namespace,
                     "labels": child_labels(plan, stage), "ownerReferences": [owner.reference()]},
        "spec": {"podSelector": {"matchLabels": group}, "policyTypes": ["Ingress"],
                 "ingress": [{"from": [{"podSelector": {"matchLabels": group}}]}, metrics]},
    }


def rendezvous_host(plan: Plan, stage: PlannedStage) -> str:
    """Node 0 of a gang stage's group: its Pod's hostname in the headless Service's subdomain."""
    name = child_name(plan.name, stage)
    return f"{name}-0.{name}"


def group_backoff_limit(retries: int, nodes: int) -> int:
    """Pod failures a gang Job tolerates: each group restart fails every node (the one that failed,
    the others stopped by the operator), so `retries` restarts are `retries * nodes` failures, and
    the next failure of the last attempt fails the Job."""
    return (retries + 1) * nodes - 1


def pod_failure_policy(gang: bool = False) -> PodFailurePolicy:
    """Bad input fails the index (a gang's whole Job) at once; preemption, eviction and node loss do
    not burn retries."""
    return {"rules": [
        {"action": "FailJob" if gang else "FailIndex", "onExitCodes": {"containerName": CONTAINER, "operator": "In",
                                                "values": [EXIT_BAD_INPUT]}},
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
    ]}


def waiting_probe() -> Probe:
    """A streaming stage's worker is not Ready while it waits for input (the file its runtime keeps then,
    genfab.stages.runtime.claims): when the operator lowers its Job's parallelism, the Job controller stops
    not-Ready Pods first, and without counting them failed, so a waiting worker goes, not a busy one
    (genfab.operator.streams). genfab's own images have a shell; only they stream."""
    return {"exec": {"command": ["/bin/sh", "-c", f"test ! -e {WAITING_FILE}"]},
            "periodSeconds": 5, "timeoutSeconds": 2, "successThreshold": 1, "failureThreshold": 1}


def _pod_security(settings: OperatorSettings) -> PodSecurityContext:
    return {"runAsNonRoot": True, "runAsUser": settings.run_as_user, "runAsGroup": settings.run_as_user,
            "fsGroup": settings.run_as_user, "seccompProfile": {"type": "RuntimeDefault"}}


def _container_security() -> SecurityContext:
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]}}


def _file_roots_env(owner: Owner, settings: OperatorSettings) -> dict[str, str]:
    """file:// through a link stays in the namespace's folders in the Pod too."""
    return {ENV_FILE_ROOTS: json.dumps(list(file_roots(settings.policy, owner.namespace)))} \
        if settings.file_prefixes else {}


def build_inventory_job(plan: Plan, stage: PlannedStage, stage_cfg: StageConfig, spec: CommonSpec, owner: Owner,
                        settings: OperatorSettings) -> Job:
    """A one-Pod Job of genfab's own data-plane image (cv) that lists a stage's samples once and writes
    its sample manifest (genfab.inventory.manifest), for a stage whose listing is too big for a reconcile
    (an input folder of a million images, the samples of a 10,000-shard upstream stage). It mounts the
    stage's ConfigMap and gets the stage Pods' storage settings, service account and confinement; no
    GPU, no model volume. Exit 42 (bad input: no samples, a wrong selection) fails it at once."""
    labels = {**child_labels(plan, stage), LABEL_BUCKET: bucket_label(owner.uid), LABEL_TASK: INVENTORY}
    values = {**shard_env(stage_cfg, stage, 1, 0, {}), **_file_roots_env(owner, settings)}
    return _one_pod_job(inventory_name(plan.name, stage), labels, INVENTORY_COMMAND, values, spec, owner, settings,
                        config_map=child_name(plan.name, stage))


def build_records_job(plan: Plan, request_json: str, spec: CommonSpec, owner: Owner,
                      settings: OperatorSettings) -> Job:
    """A one-Pod Job of the data plane (cv image) that writes a run's per-sample records once it has
    ended (genfab.jobs.records), for a run of more shards than the operator reads at its end.
    The request (stages, hashes, output) is in its environment; storage settings, service account and
    confinement are the stage Pods'. Exit 42 (an unusable request) fails it at once."""
    labels = {LABEL_MANAGED: "genfab", LABEL_KIND: plan.kind, LABEL_RESOURCE: plan.name,
              LABEL_BUCKET: bucket_label(owner.uid), LABEL_TASK: RECORDS}
    values = {ENV_RECORDS: request_json, **_file_roots_env(owner, settings)}
    return _one_pod_job(records_name(plan.name, request_json), labels, RECORDS_COMMAND, values, spec, owner, settings)


def _one_pod_job(name: str, labels: dict[str, str], command: tuple[str, ...], values: dict[str, str],
                 spec: CommonSpec, owner: Owner, settings: OperatorSettings, config_map: str | None = None
                 ) -> Job:
    """genfab's own one-Pod data-plane Job (cv image, no GPU, no models): the stage Pods' storage
    settings, service account and security; `config_map` mounted as the stage config when given."""
    env: list[EnvVar] = [{"name": k, "value": v} for k, v in values.items()]
    env += _storage_env(settings.storage_for(spec.storage), True)
    disk = settings.stage_ephemeral_storage
    mounts: list[VolumeMount] = [{"name": "tmp", "mountPath": "/tmp"}]
    volumes: list[Volume] = [{"name": "tmp", "emptyDir": {"sizeLimit": disk}}]
    if config_map is not None:
        mounts.insert(0, {"name": "stage-config", "mountPath": CONFIG_DIR, "readOnly": True})
        volumes.insert(0, {"name": "stage-config", "configMap": {"name": config_map}})
    container: Container = {
        "name": CONTAINER, "image": settings.images["cv"], "imagePullPolicy": settings.image_pull_policy,
        "command": list(command), "env": env,
        "resources": {"requests": {**ONE_POD_RESOURCES, "ephemeral-storage": disk},
                      "limits": {"memory": ONE_POD_RESOURCES["memory"], "ephemeral-storage": disk}},
        "volumeMounts": mounts, "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": _container_security(),
    }
    pod_spec: PodSpec = {
        "restartPolicy": "Never", "serviceAccountName": settings.stage_service_account,
        "automountServiceAccountToken": False, "enableServiceLinks": False, "securityContext": _pod_security(settings),
        "containers": [container], "volumes": volumes,
    }
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": owner.namespace, "labels": labels,
                     "ownerReferences": [owner.reference()]},
        "spec": {"completions": 1, "parallelism": 1, "backoffLimit": spec.retries,
                 "podFailurePolicy": pod_failure_policy(gang=True), "podReplacementPolicy": "Failed",
                 "suspend": spec.suspend, "ttlSecondsAfterFinished": spec.ttl_seconds_after_finished,
                 "activeDeadlineSeconds": ONE_POD_DEADLINE_SECONDS,
                 "template": {"metadata": {"labels": labels}, "spec": pod_spec}},
    }


def build_job(plan: Plan, stage: PlannedStage, stage_cfg: StageConfig, spec: CommonSpec, shards: int,
              samples: int, owner: Owner, settings: OperatorSettings, manifest: bool = False,
              ready: int | None = None, hosting: Sequence[PlannedStage] = ()) -> Job:
    """The stage's Indexed Job; `manifest`: its shards read their samples from the stage's sample manifest;
    `ready`: it streams from its upstream (`stage_cfg.stream`) and this many shards have their input
    now: a worker Job whose parallelism starts there (genfab.operator.streams); `hosting`: the stages whose
    shards its workers take too (a shared worker Job, genfab.operator.hosting), run in the image and with
    the resources of the group's holder."""
    name = child_name(plan.name, stage)
    streams = {ANNOTATION_STREAMS: stage_cfg.stream.stage} if stage_cfg.stream is not None else {}
    shared = {ANNOTATION_HOSTS: hosts_value(hosting)} if hosting else {}
    runs_as = plan.stage(stage.shared_holder) if hosting and stage.shared_holder else stage
    # The owner's shard bucket: sharded operators watch only their resources' Jobs and Pods (sharding.py).
    labels = {**child_labels(plan, stage), LABEL_BUCKET: bucket_label(owner.uid)}
    queue = spec.queue_name or settings.default_queue
    job_labels = {**labels, **({LABEL_QUEUE: queue} if queue else {})}
    # its parallelism follows committed input (genfab.operator.streams): Kueue must resize it, not suspend it
    elastic = {ANNOTATION_ELASTIC: "true"} if queue and stage_cfg.stream is not None else {}
    # Kubernetes sets JOB_COMPLETION_INDEX per Pod in Indexed mode: the shard's, or a worker's when fewer
    # Pods than shards take shard after shard (PlannedStage.workers).
    workers = stage.workers(shards, spec.parallelism)
    values = shard_env(stage_cfg, stage, shards, None, models_env(spec.models, mounted=True),
                       **{ENV_METRICS_PORT: str(settings.stage_metrics_port)},
                       # torch's compile artifacts in the run's storage are code anyone with its keys can
                       # place: shared only where the resource's own code may hold those keys anyway
                       **({} if settings.custom_stage_credentials else {ENV_COMPILE_CACHE: "off"}),
                       **worker_env(stage, shards, workers, spec.retries,
                                    streaming=stage_cfg.stream is not None or bool(hosting)),
                       **({ENV_HOSTED: members_json([HostedMember(stage=s.name, config_hash=s.config_hash)
                                                      for s in hosting])} if hosting else {}),
                       **({ENV_SAMPLE_MANIFEST: "1"} if manifest else {}),
                       **gang_env(stage, shards, rendezvous_host(plan, stage), RDZV_PORT, group_id(stage, owner)))
    # Storage names (GENFAB_S3_*, AWS_*) are reserved: a custom stage's env cannot set them (API rule).
    # Custom stages run images the tenant chose: they get credentials only if the chart says so.
    # So do built-in stages whose image the resource chose (the policy refuses those where it matters).
    # And built-in stages whose settings run the resource's code (Zero123++'s pipeline.py).
    ours = all(s.family != CUSTOM_FAMILY and s.image is None for s in (stage, runs_as))
    credentials = (ours and all(tenant_code(plan.pipeline, s.name, s.config) is None for s in (stage, *hosting))
                   ) or settings.custom_stage_credentials
    values.update(_file_roots_env(owner, settings))
    env: list[EnvVar] = [{"name": k, "value": v} for k, v in values.items()]
    env += _storage_env(settings.storage_for(spec.storage), credentials)
    model_volumes, model_mounts = _model_volume(spec)
    command, args = stage_command(stage)
    container: Container = {
        "name": CONTAINER,
        "image": stage_image(runs_as, settings),
        "imagePullPolicy": settings.image_pull_policy,
        "env": env,
        "resources": _resources(runs_as, settings),
        "ports": [{"name": "metrics", "containerPort": settings.stage_metrics_port}],
        "volumeMounts": [{"name": "stage-config", "mountPath": CONFIG_DIR, "readOnly": True},
                         {"name": "tmp", "mountPath": "/tmp"}, *model_mounts],
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": _container_security(),
    }
    if command is not None:
        container["command"] = command
    if args:
        container["args"] = args
    if stage_cfg.stream is not None or hosting:
        container["readinessProbe"] = waiting_probe()
    r = runs_as.resources
    pod_labels = {**labels, **(group_labels(plan, stage, owner) if stage.gang else {})}
    pod_spec: PodSpec = {
        "restartPolicy": "Never",
        "serviceAccountName": settings.stage_service_account,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": _pod_security(settings),
        "containers": [container],
        "volumes": [{"name": "stage-config", "configMap": {"name": name}},
                    {"name": "tmp", "emptyDir": {"sizeLimit": scratch(runs_as, settings)}}, *model_volumes],
    }
    if stage.gang:
        pod_spec["subdomain"] = name
    node_selector = {**(settings.gpu_node_selector if r.gpus else {}), **r.node_selector}
    tolerations = r.tolerations or (settings.gpu_tolerations if r.gpus else ())
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    if tolerations:
        # the API's Toleration model, dumped in Kubernetes' field names (genfab.api.common.Toleration)
        pod_spec["tolerations"] = cast(list[Toleration], [dict(t) for t in tolerations])
    if r.priority_class_name:
        pod_spec["priorityClassName"] = r.priority_class_name
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": owner.namespace, "labels": job_labels,
                     "annotations": {ANNOTATION_SAMPLES: str(samples), ANNOTATION_SHARDS: str(shards),
                                     **streams, **shared, **elastic},
                     "ownerReferences": [owner.reference()]},
        "spec": {
            "completionMode": "Indexed",
            "completions": workers,
            # A gang runs all its nodes at once (Kueue admits the whole group or nothing); its
            # retries are group restarts, so they count over the Job, not per index.
            "parallelism": shards if stage.gang else min(workers, spec.parallelism or workers, *(
                [max(1, ready)] if ready is not None else [])),
            **({"backoffLimit": group_backoff_limit(spec.retries, shards)} if stage.gang
               else {"backoffLimitPerIndex": index_backoff_limit(spec.retries, shards, workers)}),
            "podFailurePolicy": pod_failure_policy(stage.gang),
            "podReplacementPolicy": "Failed",
            "suspend": spec.suspend,
            "ttlSecondsAfterFinished": spec.ttl_seconds_after_finished,
            **({"activeDeadlineSeconds": stage.active_deadline_seconds} if stage.active_deadline_seconds else {}),
            "template": {"metadata": {"labels": pod_labels}, "spec": pod_spec},
        },
    }

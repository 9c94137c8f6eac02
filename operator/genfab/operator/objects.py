"""The cluster objects genfab owns and reads, named and shaped: a resource's key, the owner its children point
back to, their names, the labels and annotations genfab writes and reads, the REST paths, and the shapes of
the Kubernetes objects the operator reads (the operator's one vocabulary of the cluster: every other module
of the operator stands on it, and it stands on nothing of the operator's).

The shapes are TypedDicts over the JSON the API server sends, as kopf types its bodies
(`kopf._cogs.structs.bodies`): every field optional (`total=False`), as an object of an older cluster or a
watch event may lack any of them, and read with `.get`. The API server leaves an empty optional field out
(Go's `omitempty`) and writes an empty struct (an object's `metadata`, a Job's `status`) as `{}`, so an
object's fields are read with `get(…, {})`. A list's `items` has no `omitempty`: an empty list's is `null`,
declared `| None`, so mypy makes its readers say `or []`.
Only the fields the operator reads are declared: mypy refuses a key that is not (a misspelt field), where a
`dict[str, Any]` answered None.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, TypedDict

from genfab.api.resources import GROUP, PLURALS, VERSION
from genfab.planner import PlannedStage

Key = tuple[str, str, str]
"""(kind, namespace, name) of a genfab resource."""

LABEL_RESOURCE = "genfab.dev/resource"
LABEL_KIND = "genfab.dev/kind"
LABEL_STAGE = "genfab.dev/stage"
LABEL_HASH = "genfab.dev/config-hash"
LABEL_MANAGED = "app.kubernetes.io/managed-by"
LABEL_QUEUE = "kueue.x-k8s.io/queue-name"
ANNOTATION_ELASTIC = "kueue.x-k8s.io/elastic-job"
"""On a queued streaming stage's Job: Kueue resizes it as its parallelism changes instead of suspending it
(genfab.operator.streams.streams_under). Kueue refuses to add or remove it after creation."""
LABEL_GROUP = "genfab.dev/process-group"
"""On the Pods of a gang stage: their resource's UID. With the stage and its config hash it selects
one process group, which the group's own NetworkPolicy (`build_group_policy`) lets reach each other
and nothing else. A UID is not something another namespace can read or choose."""
LABEL_TASK = "genfab.dev/task"
"""On a Job that is not a stage's: what it does (`inventory`: lists a stage's samples, `build_inventory_job`;
`records`: writes a run's per-sample records, `build_records_job`)."""
ANNOTATION_SAMPLES = "genfab.dev/samples"
ANNOTATION_SHARDS = "genfab.dev/shards"
"""The stage's shard count: its Job's completions, or more when its Pods are warm workers."""
ANNOTATION_STREAMS = "genfab.dev/streams-from"
"""On a streaming stage's worker Job: the upstream stage whose shards it takes as they finish."""
ANNOTATION_NO_PROGRESS = "genfab.dev/no-progress"
"""On a stage Job: why the operator last stopped one of its Pods (kept for the stage's failure message)."""
INDEX_KEY = "batch.kubernetes.io/job-completion-index"
"""Kubernetes puts a Pod's index in a label and an annotation of this name."""
MAX_NAME = 63
"""Job names end up in the `job-name` Pod label: at most 63 characters."""


class OwnerReference(TypedDict, total=False):
    apiVersion: str
    kind: str
    name: str
    uid: str
    controller: bool
    blockOwnerDeletion: bool


class ObjectMeta(TypedDict, total=False):
    name: str
    generateName: str
    namespace: str
    uid: str
    resourceVersion: str
    generation: int
    creationTimestamp: str
    deletionTimestamp: str
    labels: dict[str, str]
    annotations: dict[str, str]
    ownerReferences: list[OwnerReference]
    managedFields: list[Any]
    """(Dropped by the cache: `cache.kept`.)"""


class Condition(TypedDict, total=False):
    type: str
    status: str
    reason: str
    message: str
    lastTransitionTime: str


class ConfigMapVolume(TypedDict, total=False):
    name: str


class EmptyDirVolume(TypedDict, total=False):
    sizeLimit: str


class ClaimVolume(TypedDict, total=False):
    claimName: str
    readOnly: bool


class HostPathVolume(TypedDict, total=False):
    path: str
    type: str


class Volume(TypedDict, total=False):
    name: str
    configMap: ConfigMapVolume
    emptyDir: EmptyDirVolume
    persistentVolumeClaim: ClaimVolume
    hostPath: HostPathVolume


class VolumeMount(TypedDict, total=False):
    name: str
    mountPath: str
    readOnly: bool


class SecretKeySelector(TypedDict, total=False):
    name: str
    key: str
    optional: bool


class EnvVarSource(TypedDict, total=False):
    secretKeyRef: SecretKeySelector


class EnvVar(TypedDict, total=False):
    name: str
    value: str
    valueFrom: EnvVarSource


class ResourceRequirements(TypedDict, total=False):
    requests: dict[str, str]
    limits: dict[str, str]


class ContainerPort(TypedDict, total=False):
    name: str
    containerPort: int


class ExecAction(TypedDict, total=False):
    command: list[str]


class Probe(TypedDict, total=False):
    exec: ExecAction
    periodSeconds: int
    timeoutSeconds: int
    successThreshold: int
    failureThreshold: int


class Capabilities(TypedDict, total=False):
    drop: list[str]


class SeccompProfile(TypedDict, total=False):
    type: str


class SecurityContext(TypedDict, total=False):
    allowPrivilegeEscalation: bool
    readOnlyRootFilesystem: bool
    runAsNonRoot: bool
    capabilities: Capabilities


class PodSecurityContext(TypedDict, total=False):
    runAsNonRoot: bool
    runAsUser: int
    runAsGroup: int
    fsGroup: int
    seccompProfile: SeccompProfile


class Container(TypedDict, total=False):
    name: str
    image: str
    imagePullPolicy: str
    command: list[str]
    args: list[str]
    env: list[EnvVar]
    resources: ResourceRequirements
    ports: list[ContainerPort]
    volumeMounts: list[VolumeMount]
    terminationMessagePolicy: str
    securityContext: SecurityContext
    readinessProbe: Probe


class Toleration(TypedDict, total=False):
    key: str
    operator: str
    value: str
    effect: str
    tolerationSeconds: int


class PodSpec(TypedDict, total=False):
    nodeName: str
    subdomain: str
    restartPolicy: str
    serviceAccountName: str
    automountServiceAccountToken: bool
    enableServiceLinks: bool
    securityContext: PodSecurityContext
    containers: list[Container]
    volumes: list[Volume]
    nodeSelector: dict[str, str]
    tolerations: list[Toleration]
    priorityClassName: str


class PodTemplate(TypedDict, total=False):
    metadata: ObjectMeta
    spec: PodSpec


class ExitCodesRule(TypedDict, total=False):
    containerName: str
    operator: str
    values: list[int]


class PodConditionRule(TypedDict, total=False):
    type: str
    status: str


class PodFailurePolicyRule(TypedDict, total=False):
    action: str
    onExitCodes: ExitCodesRule
    onPodConditions: list[PodConditionRule]


class PodFailurePolicy(TypedDict, total=False):
    rules: list[PodFailurePolicyRule]


class JobSpec(TypedDict, total=False):
    suspend: bool
    completions: int
    parallelism: int
    completionMode: str
    backoffLimit: int
    backoffLimitPerIndex: int
    podFailurePolicy: PodFailurePolicy
    podReplacementPolicy: str
    ttlSecondsAfterFinished: int | None
    activeDeadlineSeconds: int
    template: PodTemplate


class JobStatus(TypedDict, total=False):
    conditions: list[Condition]
    completedIndexes: str
    failedIndexes: str
    active: int
    ready: int
    succeeded: int
    failed: int
    startTime: str
    completionTime: str


class Job(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: JobSpec
    status: JobStatus


class ServicePort(TypedDict, total=False):
    name: str
    port: int
    protocol: str


class ServiceSpec(TypedDict, total=False):
    clusterIP: str
    publishNotReadyAddresses: bool
    selector: dict[str, str]
    ports: list[ServicePort]


class Service(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: ServiceSpec


class LabelSelector(TypedDict, total=False):
    matchLabels: dict[str, str]


class PolicyPort(TypedDict, total=False):
    port: str | int
    protocol: str


class PolicyPeer(TypedDict, total=False):
    podSelector: LabelSelector
    namespaceSelector: LabelSelector


IngressRule = TypedDict("IngressRule", {"from": list[PolicyPeer], "ports": list[PolicyPort]}, total=False)
"""(`from` is a Python keyword, hence the functional form.)"""


class NetworkPolicySpec(TypedDict, total=False):
    podSelector: LabelSelector
    policyTypes: list[str]
    ingress: list[IngressRule]


class NetworkPolicy(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: NetworkPolicySpec


class ContainerStateWaiting(TypedDict, total=False):
    reason: str
    message: str


class ContainerStateRunning(TypedDict, total=False):
    startedAt: str


class ContainerStateTerminated(TypedDict, total=False):
    exitCode: int
    reason: str
    message: str
    finishedAt: str


class ContainerState(TypedDict, total=False):
    waiting: ContainerStateWaiting
    running: ContainerStateRunning
    terminated: ContainerStateTerminated


class ContainerStatus(TypedDict, total=False):
    name: str
    state: ContainerState
    lastState: ContainerState
    restartCount: int


class PodStatus(TypedDict, total=False):
    phase: str
    reason: str
    message: str
    startTime: str
    conditions: list[Condition]
    containerStatuses: list[ContainerStatus]


class Pod(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: PodSpec
    status: PodStatus


class ConfigMap(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    data: dict[str, str]


class Secret(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    data: dict[str, str]
    """Base64-encoded values (read into memory, never logged: genfab.operator.storage_access)."""


class ObjectReference(TypedDict, total=False):
    apiVersion: str
    kind: str
    name: str
    namespace: str
    uid: str


class Event(TypedDict, total=False):
    """A core/v1 Event as the operator posts it (`Kube.event`)."""

    apiVersion: str
    kind: str
    metadata: ObjectMeta
    involvedObject: ObjectReference
    type: str
    reason: str
    message: str
    source: dict[str, str]
    firstTimestamp: str
    lastTimestamp: str
    eventTime: str
    action: str
    count: int
    reportingComponent: str
    reportingInstance: str


class GenfabResource(TypedDict, total=False):
    """A SceneJob, DatasetJob or TuningRun as the API server sends it: its spec and status are validated by
    the API package's models (`genfab.api.resources.Resource`, `genfab.api.status.ResourceStatus`)."""

    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: dict[str, Any]
    status: dict[str, Any]


ListMeta = TypedDict("ListMeta", {"continue": str, "resourceVersion": str}, total=False)
"""A list's metadata (`continue` is a Python keyword, hence the functional form)."""


class PartialObject(TypedDict, total=False):
    """An object as a metadata-only list sends it (`application/json;as=PartialObjectMetadataList`)."""

    metadata: ObjectMeta


class JobList(TypedDict, total=False):
    metadata: ListMeta
    items: list[Job] | None
    """`null` when the list is empty (a Go nil slice the API server writes without omitempty)."""


class EventList(TypedDict, total=False):
    metadata: ListMeta
    items: list[Event] | None
    """`null` when the list is empty."""


class PartialObjectList(TypedDict, total=False):
    metadata: ListMeta
    items: list[PartialObject] | None
    """`null` when the list is empty (kube-apiserver answers a metadata-only list with no match so)."""


class LeaseSpec(TypedDict, total=False):
    holderIdentity: str
    leaseDurationSeconds: int
    acquireTime: str
    renewTime: str
    leaseTransitions: int


class Lease(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: LeaseSpec


@dataclass(frozen=True)
class Owner:
    """The genfab resource a child points back to (its ownerReference)."""

    api_version: str
    kind: str
    name: str
    namespace: str
    uid: str

    def reference(self) -> OwnerReference:
        return {"apiVersion": self.api_version, "kind": self.kind, "name": self.name, "uid": self.uid,
                "controller": True, "blockOwnerDeletion": True}


def child_name(resource: str, stage: PlannedStage) -> str:
    """`{resource}-{stage}-{hash10}`, the middle shortened so the whole fits in 63 characters."""
    base = f"{resource}-{stage.name}"[: MAX_NAME - 11].rstrip("-")
    return f"{base}-{stage.short_hash}"


def inventory_name(resource: str, stage: PlannedStage) -> str:
    """`{resource}-{stage}-{hash10}-inv`, shortened like `child_name`."""
    base = f"{resource}-{stage.name}"[: MAX_NAME - 15].rstrip("-")
    return f"{base}-{stage.short_hash}-inv"


def records_name(resource: str, request: str) -> str:
    """`{resource}-records-{hash10}`, shortened to fit; one per run's end (the hash is the request's, which
    says when the run ended)."""
    digest = hashlib.sha256(request.encode()).hexdigest()[:10]
    return f"{resource[: MAX_NAME - 19].rstrip('-')}-records-{digest}"


def resource_path(api_version: str, plural: str, namespace: str | None, name: str | None = None,
                  subresource: str | None = None) -> str:
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"
    if name:
        path += f"/{name}"
    if subresource:
        path += f"/{subresource}"
    return path


def custom_path(kind: str, namespace: str, name: str | None = None, subresource: str | None = None) -> str:
    return resource_path(f"{GROUP}/{VERSION}", PLURALS[kind], namespace, name, subresource)

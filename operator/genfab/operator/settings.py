"""Operator settings: command-line flags with environment defaults (the Helm chart sets the env)."""

from __future__ import annotations

import json
import os
import re
import socket
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError

from genfab.api.common import HostPath, Storage, Toleration
from genfab.api.families import FAMILIES
from genfab.api.types import DnsLabel, Quantity
from genfab.operator.policy import ClusterPolicy
from genfab.operator.read_budget import ReadBounds
from genfab.operator.sharding import Shard
from genfab.operator.streams import IDLE_RELEASE_SECONDS

DEFAULT_IMAGE = "ghcr.io/genfab/genfab-{family}:0.1.0"


def _env_number(name: str, default: float, kind: type[int] | type[float]) -> Any:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return kind(default)
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{name}: expected {'an integer' if kind is int else 'a number'}, got {raw!r}") from None


def _env_int(name: str, default: int) -> int:
    value: int = _env_number(name, default, int)
    return value


def _env_float(name: str, default: float) -> float:
    value: float = _env_number(name, default, float)
    return value


def _read_bounds() -> ReadBounds:
    """`GENFAB_READ_BOUNDS`: a JSON object of `ReadBounds` fields to change (e.g. `{"seconds": 10}`)."""
    defaults = ReadBounds()
    given = {re.sub(r"[A-Z]", lambda m: "_" + m.group().lower(), k): v  # the chart's camelCase
             for k, v in _env_json("GENFAB_READ_BOUNDS", dict[str, float], {}).items()}
    unknown = sorted(set(given) - set(vars(defaults)))
    if unknown:
        raise ValueError(f"GENFAB_READ_BOUNDS: unknown field(s) {', '.join(unknown)} (known: "
                         f"{', '.join(vars(defaults))})")
    return ReadBounds(**{k: type(getattr(defaults, k))(v) for k, v in given.items()})


def _env_json(name: str, schema: Any, default: Any) -> Any:
    """A JSON-valued setting (the chart renders these with `toJson`), validated with its API model so
    a bad chart value stops the operator at start with the variable and the field that is wrong."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return TypeAdapter(schema).validate_python(json.loads(raw))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise ValueError(f"{name}: {exc}") from None


def _env_quantity(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip() or default
    try:
        return str(TypeAdapter(Quantity).validate_python(value))
    except ValidationError as exc:
        raise ValueError(f"{name}: {exc.errors()[0]['msg']}") from None


def _env_shard() -> Shard | None:
    raw = os.environ.get("GENFAB_SHARD", "").strip()
    if not raw:
        return None
    try:
        return Shard.parse(raw)
    except ValueError as exc:
        raise ValueError(f"GENFAB_SHARD: {exc}") from None


def default_storage() -> Storage | None:
    value: Storage | None = _env_json("GENFAB_DEFAULT_STORAGE", Storage, None)
    return value


def default_images() -> dict[str, str]:
    """Image per stage family: `GENFAB_IMAGE_<FAMILY>` or the released image."""
    return {f: os.environ.get(f"GENFAB_IMAGE_{f.upper()}", DEFAULT_IMAGE.format(family=f)) for f in FAMILIES}


@dataclass(frozen=True)
class OperatorSettings:
    namespaces: tuple[str, ...] = ()
    """Namespaces to watch; empty means cluster-wide."""
    images: dict[str, str] = field(default_factory=default_images)
    gpu_resource: str = field(default_factory=lambda: os.environ.get("GENFAB_GPU_RESOURCE", "nvidia.com/gpu"))
    stage_service_account: str = field(
        default_factory=lambda: os.environ.get("GENFAB_STAGE_SERVICE_ACCOUNT", "genfab-stage"))
    """ServiceAccount of stage Pods: no RBAC rules, token not mounted (progress goes to storage)."""
    stage_network_policy: str | None = field(
        default_factory=lambda: os.environ.get("GENFAB_STAGE_NETWORK_POLICY") or None)
    """The chart's stage NetworkPolicy, which must exist in a namespace before Jobs run there (None:
    network policies are off)."""
    streaming: bool = field(default_factory=lambda: os.environ.get("GENFAB_STREAMING", "true").lower() == "true")
    """Whether a stage the plan lets stream from its upstream does (`stages.streaming`); off, every stage
    waits for its upstream stages to finish."""
    idle_release_seconds: float = field(default_factory=lambda: _env_float("GENFAB_IDLE_RELEASE_SECONDS",
                                                                           IDLE_RELEASE_SECONDS))
    """The least time a streaming stage's worker waiting for input keeps its GPU before the operator
    releases it (`stages.idleReleaseSeconds`); a stage whose workers' model load took longer keeps them that
    long (genfab.operator.streams)."""
    group_network_policy: bool = field(
        default_factory=lambda: os.environ.get("GENFAB_GROUP_NETWORK_POLICY", "true").lower() == "true")
    """Whether each process group (a gang stage's Pods) gets its own NetworkPolicy, created with its
    Job (`networkPolicy.processGroups`)."""
    stage_metrics_from: tuple[dict[str, Any], ...] = field(default_factory=lambda: tuple(
        _env_json("GENFAB_STAGE_METRICS_FROM", list[dict[str, Any]], [])))
    """Who may scrape a process group's metrics port (`networkPolicy.metricsFrom` when the chart's
    policies are on); empty: anyone, as for every other stage Pod."""
    custom_stage_credentials: bool = field(
        default_factory=lambda: os.environ.get("GENFAB_CUSTOM_STAGE_CREDENTIALS", "true").lower() == "true")
    """Whether custom stages get the storage Secret's credentials (`stages.customStageCredentials`)."""
    image_pull_policy: str = field(default_factory=lambda: os.environ.get("GENFAB_IMAGE_PULL_POLICY", "IfNotPresent"))
    run_as_user: int = field(default_factory=lambda: _env_int("GENFAB_STAGE_UID", 10001))
    stage_ephemeral_storage: str = field(default_factory=lambda: _env_quantity("GENFAB_STAGE_EPHEMERAL_STORAGE",
                                                                               "50Gi"))
    """Node disk per stage Pod when the resource sets none (`stages.ephemeralStorage`)."""
    progress_seconds: float = field(default_factory=lambda: _env_float("GENFAB_PROGRESS_SECONDS", 10.0))
    """How often the shard reports of a running resource are read from storage."""
    resync_seconds: float = field(default_factory=lambda: _env_float("GENFAB_RESYNC_SECONDS", 30.0))
    """Every unfinished resource is reconciled at least this often (progress, deadlines)."""
    relist_seconds: float = field(default_factory=lambda: _env_float("GENFAB_RELIST_SECONDS", 300.0))
    """How often the watched collections are listed again, to forget what was deleted while a watch was
    away (genfab.operator.relist)."""
    shard: Shard | None = field(default_factory=_env_shard)
    """This process's share of the resources when several operators split them (`--shard I/N`,
    `operator.shards`); None: all of them."""
    workers: int = field(default_factory=lambda: _env_int("GENFAB_WORKERS", 8))
    """Reconcile worker threads (one resource is never reconciled twice at once)."""
    metrics_port: int = field(default_factory=lambda: _env_int("GENFAB_METRICS_PORT", 8080))
    stage_metrics_port: int = 9090
    liveness_endpoint: str = field(
        default_factory=lambda: os.environ.get("GENFAB_LIVENESS_ENDPOINT", "http://0.0.0.0:8081/healthz"))
    watch_server_timeout: int = field(default_factory=lambda: _env_int("GENFAB_WATCH_SERVER_TIMEOUT", 300))
    watch_client_timeout: int = field(default_factory=lambda: _env_int("GENFAB_WATCH_CLIENT_TIMEOUT", 330))
    request_timeout: float = field(default_factory=lambda: _env_float("GENFAB_REQUEST_TIMEOUT", 30.0))
    default_storage: Storage | None = field(default_factory=default_storage)
    """`storage` for resources that set none (`GENFAB_DEFAULT_STORAGE`, JSON in the API's form)."""
    default_queue: str | None = field(default_factory=lambda: os.environ.get("GENFAB_DEFAULT_QUEUE") or None)
    """Kueue LocalQueue for resources without `queueName`."""
    kueue_elastic_jobs: bool = field(
        default_factory=lambda: os.environ.get("GENFAB_KUEUE_ELASTIC_JOBS", "true").lower() == "true")
    """Whether Kueue resizes a queued streaming stage's Job as an elastic Job (`kueue.elasticJobs`); off, queued
    resources do not stream (genfab.operator.streams.streams_under)."""
    gpu_node_selector: dict[str, str] = field(
        default_factory=lambda: _env_json("GENFAB_GPU_NODE_SELECTOR", dict[str, str], {}))
    """nodeSelector of GPU stage Pods, under the stage's own (stage keys win)."""
    gpu_tolerations: tuple[dict[str, Any], ...] = field(default_factory=lambda: tuple(
        t.to_yaml_dict() for t in _env_json("GENFAB_GPU_TOLERATIONS", list[Toleration], [])))
    """Tolerations of GPU stage Pods when the stage sets none."""
    leader_election: str | None = field(default_factory=lambda: os.environ.get("GENFAB_LEADER_ELECTION") or None)
    """Name of the Lease the replicas of an HA operator elect their one active replica on
    (genfab.operator.leader); None: this process reconciles alone."""
    pod_namespace: str = field(default_factory=lambda: os.environ.get("POD_NAMESPACE") or "default")
    """The operator's own namespace (the chart sets it from the downward API): where its Lease lives."""
    identity: str = field(default_factory=lambda: os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}")
    """This replica's name in the Lease (its Pod's name in a cluster)."""
    host_path_prefixes: tuple[str, ...] = field(default_factory=lambda: tuple(
        _env_json("GENFAB_HOST_PATH_PREFIXES", list[HostPath], [])))
    """Where `spec.models.hubCache` may mount a host path; empty disables host paths."""
    allowed_tolerations: tuple[dict[str, Any], ...] = field(default_factory=lambda: tuple(
        t.to_yaml_dict() for t in _env_json("GENFAB_ALLOWED_TOLERATIONS", list[Toleration], [])))
    allowed_node_selector_keys: tuple[str, ...] = field(default_factory=lambda: tuple(
        _env_json("GENFAB_ALLOWED_NODE_SELECTOR_KEYS", list[str], [])))
    allowed_priority_classes: tuple[str, ...] = field(default_factory=lambda: tuple(
        _env_json("GENFAB_ALLOWED_PRIORITY_CLASSES", list[str], [])))
    secret_names: tuple[str, ...] = field(default_factory=lambda: tuple(
        _env_json("GENFAB_SECRET_NAMES", list[DnsLabel], [])))
    """Storage Secrets the operator may read (its RBAC grants `get` on exactly these)."""
    storage_prefixes: dict[str, tuple[str, ...]] = field(default_factory=lambda: {
        ns: tuple(p) for ns, p in _env_json("GENFAB_STORAGE_PREFIXES", dict[str, list[str]], {}).items()})
    """Namespace -> storage URI prefixes its resources may use (`*`: the others); empty: unrestricted."""
    ambient_credentials: bool = field(
        default_factory=lambda: os.environ.get("GENFAB_AMBIENT_CREDENTIALS", "false").lower() == "true")
    """Resources without a Secret may use the operator's own (ambient) storage credentials."""
    storage_endpoints: tuple[str, ...] = field(default_factory=lambda: tuple(
        _env_json("GENFAB_STORAGE_ENDPOINTS", list[str], [])))
    """S3 endpoints a resource may name besides the default storage's (`storage.endpoints`)."""
    file_prefixes: tuple[str, ...] = field(default_factory=lambda: tuple(
        _env_json("GENFAB_FILE_PREFIXES", list[str], [])))
    """Folders `file://` URIs may name in the cluster (`storage.filePrefixes`); empty: none."""
    read_bounds: ReadBounds = field(default_factory=lambda: _read_bounds())
    """What one reconcile may spend on a tenant's storage (`read_budget.ReadBounds`; the chart value
    operator.readBounds overrides fields)."""

    def storage_for(self, given: Storage | None) -> Storage | None:
        """The storage a resource's stage Pods reach, and the operator reads as they do: the resource's
        `spec.storage`, else the default (the chart's `storage` values; None: ambient credentials, AWS)."""
        return given if given is not None else self.default_storage

    @property
    def policy(self) -> ClusterPolicy:
        """What resources may ask of the cluster (besides the chart's own GPU placement)."""
        default = self.default_storage.secret_ref if self.default_storage is not None else None
        return ClusterPolicy(self.host_path_prefixes, self.allowed_tolerations, self.allowed_node_selector_keys,
                             self.allowed_priority_classes, self.gpu_tolerations, tuple(self.gpu_node_selector),
                             self.secret_names, default.name if default is not None else None,
                             self.ambient_credentials, self.storage_prefixes, self.custom_stage_credentials,
                             tuple(e for e in (*self.storage_endpoints, self.default_storage.endpoint
                                               if self.default_storage is not None else None) if e),
                             self.file_prefixes)

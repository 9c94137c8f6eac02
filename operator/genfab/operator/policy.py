"""What a namespace user may ask of the cluster through a genfab resource, decided by the cluster's
admins (the chart's values) and checked by the operator before anything is created. Pure.

A resource gives its user no more power than a Job in their own namespace, often less:
- host paths (`spec.models.hubCache`) only under the prefixes the admins list (none by default);
- tolerations, nodeSelector keys and priority classes only as the admins list them, besides the
  chart's own GPU placement (a control-plane selector or an `operator: Exists` toleration is
  refused unless listed).
The CRD rejects what is always wrong (a relative path, `/`); these rules depend on the cluster, so
they become an InvalidSpec condition naming the field, and no Job is created.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from genfab.api.common import CommonSpec, StageResources
from genfab.api.errors import FieldError


@dataclass(frozen=True)
class ClusterPolicy:
    host_path_prefixes: tuple[str, ...] = ()
    """Directories under which `hubCache` may mount a host path (empty: host paths are disabled)."""
    tolerations: tuple[Mapping[str, Any], ...] = ()
    """Tolerations a resource may set (the chart's GPU tolerations are always allowed too)."""
    node_selector_keys: tuple[str, ...] = ()
    """nodeSelector keys a resource may set (the chart's GPU nodeSelector keys too)."""
    priority_classes: tuple[str, ...] = ()
    """PriorityClass names a resource may set."""
    gpu_tolerations: tuple[Mapping[str, Any], ...] = field(default=())
    gpu_node_selector_keys: tuple[str, ...] = ()
    secret_names: tuple[str, ...] = ()
    """Storage Secrets the operator may read (a resource's `storage.secretRef` must be one)."""
    default_secret: str | None = None
    """The chart's storage Secret, used by resources that set no `storage`."""
    ambient_credentials: bool = False
    """Whether a resource without a Secret may use the operator's own storage credentials."""
    storage_prefixes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Namespace -> the storage URI prefixes its resources may read and write (`{namespace}` stands
    for the namespace; `*` applies to namespaces not listed). Empty: storage is not restricted."""
    custom_stage_credentials: bool = True
    """Whether custom stages get the storage Secret's credentials."""


def under(path: str, prefix: str) -> bool:
    base = prefix.rstrip("/")
    return path == base or path.startswith(base + "/")


def _placements(spec: CommonSpec) -> Iterator[tuple[str, StageResources]]:
    yield "spec.resources", spec.resources
    for name, override in spec.stages.items():
        yield f"spec.stages.{name}", override
    for i, custom in enumerate(spec.custom_stages):
        if custom.resources is not None:
            yield f"spec.customStages[{i}].resources", custom.resources


def _same_toleration(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Equal as Kubernetes reads them (operator Equal is the default; absent and empty are alike)."""
    def norm(t: Mapping[str, Any]) -> tuple[Any, ...]:
        return (t.get("key") or "", t.get("operator") or "Equal", t.get("value") or "", t.get("effect") or "",
                t.get("tolerationSeconds"))
    return norm(a) == norm(b)


def _listed(items: Sequence[str]) -> str:
    return ", ".join(items) if items else "none"


def _storage_errors(spec: CommonSpec, policy: ClusterPolicy) -> list[FieldError]:
    """The operator reads a resource's storage (sample listing, shard reports) with the resource's
    Secret only, never with its own credentials, and only Secrets the chart names."""
    if not spec.output.startswith("s3://"):
        return []
    secret = spec.storage.secret_ref.name if spec.storage is not None and spec.storage.secret_ref else None
    where = "spec.storage.secretRef"
    if secret is None and spec.storage is None:
        secret, where = policy.default_secret, "spec.storage"
    if secret is None:
        if policy.ambient_credentials:
            return []
        return [FieldError(where, "a Secret with the storage credentials is required on this cluster: the operator "
                           "never reads a resource's storage with its own credentials (set storage.secretRef, or "
                           "the chart's storage.secret.name as the namespaces' default)")]
    errors = []
    if secret not in policy.secret_names:
        errors.append(FieldError(f"{where}.name" if where.endswith("secretRef") else where,
                                 f"Secret {secret!r} is not one the operator may read (allowed: "
                                 f"{_listed(policy.secret_names)}; chart values rbac.secretNames, "
                                 "storage.secret.name)"))
    if not policy.custom_stage_credentials:
        errors.extend(FieldError(f"spec.customStages[{i}]", "not allowed here: custom stages get no storage "
                                 "credentials on this cluster (chart value stages.customStageCredentials), and "
                                 f"this one would need Secret {secret!r} to reach the resource's storage")
                      for i in range(len(spec.custom_stages)))
    return errors


def allowed_prefixes(policy: ClusterPolicy, namespace: str) -> tuple[str, ...] | None:
    """The storage prefixes of `namespace` (None: unrestricted)."""
    if not policy.storage_prefixes:
        return None
    found = policy.storage_prefixes.get(namespace, policy.storage_prefixes.get("*", ()))
    return tuple(p.replace("{namespace}", namespace) for p in found)


def _uris(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every storage URI in a spec (`s3://`, `file://`), with its camelCase field path."""
    if isinstance(value, str):
        if value.startswith(("s3://", "file://")):
            yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _uris(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _uris(item, f"{path}[{i}]")


def _prefix_errors(spec: CommonSpec, policy: ClusterPolicy, namespace: str) -> list[FieldError]:
    prefixes = allowed_prefixes(policy, namespace)
    if prefixes is None:
        return []
    return [FieldError(path, f"outside this namespace's storage (allowed prefixes for {namespace}: "
                       f"{_listed(prefixes)}; chart value storage.prefixes)", repr(uri))
            for path, uri in _uris(spec.to_yaml_dict(), "spec") if not any(under(uri, p) for p in prefixes)]


def policy_errors(spec: CommonSpec, policy: ClusterPolicy, namespace: str = "") -> list[FieldError]:
    """Every field of `spec` the cluster's policy does not allow, with what is allowed."""
    errors: list[FieldError] = _prefix_errors(spec, policy, namespace)
    hub = spec.models.hub_cache if spec.models is not None else None
    if hub is not None and not any(under(hub, p) for p in policy.host_path_prefixes):
        allowed = (f"allowed prefixes: {_listed(policy.host_path_prefixes)}" if policy.host_path_prefixes
                   else "host paths are disabled on this cluster")
        errors.append(FieldError("spec.models.hubCache", f"host path not allowed ({allowed}; admins list them in the "
                                 "chart value stages.hostPathPrefixes); use models.uri or "
                                 "models.persistentVolumeClaim", repr(hub)))
    errors.extend(_storage_errors(spec, policy))
    tolerations = (*policy.gpu_tolerations, *policy.tolerations)
    keys = (*policy.gpu_node_selector_keys, *policy.node_selector_keys)
    for where, r in _placements(spec):
        for i, t in enumerate(r.tolerations or ()):
            value = t.to_yaml_dict()
            if not any(_same_toleration(value, allowed) for allowed in tolerations):
                errors.append(FieldError(f"{where}.tolerations[{i}]", "toleration not allowed on this cluster "
                                         f"(allowed: {_listed([str(dict(a)) for a in tolerations])}; chart value "
                                         "stages.placement.allowedTolerations)", repr(value)))
        for key in (r.node_selector or {}):
            if key not in keys:
                errors.append(FieldError(f"{where}.nodeSelector", f"nodeSelector key {key!r} not allowed on this "
                                         f"cluster (allowed keys: {_listed(keys)}; chart value "
                                         "stages.placement.allowedNodeSelectorKeys)"))
        if r.priority_class_name is not None and r.priority_class_name not in policy.priority_classes:
            errors.append(FieldError(f"{where}.priorityClassName", "priority class not allowed on this cluster "
                                     f"(allowed: {_listed(policy.priority_classes)}; chart value "
                                     "stages.placement.allowedPriorityClasses)", repr(r.priority_class_name)))
    return errors

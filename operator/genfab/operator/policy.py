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
from genfab.api.families import CUSTOM_FAMILY
from genfab.api.pipeline import tenant_code
from genfab.planner import Plan


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
    storage_endpoints: tuple[str, ...] = ()
    """S3 endpoints a resource's `storage.endpoint` may name (the chart's own and `storage.endpoints`);
    empty: only the default (AWS) endpoint, i.e. none may be named."""
    file_prefixes: tuple[str, ...] = ()
    """Folders `file://` URIs may name (`storage.filePrefixes`); empty: `file://` is refused."""


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


def s3_fields(spec: CommonSpec) -> list[str]:
    """The field paths of every `s3://` URI of a spec (output, inputs, manifests, models, checkpoints)."""
    return [path for path, uri in _uris(spec.to_yaml_dict(), "spec") if uri.startswith("s3://")]


def storage_secret(spec: CommonSpec, policy: ClusterPolicy) -> str | None:
    """The Secret a resource's storage is read with: its own `storage.secretRef`, else (no `storage` at
    all) the chart's default; None: none (only the operator's own credentials would be left)."""
    if spec.storage is not None:
        return spec.storage.secret_ref.name if spec.storage.secret_ref is not None else None
    return policy.default_secret


def _storage_errors(spec: CommonSpec, policy: ClusterPolicy) -> list[FieldError]:
    """The operator reads a resource's storage (sample listing, manifests, model identities, shard
    reports) with the resource's Secret only, never with its own credentials, and only Secrets the
    chart names: every `s3://` URI of the resource needs one, not only its output."""
    s3 = s3_fields(spec)
    if not s3:
        return []
    secret = storage_secret(spec, policy)
    where = "spec.storage.secretRef" if spec.storage is not None else "spec.storage"
    if secret is None:
        if policy.ambient_credentials:
            return []
        return [FieldError(where, f"a Secret with the storage credentials is required on this cluster for {s3[0]}: "
                           "the operator never reads a resource's storage with its own credentials (set "
                           "storage.secretRef, or the chart's storage.secret.name as the namespaces' default)")]
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


def tenant_image_errors(plan: Plan, spec: CommonSpec, policy: ClusterPolicy) -> list[FieldError]:
    """With `stages.customStageCredentials: false`, an image the tenant chose for a built-in stage
    (`spec.images.<family>`, `spec.stages.<name>.image`, a pipeline's image such as
    `worldexplorer.seva.image`), or settings that make a built-in stage run the resource's code
    (`StageDecl.tenant_code`: Zero123++'s pipeline.py), is the tenant's code like a custom stage's:
    refused where the stage would get the storage Secret, as a custom stage is (the Job builder gives it
    no credentials either way)."""
    if policy.custom_stage_credentials or storage_secret(spec, policy) is None:
        return []
    found: dict[str, tuple[str, list[str]]] = {}
    for stage in plan.stages:
        if stage.family == CUSTOM_FAMILY or stage.image is None or not stage.run:
            continue
        override = spec.stages.get(stage.name)
        if override is not None and override.image is not None:
            where = f"spec.stages.{stage.name}.image"
        elif getattr(spec.images, stage.family, None) is not None:
            where = f"spec.images.{stage.family}"
        else:
            where = f"spec ({plan.pipeline}'s image setting for stage {stage.name})"
        found.setdefault(where, (stage.image, []))[1].append(stage.name)
    errors = [FieldError(where, f"not allowed here: stage(s) {', '.join(names)} would run this image with the "
                         "storage credentials, and images chosen in a resource get none on this cluster (chart value "
                         "stages.customStageCredentials); use the chart's images", repr(image))
              for where, (image, names) in found.items()]
    for stage in plan.stages:  # built-in stages whose settings make them run the resource's code
        code = tenant_code(plan.pipeline, stage.name, stage.config) if stage.run and stage.image is None else None
        if code is not None and stage.family != CUSTOM_FAMILY:
            errors.append(FieldError(code[0], f"not allowed here: stage {stage.name} would run {code[1]} with the "
                                     "storage credentials, and code a resource chooses gets none on this cluster "
                                     "(chart value stages.customStageCredentials)"))
    return errors


def allowed_prefixes(policy: ClusterPolicy, namespace: str) -> tuple[str, ...] | None:
    """The storage prefixes of `namespace` (None: unrestricted)."""
    if not policy.storage_prefixes:
        return None
    found = policy.storage_prefixes.get(namespace, policy.storage_prefixes.get("*", ()))
    return tuple(p.replace("{namespace}", namespace) for p in found)


def file_roots(policy: ClusterPolicy, namespace: str) -> tuple[str, ...]:
    """The folders a namespace's `file://` storage is confined to, symbolic links included (in the
    operator and in its stage Pods): its `file://` storage prefixes where the chart binds namespaces
    to prefixes, else `storage.filePrefixes`. A URI outside them is refused by `policy_errors`; this
    keeps what such a URI leads to, through links, inside them too."""
    prefixes = allowed_prefixes(policy, namespace)
    if prefixes is None:
        return policy.file_prefixes
    return tuple(p.removeprefix("file://") for p in prefixes if p.startswith("file://"))


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


def resolved_input_errors(plan: Plan, policy: ClusterPolicy, namespace: str, spec: CommonSpec | None = None
                          ) -> list[FieldError]:
    """The storage rules again after `ref:` inputs were replaced by what the referenced resources' status
    says (a status is not a spec the policy checked): a stage reads only this namespace's storage, and an
    `s3://` input needs the resource's Secret as any `s3://` URI of its spec does (`_storage_errors`)."""
    inputs = [(stage.name, uri) for stage in plan.stages if stage.run for uri in stage.input_uris]
    errors = []
    if spec is not None and storage_secret(spec, policy) is None and not policy.ambient_credentials:
        errors += [FieldError(f"stage {name} input", "a referenced resource's output is in S3, and this resource names "
                              "no Secret to read it with: the operator never reads a resource's storage with its own "
                              "credentials (set storage.secretRef)", repr(uri))
                   for name, uri in inputs if uri.startswith("s3://")][:1]
    prefixes = allowed_prefixes(policy, namespace)
    if prefixes is None:
        return errors
    return errors + [FieldError(f"stage {name} input", "a referenced resource's output is outside this namespace's "
                                f"storage (allowed prefixes for {namespace}: {_listed(prefixes)}; chart value "
                                "storage.prefixes)", repr(uri))
                     for name, uri in inputs
                     if uri.startswith(("s3://", "file://")) and not any(under(uri, p) for p in prefixes)]


def _prefix_errors(spec: CommonSpec, policy: ClusterPolicy, namespace: str) -> list[FieldError]:
    prefixes = allowed_prefixes(policy, namespace)
    if prefixes is None:
        return []
    return [FieldError(path, f"outside this namespace's storage (allowed prefixes for {namespace}: "
                       f"{_listed(prefixes)}; chart value storage.prefixes)", repr(uri))
            for path, uri in _uris(spec.to_yaml_dict(), "spec") if not any(under(uri, p) for p in prefixes)]


def _endpoint_and_file_errors(spec: CommonSpec, policy: ClusterPolicy) -> list[FieldError]:
    """The operator reads a resource's storage itself: only stores the admins list (never an arbitrary
    address inside the cluster), and never its own filesystem unless a shared folder is listed."""
    errors = []
    endpoint = spec.storage.endpoint if spec.storage is not None else None
    if endpoint is not None and endpoint.rstrip("/") not in {e.rstrip("/") for e in policy.storage_endpoints}:
        errors.append(FieldError("spec.storage.endpoint", "not an object store this cluster allows (allowed: "
                                 f"{_listed(policy.storage_endpoints)}; chart values storage.endpoint, "
                                 "storage.endpoints)", repr(endpoint)))
    for path, uri in _uris(spec.to_yaml_dict(), "spec"):
        if uri.startswith("file://") and not any(under(uri.removeprefix("file://"), p)
                                                 for p in policy.file_prefixes):
            errors.append(FieldError(path, "file:// is this cluster's local disk and is not allowed here (allowed "
                                     f"folders: {_listed(policy.file_prefixes)}; chart value storage.filePrefixes); "
                                     "use s3://", repr(uri)))
    return errors


def policy_errors(spec: CommonSpec, policy: ClusterPolicy, namespace: str = "") -> list[FieldError]:
    """Every field of `spec` the cluster's policy does not allow, with what is allowed."""
    errors: list[FieldError] = _prefix_errors(spec, policy, namespace)
    errors.extend(_endpoint_and_file_errors(spec, policy))
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

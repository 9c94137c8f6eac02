"""`GenfabCluster`: kmock's KubernetesEmulator with the API-server behaviour kopf and genfab need.

kmock 0.8 serves discovery and request parsing; this subclass keeps its own object store and adds
what kmock lacks: the `/api/v1/namespaces` path, proper 404/409 statuses, `kind` on lists,
uid/resourceVersion/generation bookkeeping (generation bumps on spec changes only), the status
subresource, merge patches with null deletion, label selectors, watches that resume from a
resourceVersion (410 when too old), and owner-reference garbage collection. The fake Job
controller and kubelet live in `kubelet.py`. Test-only code: nothing here ships in genfab.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import itertools
import json
import re
import secrets
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import aiohttp.web
import attrs
import kmock
from kmock._internal import enums

from genfab.api.resources import PLURALS as GENFAB_PLURALS
from genfab.operator.cluster_support import JOB_FEATURES

Res = tuple[str, str, str]
"""(group, version, plural)."""
ObjKey = tuple[Res, str, str]
"""(resource, namespace, name); namespace '' for cluster-scoped objects."""

RESOURCES: dict[str, tuple[str, bool, tuple[str, ...]]] = {
    "genfab.dev/v1alpha1/scenejobs": ("SceneJob", True, ("status",)),
    "genfab.dev/v1alpha1/datasetjobs": ("DatasetJob", True, ("status",)),
    "genfab.dev/v1alpha1/tuningruns": ("TuningRun", True, ("status",)),
    "batch/v1/jobs": ("Job", True, ("status",)),
    "v1/pods": ("Pod", True, ("status",)),
    "v1/configmaps": ("ConfigMap", True, ()),
    "v1/services": ("Service", True, ()),
    "v1/secrets": ("Secret", True, ()),
    "v1/serviceaccounts": ("ServiceAccount", True, ()),
    "networking.k8s.io/v1/networkpolicies": ("NetworkPolicy", True, ()),
    "v1/events": ("Event", True, ()),
    "v1/namespaces": ("Namespace", False, ()),
}
HISTORY = 200_000  # watch events kept for resuming watches; older resourceVersions get 410 Gone


RBAC_VERBS = {enums.action.WATCH: "watch", enums.action.LIST: "list", enums.action.CREATE: "create",
              enums.action.FETCH: "get", enums.action.DELETE: "delete"}
HTTP_VERBS = {"PATCH": "patch", "PUT": "update"}


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def res_of(text: str) -> Res:
    parts = text.split("/")
    return ("", parts[0], parts[1]) if len(parts) == 2 else (parts[0], parts[1], parts[2])


def res_for(plural: str) -> Res:
    """The served resource with this plural (`jobs` -> batch/v1/jobs)."""
    return next(res_of(p) for p in RESOURCES if p.endswith(f"/{plural}"))


KUBERNETES_1_20_DROPS = frozenset(name for name, (_, release) in JOB_FEATURES.items()
                                  if tuple(int(p) for p in release.split(".")) > (1, 20))
"""The Job spec fields genfab sends that kube-apiserver 1.20 does not keep: every one whose feature came
later (genfab.operator.cluster_support; the realcluster tier sees 1.20 drop them)."""


def field_match(obj: dict[str, Any], selector: str | None) -> bool:
    """A field selector of `path=value` terms (`involvedObject.name=j,reason=FailedCreate`), as the API
    server applies it to a list."""
    for term in filter(None, (selector or "").split(",")):
        path, _, wanted = term.partition("=")
        value: Any = obj
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if str(value if value is not None else "") != wanted:
            return False
    return True


def owner_finalizer_access(body: Any) -> set[tuple[str, str, str]]:
    """The right OwnerReferencesPermissionEnforcement checks on a create: `update` on each owner's
    finalizers where the ownerReference sets blockOwnerDeletion (no request names it)."""
    refs = ((body or {}).get("metadata") or {}).get("ownerReferences") or [] if isinstance(body, dict) else []
    return {(ref["apiVersion"].rpartition("/")[0], f"{GENFAB_PLURALS.get(ref['kind'], ref['kind'].lower() + 's')}"
             "/finalizers", "update") for ref in refs if ref.get("blockOwnerDeletion")}


def api_version(res: Res) -> str:
    return f"{res[0]}/{res[1]}" if res[0] else res[1]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: dicts merge, null deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


Requirement = tuple[str, str, frozenset[str]]
"""(key, operator, values) with operator in, notin, exists, !exists."""


def parse_selector(text: str | None) -> list[Requirement]:
    """Kubernetes label selector syntax: `a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`, `a notin (x)`."""
    if not text:
        return []
    terms, depth, cur = [], 0, ""
    for ch in text:  # split on commas outside parentheses
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            terms.append(cur.strip())
            cur = ""
        else:
            cur += ch
    terms.append(cur.strip())
    out: list[Requirement] = []
    for term in filter(None, terms):
        words = term.split(None, 1)
        if len(words) == 2 and words[1].split(None, 1)[0] in ("in", "notin"):
            op, values = words[1].split(None, 1)
            out.append((words[0], op, frozenset(v.strip() for v in values.strip().strip("()").split(","))))
        elif "!=" in term:
            key, _, value = term.partition("!=")
            out.append((key.strip(), "notin", frozenset({value.strip()})))
        elif "=" in term:
            key, _, value = term.replace("==", "=").partition("=")
            out.append((key.strip(), "in", frozenset({value.strip()})))
        elif term.startswith("!"):
            out.append((term[1:].strip(), "!exists", frozenset()))
        else:
            out.append((term, "exists", frozenset()))
    return out


def matches(obj: dict[str, Any], requirements: list[Requirement]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for key, op, values in requirements:
        present = key in labels
        if (op == "exists" and not present) or (op == "!exists" and present):
            return False
        if op in ("in", "notin") and (labels.get(key) in values) != (op == "in"):
            return False
    return True


ShardRange = tuple[str, int, int]
"""(metadata field, start, end): FNV-1a 64 of the field's value in [start, end)."""
_SHARD_RANGE = re.compile(r"^shardRange\(\s*object\.metadata\.(uid|namespace)\s*,\s*'0x([0-9a-f]{1,17})'\s*,"
                          r"\s*'0x([0-9a-f]{1,17})'\s*\)$")


def parse_shard_selector(text: str | None) -> list[ShardRange]:
    """Kubernetes 1.36's `shardSelector` (feature gate ShardedListAndWatch): `shardRange(object.metadata.uid,
    '0x<start>', '0x<end>')` terms joined by `||`, one field throughout. ValueError as the server refuses."""
    if not text:
        return []
    out = []
    for term in text.split("||"):
        m = _SHARD_RANGE.match(term.strip())
        if m is None:
            raise ValueError(f"invalid shard selector: {term.strip()!r}")
        start, end = int(m[2], 16), int(m[3], 16)
        if start >= end or end > 1 << 64:
            raise ValueError(f"invalid shard selector: shard range start {m[2]} must be less than end {m[3]}")
        out.append((m[1], start, end))
    if len({field for field, _, _ in out}) > 1:
        raise ValueError("invalid shard selector: all shard ranges must use the same field")
    return out


def _fnv64a(data: bytes) -> int:
    return functools.reduce(lambda h, byte: ((h ^ byte) * 0x100000001B3) % (1 << 64), data, 0xCBF29CE484222325)


def in_shard(obj: dict[str, Any], ranges: list[ShardRange]) -> bool:
    if not ranges:
        return True
    value = _fnv64a(str((obj.get("metadata") or {}).get(ranges[0][0], "")).encode())
    return any(start <= value < end for _, start, end in ranges)


MAX_CONFIGMAP_DATA = 1 << 20
MAX_OBJECT = 1536 * 1024  # etcd's default request limit, which bounds every object


def check_size(obj: dict[str, Any]) -> None:
    """The API server's size limits: a ConfigMap's data at most 1 MiB, any object at most ~1.5 MiB."""
    if obj.get("kind") == "ConfigMap":
        data = sum(len(k) + len(str(v).encode()) for k, v in (obj.get("data") or {}).items())
        if data > MAX_CONFIGMAP_DATA:
            raise ValueError(f'ConfigMap "{obj["metadata"]["name"]}" is invalid: []: Too long: may not be more than '
                             f"{MAX_CONFIGMAP_DATA} bytes")
    if len(json.dumps(obj)) > MAX_OBJECT:
        raise ValueError("etcdserver: request is too large")


def spec_of(obj: dict[str, Any]) -> str:
    """Everything but metadata and status, canonically: a change to it bumps `metadata.generation`."""
    return json.dumps({k: v for k, v in obj.items() if k not in ("metadata", "status")}, sort_keys=True)


def status_error(code: int, reason: str, message: str) -> aiohttp.web.Response:
    return aiohttp.web.json_response({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
                                      "code": code, "reason": reason, "message": message}, status=code)


@attrs.define(kw_only=True)
class GenfabCluster(kmock.KubernetesEmulator):
    store: dict[ObjKey, dict[str, Any]] = attrs.field(factory=dict, init=False)
    history: deque[tuple[int, Res, dict[str, Any]]] = attrs.field(factory=lambda: deque(maxlen=HISTORY), init=False)
    watchers: dict[Res, set[asyncio.Queue[tuple[int, dict[str, Any], float]]]] = attrs.field(factory=dict,
                                                                                             init=False)
    request_counts: Counter[str] = attrs.field(factory=Counter, init=False)
    """`METHOD resource` -> requests served (the benchmark's API requests per resource)."""
    access: set[tuple[str, str, str]] = attrs.field(factory=set, init=False)
    """(API group, resource[/subresource], RBAC verb) of every request served: the RBAC the operator needs."""
    rv: Iterator[int] = attrs.field(factory=lambda: itertools.count(1), init=False)
    last_rv: int = attrs.field(default=0, init=False)
    hooks: list[Callable[[str, Res, dict[str, Any]], None]] = attrs.field(factory=list, init=False)
    """Called on every stored change (`ADDED`/`MODIFIED`/`DELETED`, resource, object)."""
    faults: Counter[str] = attrs.field(factory=Counter, init=False)
    """`METHOD plural` -> how many of the next such requests answer 500 (API outage injection)."""
    refusals: dict[tuple[str, str], tuple[int, str, str]] = attrs.field(factory=dict, init=False)
    """(`METHOD resource`, namespace) -> (code, reason, message) every such request is answered with, as an
    admission plugin, a quota or RBAC refuses it, until removed; `refused` counts them."""
    refused: Counter[tuple[str, str]] = attrs.field(factory=Counter, init=False)
    sharded_watches: bool = attrs.field(default=True, init=False)
    """Whether `shardSelector` filters lists and watches (Kubernetes 1.36 with ShardedListAndWatch);
    False: ignored, as by every older API server."""
    drops_job_fields: frozenset[str] = attrs.field(default=frozenset(), init=False)
    """Job spec fields this server does not keep (stored and answered without them), as Kubernetes 1.20
    drops `completionMode` and the others it does not know (`KUBERNETES_1_20_DROPS`)."""
    watches_held: bool = attrs.field(default=False, init=False)
    """While True no watch is sent an event (they are kept in the history only): what happens then is
    what a watch that was away missed."""
    expired_before: int = attrs.field(default=0, init=False)
    """A watch from a resource version up to this one is answered 410 Gone (`expire_watches`)."""
    watch_lag: float = attrs.field(default=0.0, init=False)
    """Seconds every watch event reaches its watchers late (in order), as from a loaded API server or a
    busy client: a write's answer then comes before the watch's events of the versions before it."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for path, (kind, namespaced, subresources) in RESOURCES.items():
            self.resources[path] = kmock.ResourceInfo(kind=kind, namespaced=namespaced, subresources=subresources,
                                                      verbs={"get", "list", "watch", "create", "patch", "delete"})

    # -- HTTP entry: the namespaces path kmock cannot parse, then our own K8s object semantics
    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        path = raw_request.path.rstrip("/")
        if path == "/api/v1/namespaces" or (path.startswith("/api/v1/namespaces/") and path.count("/") == 4):
            await raw_request.read()
            name = path.split("/")[4] if path.count("/") == 4 else None
            self.request_counts[f"{raw_request.method} namespaces"] += 1
            verb = "get" if name else ("watch" if raw_request.query.get("watch") == "true" else "list")
            self.access.add(("", "namespaces", verb))
            return await self._serve_namespaces(raw_request, name)
        return await super().__call__(raw_request)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        if request.resource is None or request.resource.plural is None:
            return await super(kmock.KubernetesEmulator, self)._handle(request)
        res: Res = (request.resource.group or "", request.resource.version or "", request.resource.plural)
        op = f"{request.method.value.upper()} {res[2]}"
        self.request_counts[op] += 1
        self.access.add((res[0], res[2] + (f"/{request.subresource}" if request.subresource else ""),
                         RBAC_VERBS.get(request.action) or HTTP_VERBS.get(request.method.value.upper(), "unknown")))
        if request.action == enums.action.CREATE:
            self.access |= owner_finalizer_access(request.data)
        if self.faults[op] > 0:
            self.faults[op] -= 1
            return status_error(500, "InternalError", "injected fault: etcd leader changed")
        if f"{api_version(res)}/{res[2]}" not in RESOURCES:
            return status_error(404, "NotFound", f"the server could not find the requested resource {res}")
        ns = request.namespace or ""
        refusal = self.refusals.get((op, ns))
        if refusal is not None:
            self.refused[(op, ns)] += 1
            return status_error(*refusal)
        action = request.action
        if action in (enums.action.WATCH, enums.action.LIST):
            try:
                shard = parse_shard_selector(request.params.get("shardSelector") if self.sharded_watches else None)
            except ValueError as exc:
                return status_error(400, "BadRequest", str(exc))
        if action == enums.action.WATCH:
            return await self._watch(request, res, ns, shard)
        if action == enums.action.LIST:
            items = [o for o in self._select(res, ns, request.params.get("labelSelector")) if in_shard(o, shard)
                     and field_match(o, request.params.get("fieldSelector"))]
            shard_info = {"shardInfo": {"selector": request.params["shardSelector"]}} if shard else {}
            return aiohttp.web.json_response({
                "apiVersion": api_version(res), "kind": f"{RESOURCES[self._path(res)][0]}List",
                "metadata": {"resourceVersion": str(self.last_rv), **shard_info}, "items": items})
        if action == enums.action.CREATE:
            data = dict(request.data or {})
            if res[2] == "jobs" and self.drops_job_fields and isinstance(data.get("spec"), dict):
                data["spec"] = {k: v for k, v in data["spec"].items() if k not in self.drops_job_fields}
            if request.params.get("dryRun") == "All":  # admitted and answered as stored, nothing stored
                data["apiVersion"], data["kind"] = api_version(res), RESOURCES[self._path(res)][0]
                return aiohttp.web.json_response(data, status=201)
            return self._create(res, ns, data)
        key = (res, ns, request.name or "")
        if action == enums.action.FETCH:
            obj = self.store.get(key)
            return aiohttp.web.json_response(obj) if obj else self._not_found(key)
        if action == enums.action.UPDATE:
            content_type = request.headers.get("Content-Type", "")
            if "json-patch" in content_type and "merge" not in content_type:
                return status_error(415, "UnsupportedMediaType", "this emulator supports merge patches only")
            return self._patch(key, request.data or {}, request.subresource)
        if action == enums.action.DELETE:
            options = request.data if isinstance(request.data, dict) else {}
            wanted = (options.get("preconditions") or {}).get("uid")
            found = self.store.get(key)
            if wanted and found is not None and found["metadata"]["uid"] != wanted:  # as the API server does
                return status_error(409, "Conflict", f"Precondition failed: UID in precondition: {wanted}, UID in "
                                    f"object meta: {found['metadata']['uid']}")
            return self._delete(key, cascade=options.get("propagationPolicy", "Background") != "Orphan")
        return status_error(405, "MethodNotAllowed", f"{request.method} is not supported here")

    @staticmethod
    def _path(res: Res) -> str:
        return f"{api_version(res)}/{res[2]}"

    def _not_found(self, key: ObjKey) -> aiohttp.web.Response:
        return status_error(404, "NotFound", f'{key[0][2]} "{key[2]}" not found')

    def _select(self, res: Res, ns: str, selector: str | None) -> list[dict[str, Any]]:
        checks = parse_selector(selector)
        return [o for (r, n, _), o in self.store.items() if r == res and (not ns or n == ns) and matches(o, checks)]

    # -- store operations (also used in-process by the fake controllers and tests)
    def _emit(self, type_: str, res: Res, obj: dict[str, Any]) -> None:
        rv = int(obj["metadata"]["resourceVersion"])
        event = {"type": type_, "object": obj}
        self.history.append((rv, res, event))
        at = time.monotonic()
        for q in () if self.watches_held else self.watchers.get(res, ()):
            q.put_nowait((rv, event, at))
        for hook in self.hooks:
            hook(type_, res, obj)

    def _bump(self, obj: dict[str, Any]) -> None:
        self.last_rv = next(self.rv)
        obj["metadata"]["resourceVersion"] = str(self.last_rv)

    def create(self, res: Res, ns: str, body: dict[str, Any], owned: bool = False) -> dict[str, Any]:
        """Store a new object. `owned`: `body` is the caller's to give away (a request's freshly parsed
        JSON), so it is stored as it is instead of copied."""
        obj = body if owned else copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)
        if ns:
            meta["namespace"] = ns
        key = (res, meta.get("namespace", "") if RESOURCES[self._path(res)][1] else "", meta.get("name", ""))
        if not key[2]:
            raise ValueError("metadata.name is required")
        if key in self.store:
            raise KeyError(key)
        obj["apiVersion"], obj["kind"] = api_version(res), RESOURCES[self._path(res)][0]
        check_size(obj)
        meta.update(uid=str(uuid.uuid4()), generation=1, creationTimestamp=now_rfc3339())
        self._bump(obj)
        self.store[key] = obj
        self._emit("ADDED", res, obj)
        return obj

    def _create(self, res: Res, ns: str, body: dict[str, Any]) -> aiohttp.web.Response:
        try:
            return aiohttp.web.json_response(self.create(res, ns, body, owned=True), status=201)
        except KeyError:
            return status_error(409, "AlreadyExists", f'{res[2]} "{body["metadata"]["name"]}" already exists')
        except ValueError as exc:
            return status_error(422, "Invalid", str(exc))

    def patch(self, key: ObjKey, patch: dict[str, Any], subresource: str | None = None) -> dict[str, Any] | None:
        obj = self.store.get(key)
        if obj is None:
            return None
        res = key[0]
        has_status = "status" in RESOURCES[self._path(res)][2]
        if subresource == "status":
            patch = {"status": patch.get("status")} if "status" in patch else {}
        elif has_status and res[0] not in ("batch", ""):
            patch = {k: v for k, v in patch.items() if k != "status"}  # CRDs: status only via /status
        new = merge_patch(obj, patch)
        new["metadata"] = {**new["metadata"], "uid": obj["metadata"]["uid"], "name": obj["metadata"]["name"]}
        check_size(new)
        if any(k not in ("metadata", "status") for k in patch) and spec_of(obj) != spec_of(new):
            new["metadata"]["generation"] = int(obj["metadata"].get("generation", 1)) + 1
        self._bump(new)
        meta = new["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self.store.pop(key)
            self._emit("DELETED", res, new)
            self._collect(meta["uid"])
            return new
        self.store[key] = new
        self._emit("MODIFIED", res, new)
        return new

    def _patch(self, key: ObjKey, patch: dict[str, Any], subresource: str | None) -> aiohttp.web.Response:
        wanted = (patch.get("metadata") or {}).get("uid") if isinstance(patch.get("metadata"), dict) else None
        found = self.store.get(key)
        if wanted and found is not None and found["metadata"]["uid"] != wanted:  # a patch's uid is a precondition
            return status_error(409, "Conflict", f"Precondition failed: UID in precondition: {wanted}, UID in object "
                                f"meta: {found['metadata']['uid']}")
        try:
            obj = self.patch(key, patch, subresource)
        except ValueError as exc:
            return status_error(422, "Invalid", str(exc))
        return aiohttp.web.json_response(obj) if obj is not None else self._not_found(key)

    def delete(self, key: ObjKey, cascade: bool = True) -> dict[str, Any] | None:
        obj = self.store.get(key)
        if obj is None:
            return None
        if obj["metadata"].get("finalizers"):
            if not obj["metadata"].get("deletionTimestamp"):
                return self.patch(key, {"metadata": {"deletionTimestamp": now_rfc3339()}})
            return obj
        self.store.pop(key)
        obj = copy.deepcopy(obj)
        self._bump(obj)
        self._emit("DELETED", key[0], obj)
        if cascade:
            self._collect(obj["metadata"]["uid"])
        return obj

    def _delete(self, key: ObjKey, cascade: bool) -> aiohttp.web.Response:
        obj = self.delete(key, cascade)
        return aiohttp.web.json_response(obj) if obj is not None else self._not_found(key)

    def _collect(self, owner_uid: str) -> None:
        """Owner-reference garbage collection: delete every dependent of a deleted owner."""
        dependents = [k for k, o in self.store.items()
                      if any(r.get("uid") == owner_uid for r in o["metadata"].get("ownerReferences") or [])]
        for key in dependents:
            self.delete(key)

    def objects(self, plural: str, ns: str | None = None, selector: str | None = None) -> list[dict[str, Any]]:
        return self._select(res_for(plural), ns or "", selector)

    # -- watches
    def expire_watches(self) -> None:
        """End every open watch; a watch again from any version seen so far is answered 410 Gone, as when
        the API server has compacted the events since (etcd's compaction, a watch cache's window)."""
        self.expired_before = self.last_rv
        for queues in self.watchers.values():
            for q in queues:
                q.put_nowait((-1, {}, 0.0))

    async def _watch(self, request: kmock.Request, res: Res, ns: str,
                     shard: list[ShardRange]) -> aiohttp.web.StreamResponse:
        checks = parse_selector(request.params.get("labelSelector"))
        since = request.params.get("resourceVersion")
        timeout = float(request.params.get("timeoutSeconds") or 300)
        raw = request._raw_request
        assert raw is not None
        queue: asyncio.Queue[tuple[int, dict[str, Any], float]] = asyncio.Queue()
        self.watchers.setdefault(res, set()).add(queue)
        try:
            response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
            if since and since != "0":
                start = int(since)
                oldest = self.history[0][0] if self.history else 0
                if (len(self.history) == self.history.maxlen and start < oldest) or start <= self.expired_before:
                    # As kube-apiserver answers it: a stream of one ERROR event (its cacher's errWatcher), not an
                    # HTTP error, once the request is past authorization and its version parsed.
                    await response.prepare(raw)
                    await response.write(json.dumps({"type": "ERROR", "object": {
                        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "code": 410,
                        "reason": "Expired", "message": f"too old resource version: {start} ({oldest})"}}).encode()
                        + b"\n")
                    await response.write_eof()
                    return response
                backlog = [(rv, e) for rv, r, e in self.history if r == res and rv > start]
            else:
                backlog = [(int(o["metadata"]["resourceVersion"]), {"type": "ADDED", "object": o})
                           for o in self._select(res, ns, None)]
            await response.prepare(raw)
            seen = 0

            async def send(rv: int, event: dict[str, Any]) -> None:
                obj = event["object"]
                if ((ns and obj["metadata"].get("namespace") != ns) or not matches(obj, checks)
                        or not in_shard(obj, shard)):
                    return
                await response.write(json.dumps(event).encode() + b"\n")

            for rv, event in backlog:
                seen = max(seen, rv)
                await send(rv, event)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    rv, event, at = await asyncio.wait_for(queue.get(), left)
                except TimeoutError:
                    break
                if rv < 0:  # ended by `expire_watches`
                    break
                if self.watch_lag:
                    await asyncio.sleep(max(0.0, at + self.watch_lag - time.monotonic()))
                if rv > seen:
                    await send(rv, event)
            await response.write_eof()
            return response
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        finally:
            self.watchers[res].discard(queue)

    async def _serve_namespaces(self, raw: aiohttp.web.BaseRequest, name: str | None) -> aiohttp.web.StreamResponse:
        names = sorted({k[1] for k in self.store if k[1]} | {k[2] for k in self.store if k[0][2] == "namespaces"})
        items = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, "resourceVersion": "1"},
                  "status": {"phase": "Active"}} for n in names]
        if name is not None:
            found = next((i for i in items if i["metadata"]["name"] == name), None)
            return aiohttp.web.json_response(found) if found else status_error(404, "NotFound",
                                                                                f'namespaces "{name}" not found')
        if raw.query.get("watch") == "true":
            response = aiohttp.web.StreamResponse()
            await response.prepare(raw)
            for item in items:
                await response.write(json.dumps({"type": "ADDED", "object": item}).encode() + b"\n")
            await asyncio.sleep(float(raw.query.get("timeoutSeconds") or 5))
            await response.write_eof()
            return response
        return aiohttp.web.json_response({"apiVersion": "v1", "kind": "NamespaceList",
                                          "metadata": {"resourceVersion": str(self.last_rv)}, "items": items})

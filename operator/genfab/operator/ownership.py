"""Which objects in a tenant's namespace the operator made, and so may change or delete. Pure.

A tenant can create a Job, ConfigMap, Service or NetworkPolicy in their own namespace with any name,
genfab's labels and an owner reference to their own resource's UID. None of that proves the operator
made it. What does: the object's UID, recorded in the resource's status when the operator created it
(`status.children`; the status subresource is the operator's to write: the chart grants tenants no
`*/status` rule). The operator observes only Jobs whose UID is recorded, deletes only recorded objects
and with that UID as a precondition (a same-named object created since is not touched), and patches
Jobs with the UID as a precondition too.

Operators before `status.children` recorded a stage's Job by name only (`status.stages[].jobName`,
also the operator's to write): such a Job, still controlled by the resource, is taken as made and its
UID recorded (`made_before_children`), so an upgrade neither loses nor refuses running Jobs.

One window remains: an object created just before the operator stopped, whose UID never reached the
status. When a create meets an existing object under the exact name the operator would give it
(which ends in the stage's config hash) and its UID is not recorded, it is adopted only if it is in
every field the operator sets what the operator would make now (`made_like`): genfab's labels, the
resource as controller, and the same content (a Job's Pods: image, command, arguments, environment,
service account; a ConfigMap's data; a Service's or NetworkPolicy's spec). Anything else under that
name (an allow-all NetworkPolicy put there first, a tenant's own ConfigMap) is refused: the stage
says the name is taken, and nothing is adopted or later deleted.

The functions here are pure; `Children` applies them to the API server for the controller.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from genfab.api.status import MAX_CHILDREN, ChildRef
from genfab.operator.kube import Body, Conflict, Kube
from genfab.operator.objects import Key, Owner
from genfab.operator.sharding import LABEL_BUCKET

log = logging.getLogger("genfab.operator")

Child = tuple[str, str]
"""(kind, name) of an object in the resource's namespace."""


def recorded(status: Mapping[str, Any] | None) -> dict[Child, str]:
    """(kind, name) -> UID of the children a status records (malformed entries are ignored)."""
    out: dict[Child, str] = {}
    for item in (status or {}).get("children") or []:
        if isinstance(item, Mapping) and all(isinstance(item.get(f), str) for f in ("kind", "name", "uid")):
            out[(item["kind"], item["name"])] = item["uid"]
    return out


def child_refs(owned: Mapping[Child, str]) -> list[ChildRef] | None:
    """The status form of `owned` (the newest MAX_CHILDREN; None when there are none)."""
    refs = [ChildRef(kind=kind, name=name, uid=uid)
            for (kind, name), uid in list(owned.items())[-MAX_CHILDREN:]]
    return refs or None


def contains(actual: Any, wanted: Any) -> bool:
    """Whether `actual` holds everything `wanted` says (dicts: every key of `wanted`, recursively; lists:
    the same length, item by item; anything else: equal). Fields a server adds are ignored."""
    if isinstance(wanted, Mapping):
        return isinstance(actual, Mapping) and all(k in actual and contains(actual[k], v) for k, v in wanted.items())
    if isinstance(wanted, list):
        return isinstance(actual, list) and len(actual) == len(wanted) and all(
            contains(a, w) for a, w in zip(actual, wanted, strict=True))
    return bool(actual == wanted)


def _content(obj: Mapping[str, Any]) -> Any:
    """What an object of genfab's does: a Job's Pods (what runs, as whom, with which environment), a
    ConfigMap's data, a Service's or NetworkPolicy's spec."""
    kind = obj.get("kind")
    if kind == "ConfigMap":
        return {"data": obj.get("data") or {}}
    if kind != "Job":
        return {"spec": obj.get("spec") or {}}
    spec = obj.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") or {}
    return {"spec": {
        "completionMode": spec.get("completionMode"), "completions": spec.get("completions"),
        "template": {"spec": {
            "serviceAccountName": pod.get("serviceAccountName"),
            "containers": [{k: c[k] for k in ("image", "command", "args", "env") if k in c}
                           for c in pod.get("containers") or []],
        }},
    }}


def made_like(existing: Mapping[str, Any], built: Mapping[str, Any], owner_uid: str) -> str:
    """"" when `existing` is in every field the operator sets what it built (`built`); else why not."""
    meta = existing.get("metadata") or {}
    labels = {k: v for k, v in ((built.get("metadata") or {}).get("labels") or {}).items()
              if k != LABEL_BUCKET}  # derived from the owner's UID (checked below); older Jobs lack it
    if not labels.items() <= (meta.get("labels") or {}).items():
        return "it lacks genfab's labels"
    if not any(r.get("uid") == owner_uid and r.get("controller") for r in meta.get("ownerReferences") or []):
        return "the resource is not its controller"
    if not contains(_content(existing), _content(built)):
        return "its content is not what genfab makes"
    return ""


def made_before_children(existing: Mapping[str, Any], name: str, previous: Any, owner_uid: str) -> bool:
    """Whether `existing` is a stage Job an operator without `status.children` made: the status (which
    only the operator writes) names it as a stage's Job, no child is recorded at all, and the resource
    controls it. Used only while the status records no children (an upgrade)."""
    if previous is None or previous.children or not any(s.job_name == name for s in previous.stages):
        return False
    refs = (existing.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("uid") == owner_uid and r.get("controller") for r in refs)


class NameTaken(Exception):
    """An object of the name a child would have exists, and this operator did not make it."""


class Children:
    """The objects the operator made for each resource: those its status records (`status_of`), plus
    those created since the status was last written, less those deleted since (`written` folds them in
    once the status is written)."""

    def __init__(self, kube: Kube, status_of: Callable[[Key], Mapping[str, Any] | None]) -> None:
        self.kube = kube
        self._status_of = status_of
        self._made: dict[Key, dict[Child, str]] = {}
        self._gone: dict[Key, set[Child]] = {}

    def owned(self, key: Key) -> dict[Child, str]:
        """The children whose UID this operator recorded (the resource's status), or created since."""
        owned = recorded(self._status_of(key))
        owned.update(self._made.get(key, {}))
        for child in self._gone.get(key, ()):
            owned.pop(child, None)
        return owned

    def uid(self, key: Key, kind: str, name: str) -> str | None:
        return self.owned(key).get((kind, name))

    def mine(self, key: Key, obj: Mapping[str, Any], kind: str = "Job") -> bool:
        """Whether `obj` (from the watch cache) is the very object this operator made under its name."""
        meta = obj.get("metadata") or {}
        return self.uid(key, kind, meta.get("name", "")) == meta.get("uid")

    def uid_precondition(self, key: Key, job: str) -> dict[str, str]:
        """`metadata.uid` for a Job patch: the API server refuses the patch (409) if the Job of that name
        is another object. Observed Jobs are recorded ones, so the UID is known; never sent as null."""
        uid = self.uid(key, "Job", job)
        return {"uid": uid} if uid else {}

    def adopt(self, key: Key, kind: str, name: str, uid: str) -> None:
        """Record `uid` as made by this operator (created now, or proven made before a restart)."""
        self._made.setdefault(key, {})[(kind, name)] = uid
        self._gone.get(key, set()).discard((kind, name))

    def create(self, key: Key, owner: Owner, kind: str, path: str, built: Body) -> tuple[Body, bool]:
        """Create `built`, or take the existing object of its name if this operator made it: its UID is
        recorded, or (made just before a restart, its UID never written) it is in every field what
        `built` says. Anything else under the name raises NameTaken."""
        obj, created = self.kube.create_if_absent(path, built)
        name, uid = obj["metadata"]["name"], obj["metadata"].get("uid", "")
        if not created and self.uid(key, kind, name) != uid:
            why = made_like(obj, built, owner.uid)
            if why:
                raise NameTaken(f"{kind} {name} exists in namespace {owner.namespace} and genfab did not create it "
                                f"({why}); genfab neither uses nor deletes it. Delete or rename it, or rename the "
                                "resource")
        self.adopt(key, kind, name, uid)
        return obj, created

    def delete(self, key: Key, kind: str, path: str) -> None:
        """Delete a child this operator recorded making, by its UID (a same-named object made since by
        anyone else is not touched); an object it never recorded is left alone."""
        name = path.rpartition("/")[2]
        uid = self.uid(key, kind, name)
        if uid is None:
            return
        try:
            self.kube.delete(path, uid=uid)
        except Conflict:
            log.warning("%s %s/%s: %s %s was replaced by an object genfab did not make: left alone", *key, kind, name)
        self._gone.setdefault(key, set()).add((kind, name))

    def written(self, key: Key) -> None:
        """The status now records what `owned` said: nothing pending any more."""
        self._made.pop(key, None)
        self._gone.pop(key, None)

    forget = written
    """The resource is deleted: its children go with it (owner references)."""

"""The shapes the operator types Kubernetes objects by (genfab.operator.objects) are Kubernetes' own: every
field each TypedDict declares, at every depth, is a field of the kubernetes client's model of that object
(its `attribute_map`, generated from the API's OpenAPI schema). A misspelt or invented field fails here,
where at run time it would only ever read as missing."""

from __future__ import annotations

import re
import types
import typing
from typing import Any, TypedDict, get_args, get_origin, get_type_hints, is_typeddict

import kubernetes.client as k8s
import pytest

from genfab.operator import objects

ROOTS = {
    objects.Job: "V1Job", objects.JobList: "V1JobList", objects.Pod: "V1Pod", objects.ConfigMap: "V1ConfigMap",
    objects.Secret: "V1Secret", objects.Event: "CoreV1Event", objects.EventList: "CoreV1EventList",
    objects.Lease: "V1Lease", objects.Service: "V1Service", objects.NetworkPolicy: "V1NetworkPolicy",
    objects.OwnerReference: "V1OwnerReference",
}
"""Each shape the operator reads or writes whole, and the client's model of it."""
NOT_KUBERNETES = {objects.GenfabResource}
"""genfab's own kinds: their spec and status are the API package's models."""
METADATA_LIST = {objects.PartialObjectList}
"""A metadata-only list (the client has no model of it: its `metadata` is a ListMeta, each item's an
ObjectMeta; checked by `test_a_metadata_only_list_is_kubernetes_own`)."""


def _model_of(openapi_type: str) -> str | None:
    """`V1JobSpec`, `list[V1Container]` -> the model's name; None for a plain type (`str`, `dict(str, str)`)."""
    found = re.fullmatch(r"(?:list\[)?(\w+)\]?", openapi_type)
    name = found[1] if found else None
    return name if name is not None and hasattr(k8s, name) else None


def _shape_in(annotation: Any) -> Any:
    """The TypedDict an annotation holds (itself, or a list's items; `| None` aside: a list's `items`
    may be null), else None."""
    if isinstance(annotation, types.UnionType):
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    if is_typeddict(annotation):
        return annotation
    if get_origin(annotation) is list and is_typeddict(get_args(annotation)[0]):
        return get_args(annotation)[0]
    return None


def mismatches(shape: Any, model: str, path: str = "") -> list[str]:
    """Every field of `shape`, at every depth, that the client's `model` does not have."""
    cls = getattr(k8s, model)
    by_json = {json: attr for attr, json in cls.attribute_map.items()}
    out = []
    for key, annotation in get_type_hints(shape).items():
        where = f"{path}{shape.__name__}.{key}"
        if key not in by_json:
            out.append(f"{where}: no such field in {model}")
            continue
        inner, inner_model = _shape_in(annotation), _model_of(cls.openapi_types[by_json[key]])
        if inner is not None and inner_model is not None:
            out += mismatches(inner, inner_model, f"{where} -> ")
        elif inner is not None:
            out.append(f"{where}: a shape where {model} has {cls.openapi_types[by_json[key]]}")
    return out


@pytest.mark.parametrize(("shape", "model"), list(ROOTS.items()), ids=[s.__name__ for s in ROOTS])
def test_every_field_the_operator_declares_is_kubernetes_own(shape: Any, model: str) -> None:
    assert mismatches(shape, model) == []


def test_every_shape_is_checked_from_some_root() -> None:
    """A shape added to objects.py is checked: reached from a root above, or named as not Kubernetes'."""
    reached: set[Any] = set()

    def walk(shape: Any) -> None:
        if shape in reached:
            return
        reached.add(shape)
        for annotation in get_type_hints(shape).values():
            inner = _shape_in(annotation)
            if inner is not None:
                walk(inner)

    for root in (*ROOTS, *NOT_KUBERNETES, *METADATA_LIST):
        walk(root)
    declared = {v for v in vars(objects).values() if is_typeddict(v)}
    assert declared - reached == set()


def test_a_metadata_only_list_is_kubernetes_own() -> None:
    hints = get_type_hints(objects.PartialObjectList)
    assert set(hints) == {"metadata", "items"}
    assert mismatches(hints["metadata"], "V1ListMeta") == []
    item = _shape_in(hints["items"])
    assert set(get_type_hints(item)) == {"metadata"}  # (the client has no PartialObjectMetadata either)
    assert mismatches(get_type_hints(item)["metadata"], "V1ObjectMeta") == []


class Spec(TypedDict, total=False):
    completions: int
    parallelisim: int


class Misspelt(TypedDict, total=False):
    metadata: objects.ObjectMeta
    spec: Spec


def test_the_check_finds_a_misspelt_field_at_any_depth() -> None:
    assert mismatches(Misspelt, "V1Job") == ["Misspelt.spec -> Spec.parallelisim: no such field in V1JobSpec"]
    assert typing.get_type_hints(objects.IngressRule)["from"]  # a Python keyword: the functional form

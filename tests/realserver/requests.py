"""Requests to the realserver tier's API server: a resource's path in the tier's namespace, a document
under a name of its own, and creating it."""

from __future__ import annotations

import copy
import itertools
from typing import Any

from genfab.api.resources import GROUP, PLURALS, VERSION
from tests.realserver import server as real

NS = "genfab-rules"
MERGE = "application/merge-patch+json"
_names = itertools.count()


def path_of(kind: str, name: str | None = None, sub: str | None = None, ns: str = NS) -> str:
    out = f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/{PLURALS[kind]}"
    return out + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")


def fresh(doc: dict[str, Any]) -> dict[str, Any]:
    """The document under a name of its own, in the tier's namespace."""
    doc = copy.deepcopy(doc)
    doc["metadata"] = {**doc.get("metadata", {}), "name": f"r{next(_names)}", "namespace": NS}
    return doc


def create(apiserver: real.RealApiServer, doc: dict[str, Any]) -> Any:
    return apiserver.request("POST", path_of(doc["kind"]), doc)

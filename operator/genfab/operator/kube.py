"""Thin Kubernetes I/O: plain REST requests over one urllib3 connection pool (`connection.py` says
where the API server is and how to authenticate).

Every call is a plain REST request returning JSON dicts (the builders produce dicts too).
Errors are classified once here: 404 -> NotFound, 409 -> Conflict, 5xx/429/timeouts/connection
errors -> Temporary (the work queue retries those with backoff), anything else -> Permanent.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

import urllib3

from genfab.operator.connection import Connection
from genfab.operator.objects import Event, GenfabResource, Job, Pod, resource_path

log = logging.getLogger("genfab.operator")
Body = TypeVar("Body", bound=Mapping[str, Any])
"""An object the operator sends (a TypedDict of genfab.operator.objects, or a manifest of genfab.operator.builders)."""
MERGE_PATCH = "application/merge-patch+json"
USER_AGENT = "genfab-operator"


class KubeError(Exception):
    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class NotFound(KubeError):
    pass


class Conflict(KubeError):
    pass


class Temporary(KubeError):
    """Worth retrying: server errors, throttling, timeouts, connection failures."""


class Permanent(KubeError):
    pass


class Kube:
    def __init__(self, connection: Connection, timeout: float = 30.0) -> None:
        self.connection = connection
        self.timeout = timeout
        host = connection.server
        self.manager = manager = connection.pool_manager()
        # The API server's connection pool, taken once: the pool manager's per-request lookup (URL
        # parsing and a pool key built from its settings) was ~7 % of the operator's time at 1,000
        # SceneJobs (benchmarks/results/operator.md). Behind a proxy every request names the whole URL.
        self._pool: urllib3.HTTPConnectionPool | None = (
            None if isinstance(manager, urllib3.ProxyManager) else manager.connection_from_url(host))
        self._prefix = urlsplit(host).path.rstrip("/") if self._pool is not None else host

    def request(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None,
                content_type: str = "application/json", accept: str = "application/json") -> Any:
        """One REST call with the connection's auth (a token file read again when due) over its TLS
        connection pool. Bodies are JSON dicts already; nothing walks them before sending."""
        headers = {"User-Agent": USER_AGENT, "Content-Type": content_type, "Accept": accept}
        params = list((query or {}).items())
        url = self._prefix + path + (f"?{urlencode(params)}" if params else "")
        payload = None if body is None else json.dumps(body)
        timeout = urllib3.Timeout(total=self.timeout)
        try:
            auth = self.connection.auth_header()  # a token file being rotated: worth retrying too
            if auth:
                headers["Authorization"] = auth
            if self._pool is not None:
                resp = self._pool.urlopen(method, url, body=payload, headers=headers, timeout=timeout,
                                          redirect=False)
            else:
                resp = self.manager.request(method, url, body=payload, headers=headers, timeout=timeout)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise Temporary(f"{method} {path}: {type(exc).__name__}: {exc}") from None
        if not 200 <= resp.status <= 299:
            raise _classify(resp.status, resp.reason, resp.data, method, path)
        return json.loads(resp.data) if resp.data else None

    # -- verbs
    # The API server's answers are JSON objects of the kind the path names: a caller types what it reads
    # by the kind's shape (genfab.operator.objects), and what it creates comes back as the same kind.
    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def create(self, path: str, body: Body) -> Body:
        created: Body = self.request("POST", path, body)
        return created

    def create_if_absent(self, path: str, body: Body) -> tuple[Body, bool]:
        """(object, created): a 409 returns the existing object, which the caller must check is its own."""
        try:
            return self.create(path, body), True
        except Conflict:
            existing: Body = self.get(f"{path}/{body['metadata']['name']}")
            return existing, False

    def patch(self, path: str, body: Mapping[str, object]) -> Any:
        return self.request("PATCH", path, body, content_type=MERGE_PATCH)

    def delete(self, path: str, propagation: str = "Background", uid: str | None = None) -> None:
        """Delete (a missing object is no error). `uid`: only that object; another one of the same name
        raises Conflict (the API server's precondition check)."""
        options: dict[str, Any] = {"propagationPolicy": propagation}
        if uid:
            options["preconditions"] = {"uid": uid}
        with contextlib.suppress(NotFound):  # already gone: deletion is idempotent
            self.request("DELETE", path, options)

    def event(self, involved: GenfabResource | Job | Pod, type_: str, reason: str, message: str,
              component: str = "genfab-operator") -> None:
        """A core/v1 Event on `involved` (best effort: never fails a reconcile)."""
        meta = involved["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body: Event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": involved["apiVersion"], "kind": involved["kind"],
                               "name": meta["name"], "namespace": meta["namespace"], "uid": meta.get("uid", "")},
            "type": type_, "reason": reason, "message": message[:1024], "source": {"component": component},
            "firstTimestamp": now, "lastTimestamp": now, "eventTime": now, "count": 1,
            "reportingComponent": component, "reportingInstance": component, "action": reason,
        }
        try:
            self.create(resource_path("v1", "events", meta["namespace"]), body)
        except KubeError as exc:
            log.warning("event %s on %s/%s not posted: %s", reason, meta["namespace"], meta["name"], exc)


def _classify(status: int, reason: str | None, body: bytes | None, method: str, path: str) -> KubeError:
    try:
        message = json.loads(body or b"{}").get("message") or reason
    except (ValueError, AttributeError):
        message = reason
    text = f"{method} {path}: {status} {message}"
    if status == 404:
        return NotFound(text, status)
    if status == 409:
        return Conflict(text, status)
    if status in (0, 429) or status >= 500:
        return Temporary(text, status)
    return Permanent(text, status)

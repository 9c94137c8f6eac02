"""Kubernetes Events about resources, posted off the reconcile path (best effort, like kopf's poster)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from genfab.operator.kube import Kube
from genfab.operator.objects import GenfabResource

log = logging.getLogger("genfab.operator")
EVENT_DEFER_SECONDS = 10.0
"""Longest an Event waits for the reconcile queue to drain before it is posted anyway."""


class EventPoster:
    """Events are posted after the reconciles that made them: while reconciles are queued or running
    (`busy`: a burst of new resources), an event waits until at most `EVENT_DEFER_SECONDS` after it was
    queued, so its request, the API server's time and the GIL go to starting Jobs first (with shards,
    each one's queue drains early, but its workers are still busy). The deadline counts from queueing,
    so under a queue that never drains Events are late, not throttled."""

    def __init__(self, kube: Kube, busy: Callable[[], bool], size: int = 10_000) -> None:
        self.kube = kube
        self._busy = busy
        self._events: queue.Queue[tuple[float, GenfabResource, str, str, str]] = queue.Queue(maxsize=size)
        """(when queued, involved object, type, reason, message)."""

    def post(self, body: GenfabResource, type_: str, reason: str, message: str) -> None:
        try:
            self._events.put_nowait((time.monotonic(), body, type_, reason, message))
        except queue.Full:
            meta = body.get("metadata", {})
            log.warning("event queue full: dropped %s on %s/%s", reason, meta.get("namespace"), meta.get("name"))

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                queued, body, type_, reason, message = self._events.get(timeout=1.0)
            except queue.Empty:
                continue
            deadline = queued + EVENT_DEFER_SECONDS
            while self._busy() and time.monotonic() < deadline and not stop.wait(0.05):
                pass
            self.kube.event(body, type_, reason, message)

"""One active replica: leader election on a `coordination.k8s.io/v1` Lease, as client-go's leaderelection
package does it (kopf has none of its own, and its peering pauses every replica of equal priority).

Every replica watches and keeps its cache and work queue warm; only the Lease's holder reconciles. The
holder renews the Lease every `retry` seconds; another replica takes it over once it has seen the same
record, unrenewed, for `duration` seconds (measured on its own clock from when it saw the record change,
so clock skew between nodes does not matter). A holder that cannot renew within `renew_deadline` stops
leading and exits (a new Pod starts as a follower); one stopped cleanly gives the Lease up at once.
A killed holder is replaced within `duration + retry` seconds (17 s with the defaults).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from genfab.operator.kube import Conflict, Kube, KubeError, NotFound
from genfab.operator.objects import Lease, LeaseSpec, ObjectMeta, resource_path

log = logging.getLogger("genfab.operator")
LEASES = ("coordination.k8s.io/v1", "leases")


@dataclass(frozen=True)
class LeaseTiming:
    duration: float = 15.0
    """leaseDurationSeconds: how long followers wait on an unrenewed record (client-go's default)."""
    renew_deadline: float = 10.0
    """How long the holder keeps leading while its renewals fail."""
    retry: float = 2.0
    """How often the holder renews and followers look."""


Step = Literal["create", "take", "renew", "wait"]


def next_step(lease: Lease | None, identity: str, unchanged_for: float) -> Step:
    """What a replica does with the Lease it read (None: there is none): create it, take it over (free,
    or its holder's record unchanged for longer than its duration), renew it (its own), or wait."""
    if lease is None:
        return "create"
    spec = lease.get("spec", {})
    holder = spec.get("holderIdentity", "")
    if holder == identity:
        return "renew"
    if not holder or unchanged_for > float(spec.get("leaseDurationSeconds", 0)):
        return "take"
    return "wait"


def _micro_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(self, kube: Kube, namespace: str, name: str, identity: str, on_started: Callable[[], None],
                 on_stopped: Callable[[], None], timing: LeaseTiming = LeaseTiming()) -> None:
        self.kube, self.namespace, self.name, self.identity = kube, namespace, name, identity
        self.on_started, self.on_stopped, self.timing = on_started, on_stopped, timing
        self.leading = False
        self._seen: tuple[str, str, str] | None = None
        """The last record read: (holder, renewTime, resourceVersion)."""
        self._seen_at = time.monotonic()
        self._renewed_at = 0.0

    @property
    def _path(self) -> str:
        return resource_path(LEASES[0], LEASES[1], self.namespace, self.name)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self._once()
            except KubeError as exc:
                log.warning("leader election (lease %s/%s): %s", self.namespace, self.name, exc)
            if self.leading and time.monotonic() - self._renewed_at > self.timing.renew_deadline:
                log.error("lease %s/%s not renewed for %.0f s: no longer leading", self.namespace, self.name,
                          self.timing.renew_deadline)
                self.leading = False
                self.on_stopped()
                return
            stop.wait(self.timing.retry)
        if self.leading:
            self.release()

    def _once(self) -> None:
        try:
            lease: Lease | None = self.kube.get(self._path)
        except NotFound:
            lease = None
        if lease is not None:
            held, meta = lease.get("spec", {}), lease.get("metadata", {})
            seen = (held.get("holderIdentity", ""), held.get("renewTime", ""), meta.get("resourceVersion", ""))
            if seen != self._seen:
                self._seen, self._seen_at = seen, time.monotonic()
        step = next_step(lease, self.identity, time.monotonic() - self._seen_at)
        if step == "wait":
            return
        now = _micro_time()
        spec: LeaseSpec = {**lease.get("spec", {})} if lease is not None else {}
        if step != "renew":
            spec["acquireTime"] = now
            spec["leaseTransitions"] = spec.get("leaseTransitions", 0) + (lease is not None)
        spec |= {"holderIdentity": self.identity, "leaseDurationSeconds": int(self.timing.duration), "renewTime": now}
        written: ObjectMeta = {"name": self.name, "namespace": self.namespace}
        if lease is not None:  # the resourceVersion read: another replica's write in between is a 409
            written["resourceVersion"] = lease.get("metadata", {}).get("resourceVersion", "")
        body: Lease = {"apiVersion": LEASES[0], "kind": "Lease", "metadata": written, "spec": spec}
        try:
            if lease is None:
                self.kube.create(resource_path(LEASES[0], LEASES[1], self.namespace), body)
            else:
                self.kube.request("PUT", self._path, body)
        except Conflict:
            return  # another replica won this round
        self._renewed_at = time.monotonic()
        if not self.leading:
            self.leading = True
            log.info("lease %s/%s taken by %s: this replica reconciles", self.namespace, self.name, self.identity)
            self.on_started()

    def release(self) -> None:
        """Give the Lease up (a clean stop): the next replica takes over without waiting out the duration."""
        try:
            lease: Lease = self.kube.get(self._path)
            spec = lease.get("spec", {})
            if spec.get("holderIdentity") != self.identity:
                return
            lease["spec"] = {**spec, "holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": _micro_time()}
            self.kube.request("PUT", self._path, lease)
            log.info("lease %s/%s released", self.namespace, self.name)
        except KubeError as exc:
            log.warning("could not release lease %s/%s: %s", self.namespace, self.name, exc)
        self.leading = False

"""Pods the API server refuses to create for a stage Job: a ResourceQuota, a LimitRange, Pod Security
admission, a webhook, a missing ServiceAccount. The Job controller says so only in an Event on the Job
(reason `FailedCreate`): no condition, and no `status.startTime` while it has no Pod. So for a Job that
has had no Pod for `GRACE_SECONDS`, the operator reads the Job's newest FailedCreate Event (one
field-selected list, at most every progress period per Job) and the stage is Stalled with its words."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import partial

from genfab.operator.kube import Kube, KubeError
from genfab.operator.objects import Event, Job, Pod, resource_path
from genfab.operator.observe import JobView, parse_time
from genfab.operator.throttle import Throttled

FAILED_CREATE = "FailedCreate"
GRACE_SECONDS = 3.0
"""How long a Job may be without a Pod before its Events are read (the Job controller makes the first
Pods within a second or two)."""


def waiting_for_pods(view: JobView, pods: Iterable[Pod], created: datetime | None, now: datetime
                     ) -> bool:
    """A Job whose Pods should exist and do not: unsuspended, unfinished, none active, none left, none
    ever started, and older than `GRACE_SECONDS`."""
    if view.suspended or view.finished or view.active or view.pods_started or any(True for _ in pods):
        return False
    return created is not None and (now - created).total_seconds() > GRACE_SECONDS


def newest_message(events: Iterable[Event]) -> str | None:
    """The message of the newest Event (by its last time), None when there is none."""
    def when(event: Event) -> str:
        return str(event.get("lastTimestamp") or event.get("eventTime") or
                   event.get("metadata", {}).get("creationTimestamp", ""))
    newest = max(events, key=when, default=None)
    return None if newest is None else str(newest.get("message") or "")


class PodRefusals:
    def __init__(self, kube: Kube, seconds: float) -> None:
        self.kube = kube
        self._read: Throttled[tuple[str, str], str | None] = Throttled(seconds)

    def read(self, namespace: str, jobs: Iterable[Job], views: Mapping[str, JobView],
             pods: Mapping[str, Iterable[Pod]], now: datetime) -> dict[str, str]:
        """Job name -> why the API server refuses its Pods, for the Jobs waiting for Pods."""
        found = {}
        for job in jobs:
            name = job["metadata"]["name"]
            created = parse_time(job["metadata"].get("creationTimestamp"))
            if not waiting_for_pods(views[name], pods.get(name, ()), created, now):
                self._read.forget((namespace, name))
                continue
            message = self._read.get((namespace, name), partial(self._newest, namespace, name))
            if message:
                found[name] = message
        return found

    def _newest(self, namespace: str, job: str) -> str | None:
        selector = f"involvedObject.kind=Job,involvedObject.name={job},reason={FAILED_CREATE}"
        try:
            answer = self.kube.request("GET", resource_path("v1", "events", namespace),
                                       query={"fieldSelector": selector, "limit": 50})
        except KubeError:
            return None  # no Event read is no news: the start deadline still applies
        return newest_message((answer or {}).get("items") or [])

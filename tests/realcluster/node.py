"""A node agent of the tests' own: what a kubelet does through the API, without containers.

It registers a Node with GPUs (`nvidia.com/gpu`, as the NVIDIA device plugin advertises them) as that
node (its certificate is `system:node:<name>` in `system:nodes`, so the API server's Node authorizer and
NodeRestriction admission treat it as a kubelet), keeps the Node Ready, and moves each Pod the real
scheduler binds to it: Pending -> Running -> Succeeded or Failed, as `script(pod)` says. `evict` fails a
running Pod as the kubelet's eviction does. Pods are found by polling (the set is small in the tests).
Test-only code.
"""

from __future__ import annotations

import contextlib
import datetime
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from tests.realcluster.cluster import NODE, RealCluster


@dataclass(frozen=True)
class Run:
    """What a Pod does on the node: runs `seconds`, calls `work(pod)` (which may write what the Pod would
    write), then exits with `exit_code`; `hold`: stays Running until released or evicted."""
    seconds: float = 0.2
    exit_code: int = 0
    hold: bool = False
    work: Callable[[dict[str, Any]], None] | None = None


@dataclass
class _PodState:
    started: float
    run: Run
    done: bool = False
    worked: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class NodeAgent:
    def __init__(self, cluster: RealCluster, gpus: int = 8, interval: float = 0.2) -> None:
        self.cluster = cluster
        self.gpus = gpus
        self.interval = interval
        self.script: Callable[[dict[str, Any]], Run] = lambda pod: Run()
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = str(cluster.certs["ca"])
        self.session.cert = (str(cluster.certs["node"]), str(cluster.certs["node-key"]))
        self._pods: dict[str, _PodState] = {}
        self._released: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []

    def _call(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        resp = self.session.request(method, self.cluster.url + path, json=body, timeout=30,
                                    headers={"Content-Type": content_type})
        if resp.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {resp.status_code} {resp.text[:300]}")
        return resp.json()

    # -- lifecycle
    def start(self) -> NodeAgent:
        capacity = {"cpu": "64", "memory": "512Gi", "pods": "110", "nvidia.com/gpu": str(self.gpus),
                    "ephemeral-storage": "1Ti"}
        self._call("POST", "/api/v1/nodes", {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE, "kubernetes.io/os": "linux",
                                                  "nvidia.com/gpu.present": "true"}},
            "status": {"capacity": capacity, "allocatable": capacity}})
        self._heartbeat()
        self._thread = threading.Thread(target=self._loop, name="node-agent", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self.session.close()

    def release(self, pod_name: str) -> None:
        """A held Pod ends (as its script said) on the next pass."""
        self._released.add(pod_name)

    def evict(self, namespace: str, name: str, message: str = "The node was low on resource: memory.") -> None:
        """Fail a Pod as the kubelet's eviction does (phase Failed, reason Evicted)."""
        self._call("PATCH", f"/api/v1/namespaces/{namespace}/pods/{name}/status", {"status": {
            "phase": "Failed", "reason": "Evicted", "message": message}}, "application/merge-patch+json")
        self._pods.setdefault(f"{namespace}/{name}", _PodState(time.monotonic(), Run())).done = True

    # -- the loop
    def _heartbeat(self) -> None:
        now = _now()
        self._call("PATCH", f"/api/v1/nodes/{NODE}/status", {"status": {"conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "genfab's test node agent",
             "lastHeartbeatTime": now, "lastTransitionTime": now}]}}, "application/strategic-merge-patch+json")

    def _loop(self) -> None:
        beat = time.monotonic()
        while not self._stop.wait(self.interval):
            try:
                if time.monotonic() - beat > 10:
                    self._heartbeat()
                    beat = time.monotonic()
                pods = self._call("GET", f"/api/v1/pods?fieldSelector=spec.nodeName%3D{NODE}")["items"]
                for pod in pods:
                    self._advance(pod)
            except Exception as exc:  # the API server stopping under it, a test's deleted namespace
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def _advance(self, pod: dict[str, Any]) -> None:
        meta, phase = pod["metadata"], (pod.get("status") or {}).get("phase")
        key = f"{meta['namespace']}/{meta['name']}"
        if phase in ("Succeeded", "Failed") or meta.get("deletionTimestamp"):
            with contextlib.suppress(RuntimeError):
                if meta.get("deletionTimestamp"):  # the kubelet's part of a graceful delete
                    self._call("DELETE", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                               {"gracePeriodSeconds": 0})
            return
        state = self._pods.get(key)
        path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status"
        container = pod["spec"]["containers"][0]["name"]
        if state is None:
            state = self._pods[key] = _PodState(time.monotonic(), self.script(pod))
            now = _now()
            self._call("PATCH", path, {"status": {
                "phase": "Running", "startTime": now, "podIP": "10.244.0.10", "hostIP": "127.0.0.1",
                "conditions": [{"type": t, "status": "True", "lastTransitionTime": now}
                               for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
                "containerStatuses": [{"name": container, "ready": True, "restartCount": 0, "image": "",
                                       "imageID": "", "started": True, "state": {"running": {"startedAt": now}}}]}},
                "application/merge-patch+json")
            return
        if state.done or (state.run.hold and meta["name"] not in self._released):
            return
        if time.monotonic() - state.started < state.run.seconds:
            return
        if state.run.work is not None and not state.worked:
            state.worked = True
            state.run.work(pod)
        now, code = _now(), state.run.exit_code
        self._call("PATCH", path, {"status": {
            "phase": "Succeeded" if code == 0 else "Failed",
            "containerStatuses": [{"name": container, "ready": False, "restartCount": 0, "image": "", "imageID": "",
                                   "started": False, "state": {"terminated": {
                                       "exitCode": code, "reason": "Completed" if code == 0 else "Error",
                                       "startedAt": now, "finishedAt": now}}}]}}, "application/merge-patch+json")
        state.done = True

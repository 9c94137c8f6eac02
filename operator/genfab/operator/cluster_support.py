"""Whether the cluster keeps the Job fields genfab's Jobs are built with.

An API server drops a field it does not know without a word (Kubernetes 1.20 has no Indexed Jobs and
stores a Job without `completionMode`, which then runs every Pod as the same shard), and so does a feature
gate switched off or a mutating webhook. genfab asks once at start with a server-side dry run of a Job
carrying each field (nothing is created; admission webhooks see it as they would a real Job), says what is
missing in its log and in the status of every resource it would start (`Stalled`, reason
`ClusterUnsupported`, no Job created), and checks every Job it creates against what it sent (`dropped`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

from genfab.operator.builders import pod_failure_policy
from genfab.operator.kube import Kube, KubeError, Temporary
from genfab.operator.objects import Job, resource_path

log = logging.getLogger("genfab.operator")
CLUSTER_UNSUPPORTED = "ClusterUnsupported"
"""The Stalled reason of a resource whose Jobs this cluster cannot run as built."""
JOB_FEATURES: dict[str, tuple[str, str]] = {
    "completionMode": ("Indexed Jobs", "1.24"),
    "backoffLimitPerIndex": ("per-index backoff limits", "1.29"),
    "podFailurePolicy": ("Pod failure policies", "1.26"),
    "podReplacementPolicy": ("Pod replacement policies", "1.29"),
    "suspend": ("suspended Jobs", "1.24"),
    "ttlSecondsAfterFinished": ("finished Jobs' TTL", "1.23"),
}
"""Job spec fields genfab's Jobs rely on -> (the feature, the Kubernetes release that has it on by default)."""
MINIMUM_VERSION = max(JOB_FEATURES.values(), key=lambda f: tuple(int(p) for p in f[1].split(".")))[1]
"""The oldest Kubernetes release with every feature of `JOB_FEATURES` on by default."""
PROBE_NAME = "genfab-cluster-probe"


def probe_job(namespace: str) -> Job:
    """A Job with every field of `JOB_FEATURES` set as genfab's stage Jobs set them (dry run only)."""
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": PROBE_NAME, "namespace": namespace},
        "spec": {
            "completionMode": "Indexed", "completions": 1, "parallelism": 1, "backoffLimitPerIndex": 0,
            "podFailurePolicy": pod_failure_policy(), "podReplacementPolicy": "Failed", "suspend": True,
            "ttlSecondsAfterFinished": 60,
            "template": {"spec": {"restartPolicy": "Never", "containers": [
                {"name": "stage", "image": "genfab-cluster-probe"}]}},
        },
    }


def dropped(sent: Job, kept: Job) -> list[str]:
    """The `JOB_FEATURES` fields of a Job's spec that `sent` sets and the server's answer `kept` lacks
    (or, for `completionMode`, changed)."""
    # read by field name, as JOB_FEATURES lists them
    sent_spec: Mapping[str, object] = sent.get("spec", {})
    kept_spec: Mapping[str, object] = kept.get("spec", {})
    lost = []
    for name in JOB_FEATURES:
        if sent_spec.get(name) is None:
            continue
        if kept_spec.get(name) is None or (name == "completionMode" and kept_spec[name] != sent_spec[name]):
            lost.append(name)
    return lost


def unsupported_message(lost: list[str], version: str, what: str = "this cluster's API server") -> str:
    """One line: what the cluster dropped, and which release has it."""
    features = ", ".join(f"spec.{name} ({JOB_FEATURES[name][0]}, on by default since {JOB_FEATURES[name][1]})"
                         for name in lost)
    return (f"{what}{f' (Kubernetes {version})' if version else ''} does not keep {features} of a Job: "
            f"genfab's Jobs need Kubernetes {MINIMUM_VERSION} or newer with these features on, and no webhook "
            "that removes them")


class ClusterSupport:
    """The dry-run answer, asked once (again after an answer that said nothing, such as a timeout)."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self._lock = threading.Lock()
        self._missing: list[str] | None = None
        self.version = ""

    def missing(self) -> list[str] | None:
        """The `JOB_FEATURES` fields the cluster drops ([] when it keeps all; None when unknown: the
        probe failed, and every created Job is still checked)."""
        with self._lock:
            if self._missing is None:
                self._missing = self._probe()
            return self._missing

    def message(self) -> str:
        return unsupported_message(self.missing() or [], self.version)

    def _probe(self) -> list[str] | None:
        try:
            self.version = str(self.kube.get("/version").get("gitVersion", ""))
        except KubeError:
            self.version = ""
        try:
            kept: Job = self.kube.request("POST", resource_path("batch/v1", "jobs", self.namespace),
                                     probe_job(self.namespace), query={"dryRun": "All"})
        except Temporary as exc:
            log.warning("cannot ask the API server which Job fields it keeps (asked again later): %s", exc)
            return None
        except KubeError as exc:  # no right to create Jobs there, a namespace gone: each Job is still checked
            log.warning("cannot ask the API server which Job fields it keeps: %s; every Job is checked "
                        "when created", exc)
            return []
        lost = dropped(probe_job(self.namespace), kept)
        if lost:
            log.error("%s", unsupported_message(lost, self.version))
        else:
            log.info("the API server%s keeps every Job field genfab uses",
                     f" (Kubernetes {self.version})" if self.version else "")
        return lost

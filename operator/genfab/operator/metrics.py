"""Operator metrics (prometheus-client), served on `--metrics-port`. Names follow the Prometheus
conventions; the chart's dashboard and alerts use exactly these."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

DURATION_BUCKETS = (10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.registry = r
        self.resources = Gauge("genfab_resources", "genfab resources by kind and phase", ["kind", "phase"],
                               registry=r)
        self.stalled = Gauge("genfab_resources_stalled", "Resources whose Stalled condition is True, by reason",
                             ["kind", "reason"], registry=r)
        self.stalled_since = Gauge(
            "genfab_resource_stalled_since_timestamp_seconds",
            "When a resource's Stalled condition became True (one series per stalled resource, removed on recovery)",
            ["kind", "namespace", "name", "reason"], registry=r)
        self.stage_duration = Histogram("genfab_stage_duration_seconds", "Wall time of finished stages",
                                        ["kind", "stage", "phase"], buckets=DURATION_BUCKETS, registry=r)
        self.stage_failures = Counter("genfab_stage_failures_total", "Stages that ended Failed, by reason",
                                      ["kind", "stage", "reason"], registry=r)
        self.samples = Counter("genfab_samples_total", "Samples processed by stage Pods, by outcome",
                               ["kind", "stage", "outcome"], registry=r)
        self.gpu_seconds = Counter("genfab_stage_gpu_seconds_total",
                                   "GPU-seconds used by stage Pods (shard processes' running time x GPUs per Pod)",
                                   ["kind", "namespace", "name", "stage"], registry=r)
        self.pending_shards = Gauge("genfab_pending_shards", "Shards not yet running or done (queue depth)",
                                    ["kind", "stage"], registry=r)
        self.active_shards = Gauge("genfab_active_shards", "Shards with a running Pod", ["kind", "stage"],
                                   registry=r)
        self.gpus_held = Gauge("genfab_gpus_held", "GPUs requested by running stage Pods (active shards x GPUs)",
                               ["kind", "stage"], registry=r)
        self.reconcile_errors = Counter("genfab_reconcile_errors_total", "Reconciles that raised, by error class",
                                        ["kind", "error"], registry=r)
        self.reconcile_seconds = Histogram("genfab_reconcile_seconds", "Duration of one reconcile", ["kind"],
                                           buckets=LATENCY_BUCKETS, registry=r)
        self.create_to_job = Histogram("genfab_create_to_job_seconds",
                                       "From resource creation to its first stage Job", ["kind"],
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("genfab_reconcile_queue_depth",
                                 "Resources waiting for a reconcile worker now (not those scheduled for a "
                                 "later re-check)", registry=r)
        self.reports_read = Counter("genfab_shard_reports_read_total",
                                    "Shard reports the operator read from storage: each finished shard's once "
                                    "(state finished), running shards' at most every progressSeconds",
                                    ["kind", "state"], registry=r)
        self._lock = threading.Lock()
        self._phase: dict[tuple[str, str, str], tuple[str, str]] = {}
        self._stall: dict[tuple[str, str, str], str] = {}
        self._stall_labels: dict[tuple[str, str, str], tuple[str, str, str, str]] = {}
        self._shards: dict[tuple[str, str, str], dict[str, tuple[int, int, int]]] = {}

    def observe_resource(self, key: tuple[str, str, str], phase: str | None, stalled: str | None,
                         shards: dict[str, tuple[int, int, int]] | None = None,
                         stalled_since: float | None = None) -> None:
        """Record one resource's phase, stall reason (since when, epoch seconds) and (pending,
        active, GPUs held) per stage; phase None forgets it (deleted). O(stages) per call."""
        kind = key[0]
        with self._lock:
            old_labels = self._stall_labels.pop(key, None)
            if old_labels is not None:
                self.stalled_since.remove(*old_labels)
            if phase is not None and stalled and stalled_since is not None:
                self._stall_labels[key] = (kind, key[1], key[2], stalled)
                self.stalled_since.labels(*self._stall_labels[key]).set(stalled_since)
            old_phase, old_stall, old_shards = self._phase.pop(key, None), self._stall.pop(key, None), \
                self._shards.pop(key, {})
            if old_phase is not None:
                self.resources.labels(*old_phase).dec()
            if old_stall is not None:
                self.stalled.labels(kind, old_stall).dec()
            for stage, (p, a, g) in old_shards.items():
                self.pending_shards.labels(kind, stage).dec(p)
                self.active_shards.labels(kind, stage).dec(a)
                self.gpus_held.labels(kind, stage).dec(g)
            if phase is None:
                return
            self._phase[key] = (kind, phase)
            self.resources.labels(kind, phase).inc()
            if stalled:
                self._stall[key] = stalled
                self.stalled.labels(kind, stalled).inc()
            self._shards[key] = dict(shards or {})
            for stage, (p, a, g) in self._shards[key].items():
                self.pending_shards.labels(kind, stage).inc(p)
                self.active_shards.labels(kind, stage).inc(a)
                self.gpus_held.labels(kind, stage).inc(g)

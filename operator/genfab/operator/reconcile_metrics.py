"""What one reconcile tells the operator's metrics: samples made since the last status, stages that
ended (their duration, their failure's reason), and the resource's phase, stall and shards now."""

from __future__ import annotations

from genfab.api.status import TERMINAL_PHASES, ResourceStatus
from genfab.operator.decide import Decision
from genfab.operator.metrics import OperatorMetrics
from genfab.operator.objects import Key
from genfab.operator.observe import parse_time
from genfab.planner import Plan


def record_reconcile(metrics: OperatorMetrics, key: Key, the_plan: Plan, decision: Decision,
                     previous: ResourceStatus | None, status: ResourceStatus) -> None:
    kind = key[0]
    prev = {s.name: s for s in (previous.stages if previous else [])}
    for s in status.stages:
        before = prev.get(s.name)
        same = before if before is not None and before.config_hash == s.config_hash else None
        for outcome, now_n, was in (("succeeded", s.samples.succeeded, same.samples.succeeded if same else 0),
                                    ("failed", s.samples.failed, same.samples.failed if same else 0)):
            if now_n > was:
                metrics.samples.labels(kind, s.name, outcome).inc(now_n - was)
        used, was_used = s.gpu_seconds or 0.0, (same.gpu_seconds or 0.0) if same else 0.0
        if used > was_used:  # a counter: only what this reconcile added (a new config hash starts again)
            metrics.gpu_seconds.labels(kind, key[1], key[2], s.name).inc(used - was_used)
        ended = s.phase in TERMINAL_PHASES and not (same is not None and same.phase in TERMINAL_PHASES)
        start, end = parse_time(s.start_time), parse_time(s.completion_time)
        if ended and start and end:
            metrics.stage_duration.labels(kind, s.name, s.phase).observe((end - start).total_seconds())
        if ended and s.phase == "Failed":
            metrics.stage_failures.labels(kind, s.name, s.reason or "Failed").inc()
    gpus = {s.name: s.resources.gpus for s in the_plan.stages}
    shards = {o.name: (max(0, o.shards_total - o.shards_succeeded - o.shards_failed - o.shards_active),
                       o.shards_active, o.shards_active * gpus.get(o.name, 0))
              for o in decision.observations if o.state in ("running", "suspended")}
    metrics.observe_resource(key, status.phase, decision.stall.reason if decision.stall else None, shards,
                             _stalled_since(status))


def record_refusal(metrics: OperatorMetrics, key: Key, status: ResourceStatus) -> None:
    """A resource refused before its stages are looked at (an invalid spec, a namespace not prepared, a
    cluster without what its Jobs need, a request the API server refused): its phase and stall."""
    stalled = next((c for c in status.conditions if c.type == "Stalled" and c.status == "True"), None)
    metrics.observe_resource(key, status.phase, stalled.reason if stalled else None, None, _stalled_since(status))


def _stalled_since(status: ResourceStatus) -> float | None:
    """When the resource's Stalled condition turned True (epoch seconds); None while it is not."""
    stalled = next((c for c in status.conditions if c.type == "Stalled" and c.status == "True"), None)
    since = parse_time(stalled.last_transition_time) if stalled else None
    return since.timestamp() if since else None

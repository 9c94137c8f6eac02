"""The reconcile loop: caches -> pure decision -> a few API writes -> status. All I/O lives here.

Level-triggered: a reconcile reads the whole current state (resource, its Jobs and Pods from the
watch caches, shard reports from storage) and converges, so missed or repeated events, duplicate
reconciles and operator restarts are harmless. Writes are create-if-absent by deterministic name.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from pydantic import ValidationError

from genfab.api.common import CommonSpec
from genfab.api.errors import field_errors
from genfab.api.resources import API_VERSION, KINDS, PLURALS, Resource
from genfab.api.status import TERMINAL_PHASES, ResourceStatus
from genfab.contract import DROPPED_KEY, SUMMARY_KEY, StageConfig, shard_count
from genfab.contract.names import ENV_MODELS
from genfab.contract.paths import join_uri
from genfab.inventory import InventoryError, clear_reports, read_reports
from genfab.inventory.manifest import clear_manifest, read_manifest
from genfab.inventory.training import read_training
from genfab.operator import read_budget
from genfab.operator.builders import (
    INVENTORY,
    LABEL_MANAGED,
    Owner,
    build_configmap,
    build_group_policy,
    build_inventory_job,
    build_job,
    build_records_job,
    build_service,
    child_name,
    effective_storage,
    inventory_name,
    oversized_configs,
    records_name,
    task_of,
)
from genfab.operator.cache import Cache, Key, owner_key
from genfab.operator.decide import (
    Decision,
    Observed,
    decide,
    invalid_status,
    resource_status,
    same_status,
    stalled_status,
    transitions,
)
from genfab.operator.gate_reader import GateReader
from genfab.operator.inventory import Listing, inventory_listing, list_inline
from genfab.operator.kube import Conflict, Kube, KubeError, NotFound, Temporary, resource_path
from genfab.operator.kube import custom_path as cr_path
from genfab.operator.metrics import OperatorMetrics
from genfab.operator.model_access import ModelIdentities
from genfab.operator.observe import ANNOTATION_NO_PROGRESS, is_true, job_view, parse_time, unresolved_lost
from genfab.operator.ownership import Child, child_refs, made_before_children, made_like, recorded
from genfab.operator.plan_memo import PlanMemo
from genfab.operator.policy import file_roots, policy_errors, resolved_input_errors, tenant_image_errors
from genfab.operator.prerequisites import REASON as NOT_READY
from genfab.operator.prerequisites import Prerequisite, not_ready_message, prerequisites
from genfab.operator.progress import ProgressReader
from genfab.operator.read_budget import BytePool
from genfab.operator.settings import OperatorSettings
from genfab.operator.sharding import BUCKETS, LABEL_BUCKET, Shard, bucket_label
from genfab.operator.storage_access import StorageAccess
from genfab.operator.workqueue import WorkQueue, per_group_share
from genfab.planner import Plan, PlanError, PlannedStage, plan, stage_config
from genfab.sequencing import models_env, now_rfc3339, status_outputs, unsupported_settings
from genfab.sequencing.batch import BATCH_SUMMARY_KEY, batch_document
from genfab.sequencing.execution import NAME, ExecutionError, choose_execution, execution_choice
from genfab.sequencing.manual import Awaiting
from genfab.sequencing.preflight import NO_LOCATION as INVALID_SPEC
from genfab.sequencing.preflight import model_refusal
from genfab.sequencing.records import records_request
from genfab.sequencing.refs import (
    RefState,
    checkpoint_state,
    plan_references,
    reference_state,
    stage_ref_paths,
    substitute_refs,
)
from genfab.sequencing.summary import dropped_csv, stage_row, stage_seconds, summary_document
from genfab.status import StageObservation, tally
from genfab.status.training import training_status, with_training
from genfab.storage import Storage, StorageError, StorageLimit

log = logging.getLogger("genfab.operator")
STORAGE_UNAVAILABLE = "StorageUnavailable"
EVENT_DEFER_SECONDS = 10.0
"""Longest an Event waits for the reconcile queue to drain before it is posted anyway."""
NO_UID_MATCHES = "shardRange(object.metadata.uid, '0x0000000000000000', '0x0000000000000001')"
CHILD_EVENT_SECONDS = 1.0
"""How long a reconcile waits after a Pod event or a Job event that does not end the Job: the flurry
of changes one stage's Pods make (created, scheduled, started, ready; the Job's counts after each)
becomes one reconcile and at most one status write, instead of one each."""
UNLABELLED_PAGE, UNLABELLED_PAGES = 500, 20
"""Jobs without a bucket label listed per request, and requests per resync (`_unlabelled_jobs`)."""
PEERS_KEPT = 10_000
"""Other shards' resources kept read (`Controller._peer`) before the stale ones are dropped."""
RECORDS_INLINE_SHARDS = 500
"""The most shards (all stages together) whose reports the operator reads when a run ends, to write the
run's per-sample records (`dropped_samples.csv`, `batch_summary.json`): within one reconcile's budget."""
UNREAD_AGAIN_SECONDS = 0.1
"""How soon a resource is reconciled again when its last reconcile left finished shards' reports unread
(behind every other resource already queued: the work queue is first come, first served per namespace)."""
PRESENT_SECONDS = 60.0
"""How long an object a namespace must provide is trusted to exist after it was seen."""


class Controller:
    def __init__(self, kube: Kube, settings: OperatorSettings, metrics: OperatorMetrics | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.kube = kube
        self.settings = settings
        self.metrics = metrics or OperatorMetrics()
        self.cache = Cache()
        self.queue: WorkQueue[Key] = WorkQueue(group=lambda key: key[1], per_group=per_group_share(settings.workers))
        self.storage = StorageAccess(kube, lambda namespace: file_roots(settings.policy, namespace))
        self.read_pool = BytePool(settings.read_bounds.pool_bytes)
        self.model_identities = ModelIdentities(self.storage)
        self.plans = PlanMemo()
        self.clock = clock
        self.progress = ProgressReader(settings.progress_seconds, settings.read_bounds.reports)
        self._unread: set[Key] = set()
        """Resources with finished shards whose reports a reconcile left for the next (read again soon)."""
        self.gates = GateReader(settings.progress_seconds, settings.read_bounds.reports)
        self._training: dict[Key, tuple[dict[str, Any] | None, float]] = {}
        self._referrers: dict[Key, set[Key]] = {}
        """Resources whose plans read another's output: referenced key -> the keys reading it."""
        """Training state documents read from storage: (document, when read)."""
        """Manual gates read from storage: (what still waits or None once complete, when read)."""
        self._present: dict[tuple[str, str, str], float] = {}
        self._peers: dict[Key, tuple[dict[str, Any] | None, float]] = {}
        """Resources another shard owns that this shard's resources read: (body or None, when read)."""
        self._made: dict[Key, dict[Child, str]] = {}
        """Children created (or proven made) since the resource's status was last written: their UIDs."""
        self._gone: dict[Key, set[Child]] = {}
        """Recorded children deleted since the status was last written."""
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._events: queue.Queue[tuple[float, dict[str, Any], str, str, str]] = queue.Queue(maxsize=10000)
        """(when queued, involved object, type, reason, message) of the Events to post."""

    # -- lifecycle
    def start(self) -> None:
        if self.settings.shard is not None:  # a few GETs: not on kopf's startup path
            threading.Thread(target=self._report_sharding, args=(self.settings.shard,), name="genfab-shard-check",
                             daemon=True).start()
        for i in range(self.settings.workers):
            t = threading.Thread(target=self._work, name=f"genfab-reconcile-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        for target, name in ((self._resync, "genfab-resync"), (self._post_events, "genfab-events")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def _report_sharding(self, shard: Shard) -> None:
        """Say once whether the API server filters resources by shard (Kubernetes 1.36 with the gate
        ShardedListAndWatch) or every shard receives all of them and drops the others' (`on_resource`):
        one resource listed without a selector, and with one no UID can match (a hash of exactly 0)."""
        where = f"shard {shard}: buckets {shard.buckets.start}-{shard.buckets.stop - 1} of {BUCKETS}"
        try:
            path = next((p for p in (resource_path(API_VERSION, PLURALS[kind], ns) for kind in KINDS
                                     for ns in self.settings.namespaces or (None,))
                         if (self.kube.request("GET", p, query={"limit": "1"}) or {}).get("items")), None)
            if path is None:
                log.info("%s (whether the API server filters by shard shows once resources exist)", where)
            elif (self.kube.request("GET", path, query={"limit": "1", "shardSelector": NO_UID_MATCHES})
                  or {}).get("items"):
                log.warning("%s; the API server ignores shard selectors (Kubernetes before 1.36, or the gate "
                            "ShardedListAndWatch off): every shard receives every resource's events and drops "
                            "the other shards' (Jobs and Pods are still split by label)", where)
            else:
                log.info("%s; the API server filters resources by shard", where)
        except KubeError as exc:
            log.warning("%s; could not check for sharded watches: %s", where, exc)

    def stop(self) -> None:
        self._stop.set()
        self.queue.close()

    def _work(self) -> None:
        while not self._stop.is_set():
            key = self.queue.get(timeout=1.0)
            if key is None:
                continue
            try:
                self.reconcile(key)
                self.queue.forget(key)
            except (Temporary, StorageError) as exc:
                delay = self.queue.retry(key)
                self.metrics.reconcile_errors.labels(key[0], type(exc).__name__).inc()
                log.warning("%s %s/%s: %s (retry in %.1fs)", *key, exc, delay)
            except Exception as exc:  # a bug or a permanent API error: never kill the worker
                delay = self.queue.retry(key)
                self.metrics.reconcile_errors.labels(key[0], type(exc).__name__).inc()
                log.exception("%s %s/%s: reconcile failed (retry in %.1fs): %s", *key, delay, exc)
            finally:
                self.queue.done(key)
                self.metrics.queue_depth.set(self.queue.ready())

    def _post_events(self) -> None:
        """Kubernetes Events are posted off the reconcile path (best effort, like kopf's poster), and
        after it: while reconciles are queued or running (a burst of new resources), an event waits
        until at most `EVENT_DEFER_SECONDS` after it was queued, so its request, the API server's time
        and the GIL go to starting Jobs first (with shards, each one's queue drains early, but its
        workers are still busy). The deadline counts from queueing, so under a queue that never drains
        Events are late, not throttled."""
        while not self._stop.is_set():
            try:
                queued, body, type_, reason, message = self._events.get(timeout=1.0)
            except queue.Empty:
                continue
            deadline = queued + EVENT_DEFER_SECONDS
            while self.queue.busy() and time.monotonic() < deadline and not self._stop.wait(0.05):
                pass
            self.kube.event(body, type_, reason, message)

    def _resync(self) -> None:
        """Every unfinished resource is reconciled at least every `resync_seconds` (missed events)."""
        while not self._stop.wait(self.settings.resync_seconds):
            if self.settings.shard is not None:
                self._label_older_jobs()
            for key in self.cache.resource_keys():
                body = self.cache.resource(key) or {}
                if (body.get("status") or {}).get("phase") not in TERMINAL_PHASES:
                    self.queue.add(key)

    def _label_older_jobs(self) -> None:
        """Stage Jobs made before Jobs carried their resource's shard bucket (an operator older than
        `operator.shards`) are outside a sharded operator's Job watch: label this shard's (their
        resource is in this shard's cache and controls them), so the watch sees them from now on.
        Their Pods stay unlabelled (the operator may not patch Pods): until those Jobs finish, the
        Job's own counts are observed, not its Pods' stall reasons."""
        for namespace in self.settings.namespaces or (None,):
            for job in self._unlabelled_jobs(namespace):
                key = owner_key(job)
                uid = ((self.cache.resource(key) or {}).get("metadata") or {}).get("uid") if key else None
                meta = job.get("metadata") or {}
                if not uid or not any(r.get("uid") == uid and r.get("controller")
                                      for r in meta.get("ownerReferences") or []):
                    continue  # another shard's, or not made for a genfab resource
                with contextlib.suppress(KubeError):
                    self.kube.patch(resource_path("batch/v1", "jobs", meta.get("namespace"), meta.get("name")),
                                    {"metadata": {"labels": {LABEL_BUCKET: bucket_label(uid)}}})

    def _unlabelled_jobs(self, namespace: str | None) -> list[dict[str, Any]]:
        """genfab-labelled Jobs without a bucket label, in pages, at most `UNLABELLED_PAGES` of them per
        resync: a tenant can make any number of look-alikes, which are never labelled and stay listed."""
        query = {"labelSelector": f"{LABEL_MANAGED}=genfab,!{LABEL_BUCKET}", "limit": str(UNLABELLED_PAGE)}
        jobs: list[dict[str, Any]] = []
        for _ in range(UNLABELLED_PAGES):
            try:
                page = self.kube.request("GET", resource_path("batch/v1", "jobs", namespace), query=query) or {}
            except KubeError as exc:
                log.warning("listing Jobs without a shard bucket label: %s", exc)
                break
            jobs += page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                break
            query = {**query, "continue": token}
        return jobs

    # -- watch events (called by the kopf handlers)
    def on_resource(self, kind: str, event_type: str | None, body: dict[str, Any]) -> None:
        meta = body.get("metadata") or {}
        if self.settings.shard is not None and not self.settings.shard.owns(meta.get("uid", "")):
            return  # another shard's (an API server without sharded watches sends every resource)
        key: Key = (kind, meta.get("namespace", ""), meta.get("name", ""))
        if event_type == "DELETED":
            self.cache.put_resource(key, None)
            self.plans.forget(key)
            self.metrics.observe_resource(key, None, None)
            self.progress.forget(key)
            self._unread.discard(key)
            self.gates.forget(key)
            self._training.pop(key, None)
            self._made.pop(key, None)
            self._gone.pop(key, None)
            return
        if not self.cache.put_resource(key, body):
            return  # the echo of this operator's own status write: handled when it was written
        self.queue.add(key, first=not body.get("status"))
        self._wake_referrers(key)

    def _wake_referrers(self, key: Key) -> None:
        """Resources waiting for this one's output are reconciled at once when it changes."""
        for referrer in self._referrers.get(key, ()):
            self.queue.add(referrer)

    def on_job(self, event_type: str | None, body: dict[str, Any]) -> None:
        key = self.cache.put_job(body, deleted=event_type == "DELETED")
        if key is None:
            return
        if event_type == "DELETED" or is_true(body, "Complete") or is_true(body, "Failed"):
            self.queue.add(key)  # the stage ended: the next one may start now
        else:
            self.queue.add_after(key, CHILD_EVENT_SECONDS)

    def on_pod(self, event_type: str | None, body: dict[str, Any]) -> None:
        key = self.cache.put_pod(body, deleted=event_type == "DELETED")
        if key is not None:
            self.queue.add_after(key, CHILD_EVENT_SECONDS)

    # -- one reconcile
    def reconcile(self, key: Key) -> None:
        started = time.monotonic()
        body = self.cache.resource(key)
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            return  # deleted: owner references let the garbage collector remove the children
        try:
            with read_budget.budget(self.settings.read_bounds, self.read_pool):
                self._reconcile(key, body)
        finally:
            self.metrics.reconcile_seconds.labels(key[0]).observe(time.monotonic() - started)

    def _reconcile(self, key: Key, body: dict[str, Any]) -> None:
        kind, namespace, name = key
        meta = body["metadata"]
        generation = meta.get("generation")
        previous = _previous_status(body)
        now = self.clock()
        owner = Owner(API_VERSION, kind, name, namespace, meta.get("uid", ""))
        try:
            resource = self.plans.get(key, body, "resource", lambda: KINDS[kind].model_validate(
                {k: v for k, v in body.items() if k != "status"}))
            refused = self.plans.get(key, body, "policy",
                                     lambda: policy_errors(resource.spec, self.settings.policy, namespace))
            if refused:  # what this cluster's admins do not allow: no Job, a condition naming each field
                return self._write_status(key, body, previous, invalid_status(
                    previous, "; ".join(str(e) for e in refused), generation, now_rfc3339(now)))
            execution = self._execution(key, resource, owner, previous)
            the_plan, part = self._plan_with_references(key, body, resource, namespace, owner, execution)
            refused = self.plans.get(key, body, ("checks", *part), lambda: oversized_configs(the_plan) + (
                tenant_image_errors(the_plan, resource.spec, self.settings.policy)))
            cannot = unsupported_settings(the_plan.stages)  # the lab's method meant or asked without its image
            no_models = model_refusal(the_plan, models_env(resource.spec.models, mounted=True).get(ENV_MODELS))
            if no_models is not None and no_models[0] == INVALID_SPEC:  # no location: every stage Pod would fail
                cannot = [*cannot, no_models[1]]
            if refused or cannot:
                return self._write_status(key, body, previous, invalid_status(
                    previous, "; ".join([*(str(e) for e in refused), *cannot]), generation, now_rfc3339(now)))
        except ValidationError as exc:
            message = "; ".join(str(e) for e in field_errors(exc))
            return self._write_status(key, body, previous, invalid_status(previous, message, generation,
                                                                          now_rfc3339(now)))
        except StorageError as exc:  # the model location cannot be read: say it, retry with backoff
            self._write_status(key, body, previous, stalled_status(
                previous, _storage_reason(exc), f"storage: {exc}", generation, now_rfc3339(now)))
            raise
        except (PlanError, ExecutionError) as exc:
            return self._write_status(key, body, previous, invalid_status(previous, str(exc), generation,
                                                                          now_rfc3339(now)))
        settled = (previous is not None and previous.phase in TERMINAL_PHASES
                   and previous.observed_generation == generation)
        missing = [] if settled else self._missing(namespace, resource)
        if missing:  # Jobs there would fail late or run unconfined: create nothing, say what is missing
            # No event says when an admin prepares the namespace: look again every progressSeconds.
            self.queue.add_after(key, self.settings.progress_seconds)
            return self._write_status(key, body, previous, stalled_status(
                previous, NOT_READY, not_ready_message(namespace, missing), generation, now_rfc3339(now)))
        if no_models is not None and not settled:  # a model is not uploaded yet: create nothing, look again
            self.queue.add_after(key, self.settings.progress_seconds)
            return self._write_status(key, body, previous, stalled_status(previous, no_models[0], no_models[1],
                                                                          generation, now_rfc3339(now)))
        spec = resource.spec
        the_plan, refs = self._resolve_refs(key, the_plan)
        refused = resolved_input_errors(the_plan, self.settings.policy, namespace, spec)
        if refused:  # another resource's status pointed outside this namespace's storage
            return self._write_status(key, body, previous, invalid_status(
                previous, "; ".join(str(e) for e in refused), generation, now_rfc3339(now)))
        try:
            observed = self._observe(key, the_plan, owner, previous, refs)
            decision = decide(the_plan, spec, observed, previous, now)
            failed_starts = self._apply(key, body, resource, the_plan, owner, decision, previous)
            if decision.start:  # re-decide with the Jobs just created
                observed = self._observe(key, the_plan, owner, previous, refs)
                decision = decide(the_plan, spec, observed, previous, now)
        except StorageError as exc:  # say it on the resource, then retry with backoff (it may recover)
            self._write_status(key, body, previous, stalled_status(
                previous, _storage_reason(exc), f"storage: {exc}", generation, now_rfc3339(now)))
            raise
        decision.observations = [failed_starts.get(o.name, o) for o in decision.observations]
        status = resource_status(decision, spec, previous, generation, now_rfc3339(now), status_outputs(the_plan),
                                 the_plan.custom_stages)
        status = status.model_copy(update={"execution": the_plan.execution})
        status = with_training(status, training_status(
            self._read_training(key, the_plan, owner, fresh=status.phase in TERMINAL_PHASES),
            join_uri(the_plan.output_uri, "checkpoints")))
        if status.phase in TERMINAL_PHASES and (previous is None or previous.phase not in TERMINAL_PHASES):
            self._write_run_records(key, the_plan, owner, status, spec)
        self._write_status(key, body, previous, status)
        self._record_metrics(key, the_plan, decision, previous, status)
        waiting_for_a_person = any(decision.gates.values())  # poll storage for the choice: no event says it
        waiting_for_a_peer = bool(refs) and self.settings.shard is not None  # another shard's: no event here
        if key in self._unread:  # finished shards left unread by this reconcile's bound: on with them soon
            self.queue.add_after(key, UNREAD_AGAIN_SECONDS)
        elif status.phase not in TERMINAL_PHASES and (any(o.state == "running" for o in decision.observations)
                                                      or waiting_for_a_person or waiting_for_a_peer):
            self.queue.add_after(key, self.settings.progress_seconds)

    def _missing(self, namespace: str, resource: Resource) -> list[Prerequisite]:
        """The objects stage Jobs need in `namespace` that do not exist (GET by name; RBAC allows
        exactly these names). Objects seen recently are not fetched again."""
        spec = resource.spec
        needed = prerequisites(spec, effective_storage(spec, self.settings), self.settings.stage_service_account,
                               self.settings.stage_network_policy)
        missing = []
        for item in needed:
            slot = (namespace, item.plural, item.name)
            seen = self._present.get(slot)
            if seen is not None and time.monotonic() - seen < PRESENT_SECONDS:
                continue
            try:
                self.kube.get(resource_path(item.api_version, item.plural, namespace, item.name))
                self._present[slot] = time.monotonic()
            except NotFound:
                missing.append(item)
        return missing

    def _execution(self, key: Key, resource: Resource, owner: Owner, previous: ResourceStatus | None) -> str | None:
        """The execution folder (reference-object's `executionMode` new or last): the one the status
        keeps, else chosen now and written to the status before anything runs in it, so a reconcile
        that starts before the watch brings the status back does not choose again."""
        choice = execution_choice(resource)
        if choice is None:
            return None
        if previous is not None and previous.execution and NAME.match(previous.execution):
            return previous.execution  # (the status schema refuses another; a status read back is checked anyway)
        output = self.storage.open(resource.spec.output, owner, self._spec_storage(key))
        name = choose_execution(choice, self.clock().timestamp(), resource.spec.output, output.list)
        try:
            patched = self.kube.patch(cr_path(*key, "status"), {"status": {"execution": name}})
        except NotFound:
            return name  # deleted meanwhile: nothing will run
        self.cache.put_resource(key, patched)
        self._wake_referrers(key)
        log.info("%s %s/%s: execution %s (executionMode %s)", *key, name, choice)
        return name

    def _plan_with_references(self, key: Key, body: dict[str, Any], resource: Resource, namespace: str,
                              owner: Owner, execution: str | None = None) -> tuple[Plan, tuple[Any, ...]]:
        """The plan, planned again with the TuningRun checkpoints its settings depend on, where the
        runs have them (from the watch cache; the others stay `ref:` inputs the stage waits for), and
        with the identities of the models it loads where the operator can read them; and what it was
        planned from besides the resource (the part of its memo key). Planned once per resource
        generation and inputs (`PlanMemo`)."""
        part: tuple[Any, ...] = ("plan", execution)
        first = self.plans.get(key, body, part, lambda: plan(resource, execution=execution))
        found = {}
        for target, path in plan_references(first):
            ref_kind, _, ref_name = target.partition("/")
            state = checkpoint_state(target, path, self._peer((ref_kind, namespace, ref_name)))
            if state.state == "ready":
                found[target] = state.root
        spec_storage = effective_storage(resource.spec, self.settings)
        identities = self.model_identities.read(owner, resource.spec.models,
                                                spec_storage.to_yaml_dict() if spec_storage is not None else None,
                                                first.model_ids())
        if not (found or identities):
            return first, part
        part = ("plan", execution, tuple(sorted(found.items())), tuple(sorted(identities.items())))
        return self.plans.get(key, body, part, lambda: plan(resource, references=found, models=identities,
                                                             execution=execution)), part

    def _peer(self, key: Key) -> dict[str, Any] | None:
        """A resource another one reads (its output, its checkpoints): from the watch cache, or, where
        another shard owns it, read by GET at most every `progress_seconds` (its changes wake no
        referrer here: a referrer waiting on it is reconciled that often, see `_reconcile`)."""
        body = self.cache.resource(key)
        if body is not None or self.settings.shard is None:
            return body
        now = time.monotonic()
        cached = self._peers.get(key)
        if cached is not None and now - cached[1] < self.settings.progress_seconds:
            return cached[0]
        try:
            found: dict[str, Any] | None = self.kube.get(cr_path(*key))
        except NotFound:
            found = None
        if len(self._peers) > PEERS_KEPT:  # resources read long ago: read again when needed
            self._peers = {k: v for k, v in self._peers.items() if now - v[1] < self.settings.progress_seconds}
        self._peers[key] = (found, now)
        return found

    def _resolve_refs(self, key: Key, the_plan: Plan) -> tuple[Plan, dict[str, RefState]]:
        """The plan with the outputs of resources it reads (same namespace, from the watch cache)
        substituted where they are usable, and the references that are not (waiting or failed).
        Each referenced resource remembers this one, so its change reconciles this one at once."""
        roots: dict[str, str] = {}
        pending: dict[str, RefState] = {}
        for stage in the_plan.stages:
            if not stage.run:
                continue
            for target, path in stage_ref_paths(stage):
                ref_kind, _, ref_name = target.partition("/")
                ref_key: Key = (ref_kind, key[1], ref_name)
                self._referrers.setdefault(ref_key, set()).add(key)
                state = reference_state(target, path, self._peer(ref_key))
                if state.state == "ready" and ref_kind == "TuningRun":  # planned again next time: not yet
                    state = RefState("waiting", message=f"waiting for {target}")
                if state.state == "ready":
                    roots[target] = state.root
                else:
                    pending[target] = state
        return substitute_refs(the_plan, roots), pending

    def _observe(self, key: Key, the_plan: Plan, owner: Owner, previous: ResourceStatus | None,
                 refs: dict[str, RefState] | None = None) -> Observed:
        owned = self._owned(key)  # a Job counts only if this operator recorded making it (its UID)
        mine = [j for j in self.cache.jobs(key)
                if owned.get(("Job", j["metadata"]["name"])) == j["metadata"].get("uid")]
        jobs = [j for j in mine if task_of(j) is None]  # inventory and records Jobs are not stages
        inventories = [j for j in mine if task_of(j) == INVENTORY]
        pods = {j["metadata"]["name"]: self.cache.pods(owner.namespace, j["metadata"]["name"]) for j in jobs}
        lost = {}
        for j in jobs:
            jn = j["metadata"]["name"]
            keep = unresolved_lost(self.cache.lost(owner.namespace, jn), pods[jn], job_view(j))
            self.cache.forget_lost(owner.namespace, jn, keep)
            lost[jn] = keep
        reading = self.progress.read(key, the_plan, jobs, pods, previous, lambda: self.storage.open(
            the_plan.output_uri, owner, self._spec_storage(key)))
        progress = reading.progress
        for state, n in (("finished", reading.finished_read), ("running", reading.running_read)):
            if n:
                self.metrics.reports_read.labels(key[0], state).inc(n)
        if reading.more:
            self._unread.add(key)
        else:
            self._unread.discard(key)
        awaiting = self._read_awaiting(key, the_plan, jobs, owner, previous)
        return Observed(jobs=jobs, pods=pods, lost=lost, progress=progress, awaiting=awaiting, refs=refs or {},
                        inventories=inventories)

    def _read_awaiting(self, key: Key, the_plan: Plan, jobs: list[dict[str, Any]], owner: Owner,
                       previous: ResourceStatus | None) -> dict[str, Awaiting]:
        """Finished gated stages whose downstream has not started: which committed samples still lack
        the gate's files (`GateReader`: a bounded part per reconcile, the waiting ones looked at again at
        most every `progressSeconds`; an open gate is not read again)."""
        out: dict[str, Awaiting] = {}
        started = {j["metadata"]["name"] for j in jobs}
        prev = {s.name: s for s in (previous.stages if previous else [])}
        for stage in the_plan.stages:
            if stage.manual_gate is None or not stage.run:
                continue
            job = next((j for j in jobs if j["metadata"]["name"] == child_name(the_plan.name, stage)), None)
            before = prev.get(stage.name)
            done = (job is not None and job_view(job).finished) or (
                before is not None and before.config_hash == stage.config_hash and before.phase in TERMINAL_PHASES)
            downstream = [s for s in the_plan.stages if s.run and stage.name in s.upstream]
            waiting = [s for s in downstream if child_name(the_plan.name, s) not in started
                       and not (s.name in prev and prev[s.name].job_name and prev[s.name].config_hash == s.config_hash)]
            if not done or not waiting:
                continue
            shards = job_view(job).shards if job is not None else before.shards.total if before is not None else 0
            spec_storage = self._spec_storage(key)
            reading = self.gates.read((key, stage.name, stage.config_hash), stage, shards,
                                      partial(self.storage.open, the_plan.output_uri, owner, spec_storage),
                                      partial(self.storage.open, stage.output_uri, owner, spec_storage),
                                      run_uri=the_plan.output_uri)
            if reading.more:
                self._unread.add(key)
            if reading.held is not None:
                out[stage.name] = reading.held
        return out

    def _read_training(self, key: Key, the_plan: Plan, owner: Owner, fresh: bool) -> dict[str, Any] | None:
        """A training stage's state document (plans with a gang stage), at most every
        `progressSeconds`, and once more when the resource ends."""
        if not any(s.gang for s in the_plan.stages):
            return None
        cached = self._training.get(key)
        if cached is not None and not fresh and time.monotonic() - cached[1] < self.settings.progress_seconds:
            return cached[0]
        doc = read_training(self.storage.open(the_plan.output_uri, owner, self._spec_storage(key)))
        self._training[key] = (doc, time.monotonic())
        return doc

    def _write_run_records(self, key: Key, the_plan: Plan, owner: Owner, status: ResourceStatus,
                           spec: CommonSpec) -> None:
        """A resource that just ended: the run's `_genfab/summary.json` (the one `status.outputs.summary`
        points at, `genfab run`'s schema), from each stage's tally of its shard reports (the status), and
        the per-sample records, `_genfab/dropped_samples.csv` and, for a SceneJob, the seed's
        `batch_summary.json`: read from the shard reports here (once, on a budget of their own) where the
        stages have at most `RECORDS_INLINE_SHARDS` shards in all, else by a one-Pod records Job of the
        data plane, which then points the summary at them. A storage problem is logged; the status is
        written anyway."""
        with read_budget.budget(self.settings.read_bounds, self.read_pool):
            try:
                run = self.storage.open(the_plan.output_uri, owner, self._spec_storage(key))
                finished = now_rfc3339(self.clock())
                by_name = {s.name: s for s in status.stages}
                ran = [s for s in the_plan.stages if s.run and s.name in by_name]
                shards = sum(by_name[s.name].shards.total for s in ran)
                request = records_request(the_plan, status.phase, finished).model_dump_json(by_alias=True)
                records_job = records_name(the_plan.name, request)
                unwritten: str | None = (
                    f"written by the records job {records_job} (one Pod): its stages have {shards} shards, more "
                    f"than the {RECORDS_INLINE_SHARDS} whose reports the operator reads at the end of a run; "
                    "droppedSamplesCsv names the file once it is written") if shards > RECORDS_INLINE_SHARDS else None
                reports = {} if unwritten else {s.name: read_reports(run, s.name, s.config_hash) for s in ran}
                rows = [stage_row(s, by_name[s.name], by_name[s.name].tally or tally.of_reports(
                    reports.get(s.name, {})), seconds=stage_seconds(by_name[s.name]))
                        for s in the_plan.stages if s.name in by_name]
                dropped = sum(row["failed"] for row in rows)
                if not unwritten:
                    csv_bytes, dropped = dropped_csv(the_plan, reports)
                    run.write_bytes(DROPPED_KEY, csv_bytes)
                summary = summary_document(the_plan, status, rows, dropped, continue_on_error=spec.continue_on_error,
                                           finished_at=finished, executor="operator", unwritten=unwritten)
                run.write_bytes(SUMMARY_KEY, json.dumps(summary, indent=2).encode())
                document = None if unwritten else batch_document(the_plan, reports, status.phase, finished)
                if document is not None:
                    run.write_bytes(BATCH_SUMMARY_KEY, document)
            except StorageError as exc:
                log.warning("%s %s/%s: the run's summary not written: %s", *key, exc)
                return
        if unwritten:
            self._start_records(key, the_plan, owner, spec, request)

    def _start_records(self, key: Key, the_plan: Plan, owner: Owner, spec: CommonSpec, request: str) -> None:
        """The records Job (create-if-absent: one per run's end); an API error is logged, not retried (the
        summary says which Job writes them, and every shard's report stays under _genfab/progress/)."""
        try:
            made, _ = self._create_child(key, owner, "Job", resource_path("batch/v1", "jobs", owner.namespace),
                                         build_records_job(the_plan, request, spec, owner, self.settings))
        except (KubeError, NameTaken) as exc:
            log.warning("%s %s/%s: the records job not started: %s", *key, exc)
            return
        self.cache.put_job(made)
        log.info("%s %s/%s: the run's per-sample records: records job %s started", *key, made["metadata"]["name"])

    def _spec_storage(self, key: Key) -> dict[str, Any] | None:
        body = self.cache.resource(key) or {}
        storage = (body.get("spec") or {}).get("storage")
        if storage:
            return dict(storage)
        default = self.settings.default_storage
        return default.to_yaml_dict() if default is not None else None

    def _apply(self, key: Key, body: dict[str, Any], resource: Resource, the_plan: Plan, owner: Owner,
               decision: Decision, previous: ResourceStatus | None) -> dict[str, StageObservation]:
        ns = owner.namespace
        for job in decision.delete:
            self._delete_child(key, "Job", resource_path("batch/v1", "jobs", ns, job))
            self._delete_child(key, "ConfigMap", resource_path("v1", "configmaps", ns, job))
            log.info("%s %s/%s: deleted job %s (config changed or stage deselected)", *key, job)
        for group in decision.delete_groups:
            self._delete_child(key, "Service", resource_path("v1", "services", ns, group))
            if self.settings.group_network_policy:
                self._delete_child(key, "NetworkPolicy", resource_path("networking.k8s.io/v1", "networkpolicies", ns,
                                                                       group))
        owned = self._owned(key)
        for job, pod, why in decision.stop_pods:
            # Recorded on the Job first, so the stage's failure can say why once the retries run out.
            with contextlib.suppress(NotFound, Conflict):
                self.kube.patch(resource_path("batch/v1", "jobs", ns, job), {"metadata": {
                    **_uid_precondition(owned, job), "annotations": {ANNOTATION_NO_PROGRESS: why}}})
                self.kube.delete(resource_path("v1", "pods", ns, pod))
            log.warning("%s %s/%s: %s", *key, why)
        for job, suspend in decision.suspend:
            with contextlib.suppress(NotFound, Conflict):  # Conflict: the UID precondition (not the Job it made)
                self.kube.patch(resource_path("batch/v1", "jobs", ns, job),
                                {"metadata": _uid_precondition(owned, job), "spec": {"suspend": suspend}})
        failed: dict[str, StageObservation] = {}
        for name in decision.start:
            stage = the_plan.stage(name)
            try:
                problem = self._start_stage(key, body, resource, the_plan, stage, owner, previous)
            except NameTaken as exc:
                now = now_rfc3339(self.clock())
                problem = StageObservation(stage.name, stage.config_hash, stage.output_uri, "finished", shards_total=1,
                                           shards_failed=1, start_time=now, completion_time=now, reason="NameTaken",
                                           message=str(exc))
            if problem is not None:
                failed[name] = problem
        return failed

    # -- what the operator made (see genfab.operator.ownership)
    def _owned(self, key: Key) -> dict[Child, str]:
        """The children whose UID this operator recorded (the resource's status), or created since."""
        owned = recorded((self.cache.resource(key) or {}).get("status"))
        owned.update(self._made.get(key, {}))
        for child in self._gone.get(key, ()):
            owned.pop(child, None)
        return owned

    def _delete_child(self, key: Key, kind: str, path: str) -> None:
        """Delete a child this operator recorded making, by its UID (a same-named object made since by
        anyone else is not touched); an object it never recorded is left alone."""
        name = path.rpartition("/")[2]
        uid = self._owned(key).get((kind, name))
        if uid is None:
            return
        try:
            self.kube.delete(path, uid=uid)
        except Conflict:
            log.warning("%s %s/%s: %s %s was replaced by an object genfab did not make: left alone", *key, kind, name)
        self._gone.setdefault(key, set()).add((kind, name))

    def _create_child(self, key: Key, owner: Owner, kind: str, path: str, built: dict[str, Any]
                      ) -> tuple[dict[str, Any], bool]:
        """Create `built`, or take the existing object of its name if this operator made it: its UID is
        recorded, or (made just before a restart, its UID never written) it is in every field what
        `built` says. Anything else under the name raises NameTaken."""
        obj, created = self.kube.create_if_absent(path, built)
        name, uid = obj["metadata"]["name"], obj["metadata"].get("uid", "")
        if not created and self._owned(key).get((kind, name)) != uid:
            why = made_like(obj, built, owner.uid)
            if why:
                raise NameTaken(f"{kind} {name} exists in namespace {owner.namespace} and genfab did not create it "
                                f"({why}); genfab neither uses nor deletes it. Delete or rename it, or rename the "
                                "resource")
        self._made.setdefault(key, {})[(kind, name)] = uid
        self._gone.get(key, set()).discard((kind, name))
        return obj, created

    def _start_stage(self, key: Key, body: dict[str, Any], resource: Resource, the_plan: Plan,
                     stage: PlannedStage, owner: Owner, previous: ResourceStatus | None) -> StageObservation | None:
        """List the stage's samples and create its ConfigMap and Job (create-if-absent)."""
        ns = owner.namespace
        jobs_path = resource_path("batch/v1", "jobs", ns)
        name = child_name(the_plan.name, stage)
        if previous is not None and any(s.job_name for s in previous.stages):
            # Jobs were created before, so the cache may lag behind (operator restart): never clear
            # the reports of a Job that exists. A fresh resource has none, which saves the GET.
            try:
                existing = self.kube.get(f"{jobs_path}/{name}")
                uid, recorded_uid = existing["metadata"].get("uid", ""), self._owned(key).get(("Job", name))
                if recorded_uid == uid or (recorded_uid is None and made_before_children(existing, name, previous,
                                                                                         owner.uid)):
                    self._made.setdefault(key, {})[("Job", name)] = uid
                    self.cache.put_job(existing)
                    return None
            except NotFound:
                pass
        cfg = stage_config(the_plan, stage)
        run = self.storage.open(the_plan.output_uri, owner, self._spec_storage(key))
        listing = self._listing(key, the_plan, stage, cfg, owner, resource, run)
        now = now_rfc3339(self.clock())
        before = next((s for s in (previous.stages if previous else []) if s.name == stage.name
                       and s.config_hash == stage.config_hash and s.start_time), None)
        if listing.refused:
            return StageObservation(stage.name, stage.config_hash, stage.output_uri, "finished", shards_total=1,
                                    shards_failed=1, start_time=now, completion_time=now, reason="BadInput",
                                    message=listing.refused)
        if listing.count is None:  # an inventory Job lists the samples: the stage runs, its Job comes next
            return StageObservation(stage.name, stage.config_hash, stage.output_uri, "running",
                                    start_time=before.start_time if before else now, message=listing.waiting)
        samples = listing.count
        shards = shard_count(samples, stage.shard_size, stage.fixed_shards)
        clear_reports(run, stage.name, stage.config_hash)
        self._create_child(key, owner, "ConfigMap", resource_path("v1", "configmaps", ns),
                           build_configmap(the_plan, stage, cfg, owner))
        if stage.gang:  # the group's network and stable names, before its Pods exist
            if self.settings.group_network_policy:
                self._create_child(key, owner, "NetworkPolicy", resource_path("networking.k8s.io/v1",
                                                                              "networkpolicies", ns),
                                   build_group_policy(the_plan, stage, owner, self.settings))
            self._create_child(key, owner, "Service", resource_path("v1", "services", ns),
                               build_service(the_plan, stage, owner))
        job, created = self._create_child(key, owner, "Job", jobs_path, build_job(
            the_plan, stage, cfg, resource.spec, shards, samples, owner, self.settings, manifest=listing.manifest))
        self.cache.put_job(job)
        if listing.manifest:  # its work is done (the manifest stays, the shards read it)
            self._delete_child(key, "Job", resource_path("batch/v1", "jobs", ns, inventory_name(the_plan.name, stage)))
        if created:
            # Its reports were cleared just above and no Pod of it has run: nothing to read back in
            # this reconcile's second look (a storage listing per new Job saved in a burst).
            self.progress.started(key, stage, job["metadata"].get("uid", ""))
            log.info("%s %s/%s: stage %s started: job %s, %d samples in %d shards", *key, stage.name, name,
                     samples, shards)
            if previous is None or not any(s.job_name for s in previous.stages):
                created_at = parse_time(body["metadata"].get("creationTimestamp"))
                if created_at is not None:
                    self.metrics.create_to_job.labels(key[0]).observe(
                        max(0.0, (self.clock() - created_at).total_seconds()))
        return None

    def _listing(self, key: Key, the_plan: Plan, stage: PlannedStage, cfg: StageConfig, owner: Owner,
                 resource: Resource, run: Storage) -> Listing:
        """The stage's sample count (genfab.operator.inventory): from its inventory Job's manifest where one
        ran, else listed here on a small budget, else (too many) from an inventory Job started now."""
        inventory = inventory_name(the_plan.name, stage)
        job = next((j for j in self.cache.jobs(key) if j["metadata"]["name"] == inventory
                    and self._owned(key).get(("Job", inventory)) == j["metadata"].get("uid")), None)
        if job is not None:
            return inventory_listing(job, self.cache.pods(owner.namespace, inventory),
                                     lambda: read_manifest(run, stage.name, stage.config_hash))
        try:
            samples = list_inline(cfg, lambda uri: self.storage.open(uri, owner, self._spec_storage(key)),
                                  self.read_pool)
        except InventoryError as exc:
            return Listing(refused=f"cannot list samples: {exc}")
        if samples is not None:
            return Listing(count=len(samples))
        clear_manifest(run, stage.name, stage.config_hash)  # an earlier run's: the Job writes it anew
        ns = owner.namespace
        self._create_child(key, owner, "ConfigMap", resource_path("v1", "configmaps", ns),
                           build_configmap(the_plan, stage, cfg, owner))
        made, _ = self._create_child(key, owner, "Job", resource_path("batch/v1", "jobs", ns), build_inventory_job(
            the_plan, stage, cfg, resource.spec, owner, self.settings))
        self.cache.put_job(made)
        log.info("%s %s/%s: stage %s: too many samples to list in a reconcile, inventory job %s started", *key,
                 stage.name, inventory)
        return inventory_listing(made, [], lambda: read_manifest(run, stage.name, stage.config_hash))

    def _write_status(self, key: Key, body: dict[str, Any], previous: ResourceStatus | None,
                      status: ResourceStatus) -> None:
        status = status.model_copy(update={"children": child_refs(self._owned(key))})
        if same_status(previous, status):
            return
        new = status.to_yaml_dict()
        for stale in (body.get("status") or {}):
            new.setdefault(stale, None)  # merge patch: null removes fields that no longer apply
        kind, ns, name = key
        try:
            patched = self.kube.patch(cr_path(kind, ns, name, "status"), {"status": new})
        except NotFound:
            return  # deleted meanwhile
        self.cache.put_resource(key, patched)
        self._made.pop(key, None)  # recorded in the status now
        self._gone.pop(key, None)
        self._wake_referrers(key)  # its watch echo will be skipped as known
        for event in transitions(previous, status):
            try:
                self._events.put_nowait((time.monotonic(), body, event.type, event.reason, event.message))
            except queue.Full:
                log.warning("event queue full: dropped %s on %s/%s", event.reason, ns, name)

    def _record_metrics(self, key: Key, the_plan: Plan, decision: Decision, previous: ResourceStatus | None,
                        status: ResourceStatus) -> None:
        kind = key[0]
        prev = {s.name: s for s in (previous.stages if previous else [])}
        for s in status.stages:
            before = prev.get(s.name)
            same = before is not None and before.config_hash == s.config_hash
            for outcome, now_n, was in (("succeeded", s.samples.succeeded, before.samples.succeeded if same and before
                                         else 0),
                                        ("failed", s.samples.failed, before.samples.failed if same and before else 0)):
                if now_n > was:
                    self.metrics.samples.labels(kind, s.name, outcome).inc(now_n - was)
            ended = s.phase in TERMINAL_PHASES and not (same and before and before.phase in TERMINAL_PHASES)
            start, end = parse_time(s.start_time), parse_time(s.completion_time)
            if ended and start and end:
                self.metrics.stage_duration.labels(kind, s.name, s.phase).observe((end - start).total_seconds())
            if ended and s.phase == "Failed":
                self.metrics.stage_failures.labels(kind, s.name, s.reason or "Failed").inc()
        gpus = {s.name: s.resources.gpus for s in the_plan.stages}
        shards = {o.name: (max(0, o.shards_total - o.shards_succeeded - o.shards_failed - o.shards_active),
                           o.shards_active, o.shards_active * gpus.get(o.name, 0))
                  for o in decision.observations if o.state in ("running", "suspended")}
        stalled = next((c for c in status.conditions if c.type == "Stalled" and c.status == "True"), None)
        since = parse_time(stalled.last_transition_time) if stalled else None
        self.metrics.observe_resource(key, status.phase, decision.stall.reason if decision.stall else None, shards,
                                      since.timestamp() if since else None)


def _uid_precondition(owned: dict[Child, str], job: str) -> dict[str, str]:
    """`metadata.uid` for a Job patch: the API server refuses the patch (409) if the Job of that name is
    another object. Observed Jobs are recorded ones, so the UID is known; never sent as null."""
    uid = owned.get(("Job", job))
    return {"uid": uid} if uid else {}


class NameTaken(Exception):
    """An object of the name a child would have exists, and this operator did not make it."""


def _storage_reason(exc: StorageError) -> str:
    """StorageLimit for a bound of the operator's reached (`read_budget`), else StorageUnavailable."""
    return exc.reason if isinstance(exc, StorageLimit) else STORAGE_UNAVAILABLE


def _previous_status(body: dict[str, Any]) -> ResourceStatus | None:
    raw = body.get("status")
    if not raw:
        return None
    try:
        return ResourceStatus.model_validate(raw)
    except ValidationError:
        log.warning("%s: ignoring unreadable status", body["metadata"].get("name"))
        return None


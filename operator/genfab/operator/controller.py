"""The reconcile loop: caches -> pure decision -> a few API writes -> status.

Level-triggered: a reconcile reads the whole current state (resource, its Jobs and Pods from the
watch caches, shard reports from storage) and converges, so missed or repeated events, duplicate
reconciles and operator restarts are harmless. Writes are create-if-absent by deterministic name.
Its helpers each do one job: `ownership.Children` (what the operator made), `starting.StageStarter`,
`references.References`, `gate_reader.GateReader`, `progress.ProgressReader`, `run_end` (a run's
records), `upkeep` and `events` (its other threads).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial

from pydantic import ValidationError

from genfab.api.errors import field_errors
from genfab.api.resources import API_VERSION, KINDS, Resource
from genfab.api.status import TERMINAL_PHASES, ResourceStatus
from genfab.api.training import TrainingState
from genfab.contract.hosted import HostedStage
from genfab.contract.names import ENV_MODELS
from genfab.contract.paths import join_uri
from genfab.inventory.training import read_training
from genfab.operator import read_budget
from genfab.operator.builders import INVENTORY, oversized_configs
from genfab.operator.cache import Cache
from genfab.operator.cluster_support import CLUSTER_UNSUPPORTED, ClusterSupport
from genfab.operator.decide import Decision, Observed, decide, resource_status, same_status, transitions
from genfab.operator.events import EventPoster
from genfab.operator.executions import execution_folder
from genfab.operator.gate_reader import GateReader
from genfab.operator.hosting import write_hosted
from genfab.operator.kube import Conflict, Kube, KubeError, NotFound, Permanent, Temporary
from genfab.operator.leader import LeaderElector
from genfab.operator.metrics import OperatorMetrics
from genfab.operator.namespace_check import NamespaceCheck
from genfab.operator.objects import ANNOTATION_NO_PROGRESS, GenfabResource, Job, Key, Owner, Pod, resource_path
from genfab.operator.objects import custom_path as cr_path
from genfab.operator.observe import is_true, job_view, task_of, unresolved_lost
from genfab.operator.ownership import Children, child_refs
from genfab.operator.plan_memo import PlanMemo
from genfab.operator.pod_refusals import PodRefusals
from genfab.operator.policy import file_roots, policy_errors, resolved_input_errors, tenant_image_errors
from genfab.operator.prerequisites import REASON as NOT_READY
from genfab.operator.prerequisites import not_ready_message
from genfab.operator.progress import ProgressReader
from genfab.operator.read_budget import BytePool
from genfab.operator.reconcile_metrics import record_reconcile, record_refusal
from genfab.operator.references import References
from genfab.operator.refusal import Refused, previous_status
from genfab.operator.relist import Relister, collections
from genfab.operator.run_end import RunEnd
from genfab.operator.settings import OperatorSettings
from genfab.operator.starting import StageStarter
from genfab.operator.storage_access import ResourceStorage, StorageAccess
from genfab.operator.stream_marks import StreamMarks
from genfab.operator.streams import streams_under
from genfab.operator.throttle import Throttled
from genfab.operator.upkeep import label_older_jobs, report_sharding
from genfab.operator.workqueue import WorkQueue, per_group_share
from genfab.planner import Plan, PlanError
from genfab.planner.streaming import without_streams
from genfab.sequencing import models_env, now_rfc3339, status_outputs, unsupported_settings
from genfab.sequencing.execution import ExecutionError
from genfab.sequencing.manual import Awaiting
from genfab.sequencing.preflight import NO_LOCATION as INVALID_SPEC
from genfab.sequencing.preflight import model_refusal
from genfab.sequencing.refs import RefState
from genfab.status import StageObservation
from genfab.status.training import training_status, with_training
from genfab.storage import StorageError

log = logging.getLogger("genfab.operator")
CHILD_EVENT_SECONDS = 1.0
"""How long a reconcile waits after a Pod event or a Job event that does not end the Job: the flurry
of changes one stage's Pods make (created, scheduled, started, ready; the Job's counts after each)
becomes one reconcile and at most one status write, instead of one each."""
REFUSED_BY_SERVER = "RefusedByServer"
"""The Stalled reason when the API server refused a request of a reconcile (403, 422: RBAC, a quota, an
admission plugin or webhook)."""
REFUSAL_RETRY_SECONDS = 60.0
"""How long a resource whose request the API server refused is left alone unless its spec changes: the
refusal is sent again at most this often, not on every event, and an admin's fix (a quota raised, a rule
added) shows within it."""
UNREAD_AGAIN_SECONDS = 0.1
"""How soon a resource is reconciled again when its last reconcile left finished shards' reports unread
(behind every other resource already queued: the work queue is first come, first served per namespace)."""


def unread_again_after(idle_passes: int, longest: float) -> float:
    """When to go on with reports left unread: at once (`UNREAD_AGAIN_SECONDS`) while each pass reads
    some, then twice as long after each pass that read none (a byte pool held by other resources, a
    storage that answers nothing in time), up to `longest` (progressSeconds): a resource whose reports
    cannot be read costs a reconcile per progress period, not ten a second."""
    return min(longest, UNREAD_AGAIN_SECONDS * 2.0 ** min(idle_passes, 32))


def idle_passes(before: int | None, reports_left: bool, read_some: bool, gates_left: bool) -> int | None:
    """Passes in a row that left reports unread and read none (None: nothing left to read). The gates'
    reader bounds its own passes: what it leaves never counts as idle."""
    if reports_left and not read_some:
        return (before or 0) + 1
    return 0 if reports_left or gates_left else None


class Controller:
    def __init__(self, kube: Kube, settings: OperatorSettings, metrics: OperatorMetrics | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        cache = Cache()
        self.kube, self.settings, self.metrics, self.cache = kube, settings, metrics or OperatorMetrics(), cache
        self.clock = clock
        self.children = Children(kube, cache.status)
        self.storage = ResourceStorage(StorageAccess(kube, lambda namespace: file_roots(settings.policy, namespace)),
                                       cache.spec, settings)
        self.read_pool = BytePool(settings.read_bounds.pool_bytes)
        """Bytes all reconciles together may hold read from storage at once (`read_budget`)."""
        self.progress = ProgressReader(settings.progress_seconds, settings.read_bounds.reports)
        self.queue: WorkQueue[Key] = WorkQueue(group=lambda key: key[1], per_group=per_group_share(settings.workers))
        self.plans = PlanMemo()
        self.references = References(kube, cache, self.storage.access, settings, self.plans)
        self.starter = StageStarter(kube, cache, self.children, self.storage.open, self.progress, settings,
                                    self.metrics, clock, self.read_pool)
        self.run_end = RunEnd(cache, self.children, self.storage.open, settings, clock, self.read_pool)
        self.streams = StreamMarks(kube, self.children,
                                   lambda key, plan, owner: self.storage.open(key, plan.output_uri, owner))
        self.gates = GateReader(settings.progress_seconds, settings.read_bounds.reports)
        self.events = EventPoster(kube, self.queue.busy)
        self._held: dict[Key, tuple[int | None, float]] = {}
        """Resources whose request the API server refused: the spec generation refused, and until when."""
        self._unread: dict[Key, int] = {}
        """Resources with shards whose reports a reconcile left for the next (read again soon): how many
        passes in a row read none of them."""
        self._training: Throttled[Key, TrainingState | None] = Throttled(settings.progress_seconds)
        """Training state documents read from storage."""
        self.namespaces = NamespaceCheck(kube, settings)
        self.pod_refusals = PodRefusals(kube, settings.progress_seconds)
        self.support = ClusterSupport(kube, settings.namespaces[0] if settings.namespaces else "default")
        self.relister = Relister(kube, collections(settings.namespaces, self.cache, self.on_resource, self.on_job,
                                                   self.on_pod))
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._leading = threading.Event()
        """Set while this replica reconciles: always alone, only while it holds the Lease in HA."""
        self.elector = None if settings.leader_election is None else LeaderElector(
            kube, settings.pod_namespace, settings.leader_election, settings.identity, self._leading.set,
            self._lost_lease)

    # -- lifecycle
    def start(self) -> None:
        self.support.missing()  # asked (and said in the log) once, before the first reconcile
        if self.settings.shard is not None:  # a few GETs: not on kopf's startup path
            threading.Thread(target=report_sharding, args=(self.kube, self.settings, self.settings.shard),
                             name="genfab-shard-check", daemon=True).start()
        targets = [(self._work, f"genfab-reconcile-{i}") for i in range(self.settings.workers)]
        if self.elector is None:
            self._leading.set()
        else:
            targets.append((partial(self.elector.run, self._stop), "genfab-leader-election"))
        targets += [(self._resync, "genfab-resync"), (partial(self.events.run, self._stop), "genfab-events")]
        for target, name in targets:
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        self.queue.close()
        for t in self._threads:
            if t.name == "genfab-leader-election":
                t.join(5.0)  # it gives the Lease up: the next replica need not wait out its duration

    def _lost_lease(self) -> None:
        """Renewals failed past their deadline: another replica may lead now. Stop reconciling and exit (the
        Deployment starts a fresh follower), as client-go's leader election does."""
        self._leading.clear()
        os.kill(os.getpid(), signal.SIGTERM)

    def _work(self) -> None:
        while not self._stop.is_set():
            if not self._leading.wait(1.0):
                continue  # a follower keeps its queue, and takes it up when it leads
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

    def _resync(self) -> None:
        """Every unfinished resource is reconciled at least every `resync_seconds` (missed events), and
        what was deleted while a watch was away is forgotten every `relist_seconds`."""
        synced = listed = time.monotonic()
        while not self._stop.wait(min(self.settings.resync_seconds, self.settings.relist_seconds)):
            if time.monotonic() - listed >= self.settings.relist_seconds:
                listed = time.monotonic()
                with contextlib.suppress(KubeError):  # the API server away: the next period lists again
                    self.relister.sweep()
            if time.monotonic() - synced < self.settings.resync_seconds:
                continue
            synced = time.monotonic()
            if self.settings.shard is not None:
                label_older_jobs(self.kube, self.cache, self.settings)
            for key in self.cache.resource_keys():
                status = self.cache.status(key) or {}
                if status.get("phase") not in TERMINAL_PHASES:
                    self.queue.add(key)

    # -- watch events (called by the kopf handlers)
    def on_resource(self, kind: str, event_type: str | None, body: GenfabResource) -> None:
        meta = body.get("metadata", {})
        if self.settings.shard is not None and not self.settings.shard.owns(meta.get("uid", "")):
            return  # another shard's (an API server without sharded watches sends every resource)
        key: Key = (kind, meta.get("namespace", ""), meta.get("name", ""))
        if event_type == "DELETED":
            self.cache.put_resource(key, None)
            self.plans.forget(key)
            self.metrics.observe_resource(key, None, None)
            self._held.pop(key, None)
            for forget in (self.progress.forget, self._forget_unread, self.gates.forget, self._training.forget,
                           self.children.forget, self.streams.forget):
                forget(key)
            return
        if not self.cache.put_resource(key, body):
            return  # the echo of this operator's own status write: handled when it was written
        self.queue.add(key, first=not body.get("status"))
        self._wake_referrers(key)

    def _wake_referrers(self, key: Key) -> None:
        """Resources waiting for this one's output are reconciled at once when it changes."""
        for referrer in self.references.referrers(key):
            self.queue.add(referrer)

    def on_job(self, event_type: str | None, body: Job) -> None:
        key = self.cache.put_job(body, deleted=event_type == "DELETED")
        if key is None:
            return
        if event_type == "DELETED" or is_true(body, "Complete") or is_true(body, "Failed"):
            self.queue.add(key)  # the stage ended: the next one may start now
        else:
            self.queue.add_after(key, CHILD_EVENT_SECONDS)

    def on_pod(self, event_type: str | None, body: Pod) -> None:
        key = self.cache.put_pod(body, deleted=event_type == "DELETED")
        if key is not None:
            self.queue.add_after(key, CHILD_EVENT_SECONDS)

    # -- one reconcile
    def reconcile(self, key: Key) -> None:
        started = time.monotonic()
        body = self.cache.resource(key)
        if body is None or body.get("metadata", {}).get("deletionTimestamp"):
            return  # deleted: owner references let the garbage collector remove the children
        held = self._held.get(key)
        if held is not None:
            if held[0] == body["metadata"].get("generation") and time.monotonic() < held[1]:
                return  # refused by the server: its retry is already queued for `held[1]`
            del self._held[key]
        try:
            with read_budget.budget(self.settings.read_bounds, self.read_pool):
                self._reconcile(key, body)
        finally:
            self.metrics.reconcile_seconds.labels(key[0]).observe(time.monotonic() - started)

    def _reconcile(self, key: Key, body: GenfabResource) -> None:
        kind, namespace, name = key
        generation = body["metadata"].get("generation")
        previous = previous_status(body)
        now = self.clock()
        owner = Owner(API_VERSION, kind, name, namespace, body["metadata"].get("uid", ""))
        try:
            resource, the_plan, refs = self._admit(key, body, owner, previous)
            observed = self._observe(key, the_plan, owner, previous, refs)
            decision = decide(the_plan, resource.spec, observed, previous, now,
                              self.settings.idle_release_seconds)
            failed_starts = self._apply(key, body, resource, the_plan, owner, decision, previous)
            if decision.start:  # re-decide with the Jobs just created
                observed = self._observe(key, the_plan, owner, previous, refs)
                decision = decide(the_plan, resource.spec, observed, previous, now,
                              self.settings.idle_release_seconds)
        except Refused as refused:
            if refused.look_again:
                self.queue.add_after(key, self.settings.progress_seconds)
            return self._refused(key, body, previous, refused.status(previous, generation, now_rfc3339(now)))
        except Permanent as exc:  # refused by the server: say it once, send it again only later
            self._held[key] = (generation, time.monotonic() + REFUSAL_RETRY_SECONDS)
            self.queue.add_after(key, REFUSAL_RETRY_SECONDS)
            log.warning("%s %s/%s: the API server refused: %s (again in %.0f s, or when the spec changes)", *key,
                        exc, REFUSAL_RETRY_SECONDS)
            return self._refused(key, body, previous, Refused(str(exc), REFUSED_BY_SERVER).status(
                previous, generation, now_rfc3339(now)))
        except StorageError as exc:  # say it on the resource, then retry with backoff (it may recover)
            self._refused(key, body, previous, Refused.storage(exc).status(previous, generation, now_rfc3339(now)))
            raise
        decision.observations = [failed_starts.get(o.name, o) for o in decision.observations]
        spec = resource.spec
        status = resource_status(decision, spec, previous, generation, now_rfc3339(now), status_outputs(the_plan),
                                 the_plan.custom_stages)
        status = status.model_copy(update={"execution": the_plan.execution})
        status = with_training(status, training_status(
            self._read_training(key, the_plan, owner, fresh=status.phase in TERMINAL_PHASES),
            join_uri(the_plan.output_uri, "checkpoints")))
        if status.phase in TERMINAL_PHASES and (previous is None or previous.phase not in TERMINAL_PHASES):
            self.run_end.end(key, the_plan, owner, status, spec)
        self._write_status(key, body, previous, status)
        record_reconcile(self.metrics, key, the_plan, decision, previous, status)
        waiting_for_a_person = any(decision.gates.values())  # poll storage for the choice: no event says it
        waiting_for_a_peer = bool(refs) and self.settings.shard is not None  # another shard's: no event here
        if key in self._unread:  # finished shards left unread by this reconcile's bound: on with them soon
            self.queue.add_after(key, unread_again_after(self._unread[key], self.settings.progress_seconds))
        elif status.phase not in TERMINAL_PHASES and (any(o.state == "running" for o in decision.observations)
                                                      or waiting_for_a_person or waiting_for_a_peer):
            self.queue.add_after(key, self.settings.progress_seconds)

    def _forget_unread(self, key: Key) -> None:
        self._unread.pop(key, None)

    def _admit(self, key: Key, body: GenfabResource, owner: Owner, previous: ResourceStatus | None
               ) -> tuple[Resource, Plan, dict[str, RefState]]:
        """The resource, its plan with the references it reads resolved, and the references still
        pending; or `Refused` with what stops it (every refusal leaves through the one handler)."""
        kind, namespace, _ = key
        generation = body["metadata"].get("generation")
        try:
            resource = self.plans.get(key, body, "resource", lambda: KINDS[kind].model_validate(
                {k: v for k, v in body.items() if k != "status"}))
            refused = self.plans.get(key, body, "policy",
                                     lambda: policy_errors(resource.spec, self.settings.policy, namespace))
            if refused:  # what this cluster's admins do not allow: no Job, a condition naming each field
                raise Refused("; ".join(str(e) for e in refused))
            execution = execution_folder(self.kube, self.cache, self.storage.open, self.clock(), key, resource, owner,
                                         previous, self._wake_referrers)
            the_plan, part = self.references.plan(key, body, resource, owner, execution)
            refused = self.plans.get(key, body, ("checks", *part), lambda: oversized_configs(the_plan) + (
                tenant_image_errors(the_plan, resource.spec, self.settings.policy)))
            cannot = unsupported_settings(the_plan.stages)  # the lab's method meant or asked without its image
            no_models = model_refusal(the_plan, models_env(resource.spec.models, mounted=True).get(ENV_MODELS))
            if no_models is not None and no_models[0] == INVALID_SPEC:  # no location: every stage Pod would fail
                cannot = [*cannot, no_models[1]]
            if refused or cannot:
                raise Refused("; ".join([*(str(e) for e in refused), *cannot]))
        except ValidationError as exc:
            raise Refused("; ".join(str(e) for e in field_errors(exc))) from None
        except (PlanError, ExecutionError) as exc:
            raise Refused(str(exc)) from None
        settled = (previous is not None and previous.phase in TERMINAL_PHASES
                   and previous.observed_generation == generation)
        if not settled and self.support.missing():  # its Jobs would run wrong here: create none, say why
            raise Refused(self.support.message(), CLUSTER_UNSUPPORTED)
        missing = [] if settled else self.namespaces.missing(namespace, resource)
        if missing:  # Jobs there would fail late or run unconfined: create nothing, say what is missing
            raise Refused(not_ready_message(namespace, missing), NOT_READY, look_again=True)
        if no_models is not None and not settled:  # a model is not uploaded yet: create nothing, look again
            reason, message = no_models
            raise Refused(message, reason, look_again=True)
        the_plan, refs = self.references.resolve(key, the_plan)
        queue = resource.spec.queue_name or self.settings.default_queue
        if not streams_under(self.settings.streaming, queue, self.settings.kueue_elastic_jobs):
            the_plan = without_streams(the_plan)  # every stage waits for its upstream stages
        refused = resolved_input_errors(the_plan, self.settings.policy, namespace, resource.spec)
        if refused:  # another resource's status pointed outside this namespace's storage
            raise Refused("; ".join(str(e) for e in refused))
        return resource, the_plan, refs

    def _observe(self, key: Key, the_plan: Plan, owner: Owner, previous: ResourceStatus | None,
                 refs: dict[str, RefState]) -> Observed:
        mine = [j for j in self.cache.jobs(key) if self.children.mine(key, j)]  # only Jobs it recorded making
        jobs = [j for j in mine if task_of(j) is None]  # inventory and records Jobs are not stages
        pods = {j["metadata"]["name"]: self.cache.pods(owner.namespace, j["metadata"]["name"]) for j in jobs}
        lost = {}
        for j in jobs:
            jn = j["metadata"]["name"]
            lost[jn] = unresolved_lost(self.cache.lost(owner.namespace, jn), pods[jn], job_view(j))
            self.cache.forget_lost(owner.namespace, jn, lost[jn])
        run = partial(self.storage.open, key, the_plan.output_uri, owner)
        reading = self.progress.read(key, the_plan, jobs, pods, previous, run)
        for state, n in (("finished", reading.finished_read), ("running", reading.running_read)):
            if n:
                self.metrics.reports_read.labels(key[0], state).inc(n)
        awaiting, more = self._read_awaiting(key, the_plan, jobs, owner, previous)
        idle = idle_passes(self._unread.get(key), reading.more, reading.finished_read + reading.running_read > 0, more)
        if idle is None:
            self._forget_unread(key)
        else:
            self._unread[key] = idle
        inventories = [j for j in mine if task_of(j) == INVENTORY]
        listing_pods = {j["metadata"]["name"]: self.cache.pods(owner.namespace, j["metadata"]["name"])
                        for j in inventories}
        watched = jobs + inventories
        views = {j["metadata"]["name"]: job_view(j) for j in watched}
        refused = self.pod_refusals.read(owner.namespace, watched, views, {**pods, **listing_pods}, self.clock())
        return Observed(jobs=jobs, pods=pods, lost=lost, progress=reading.progress, awaiting=awaiting, refs=refs,
                        inventories=inventories, refused_pods=refused)

    def _read_awaiting(self, key: Key, the_plan: Plan, jobs: Sequence[Job], owner: Owner,
                       previous: ResourceStatus | None) -> tuple[dict[str, Awaiting], bool]:
        """Which committed samples of finished gated stages still lack the gate's files (`GateReader`: a
        bounded part per reconcile, the waiting ones looked at again at most every `progressSeconds`)."""
        return self.gates.awaiting(key, the_plan, jobs, previous, partial(self.storage.open, key, the_plan.output_uri,
                                                                          owner),
                                   lambda uri: self.storage.open(key, uri, owner))

    def _read_training(self, key: Key, the_plan: Plan, owner: Owner, fresh: bool) -> TrainingState | None:
        """A training stage's state document (plans with a gang stage), at most every
        `progressSeconds`, and once more when the resource ends."""
        if not any(s.gang for s in the_plan.stages):
            return None
        return self._training.get(key, lambda: read_training(self.storage.open(key, the_plan.output_uri, owner)),
                                  fresh=fresh)

    def _apply(self, key: Key, body: GenfabResource, resource: Resource, the_plan: Plan, owner: Owner,
               decision: Decision, previous: ResourceStatus | None) -> dict[str, StageObservation]:
        """Carry out the decision; returns the stages that failed at their start (their observations)."""
        ns, children = owner.namespace, self.children
        for job in decision.delete:
            children.delete(key, "Job", resource_path("batch/v1", "jobs", ns, job))
            children.delete(key, "ConfigMap", resource_path("v1", "configmaps", ns, job))
            log.info("%s %s/%s: deleted job %s (config changed or stage deselected)", *key, job)
        for group in decision.delete_groups:
            children.delete(key, "Service", resource_path("v1", "services", ns, group))
            if self.settings.group_network_policy:
                children.delete(key, "NetworkPolicy", resource_path("networking.k8s.io/v1", "networkpolicies", ns,
                                                                    group))
        for job, pod, why in decision.stop_pods:
            # Recorded on the Job first, so the stage's failure can say why once the retries run out.
            with contextlib.suppress(NotFound, Conflict):
                self.kube.patch(resource_path("batch/v1", "jobs", ns, job), {"metadata": {
                    **children.uid_precondition(key, job), "annotations": {ANNOTATION_NO_PROGRESS: why}}})
                self.kube.delete(resource_path("v1", "pods", ns, pod))
            log.warning("%s %s/%s: %s", *key, why)
        self.streams.apply(key, the_plan, owner, decision.streams)
        for job, suspend in decision.suspend:
            with contextlib.suppress(NotFound, Conflict):  # Conflict: the UID precondition (not the Job it made)
                self.kube.patch(resource_path("batch/v1", "jobs", ns, job),
                                {"metadata": children.uid_precondition(key, job), "spec": {"suspend": suspend}})
        if decision.stop_hosted:  # the shared worker Job's workers stop waiting for them
            run = self.storage.open(key, the_plan.output_uri, owner)
            for name, config_hash in decision.stop_hosted:
                still = any(s.name == name and s.short_hash == config_hash for s in the_plan.stages)
                write_hosted(run, name, config_hash, HostedStage(
                    stopped="its upstream stage failed" if still else "its config changed"))
        failed: dict[str, StageObservation] = {}
        for name in decision.start:
            problem = self.starter.start(key, body, resource, the_plan, the_plan.stage(name), owner, previous,
                                         decision.stream_starts.get(name), decision.hosted_starts.get(name),
                                         decision.hosting.get(name, ()))
            if problem is not None:
                failed[name] = problem
        return failed

    def _refused(self, key: Key, body: GenfabResource, previous: ResourceStatus | None,
                 status: ResourceStatus) -> None:
        self._write_status(key, body, previous, status)
        record_refusal(self.metrics, key, status)

    def _write_status(self, key: Key, body: GenfabResource, previous: ResourceStatus | None,
                      status: ResourceStatus) -> None:
        status = status.model_copy(update={"children": child_refs(self.children.owned(key))})
        if same_status(previous, status):
            return
        new = status.to_yaml_dict()
        for stale in body.get("status", {}):
            new.setdefault(stale, None)  # merge patch: null removes fields that no longer apply
        try:
            patched = self.kube.patch(cr_path(*key, "status"), {"status": new})
        except NotFound:
            return  # deleted meanwhile
        self.cache.put_resource(key, patched)
        self.children.written(key)  # recorded in the status now
        self._wake_referrers(key)  # its watch echo will be skipped as known
        for event in transitions(previous, status):
            self.events.post(body, event.type, event.reason, event.message)

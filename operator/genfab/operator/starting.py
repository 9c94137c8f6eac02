"""Starting a stage on the cluster: its samples counted (listed here, or by an inventory Job), then its
ConfigMap, a gang's Service and NetworkPolicy, and its Job, each create-if-absent by deterministic name."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Literal

from genfab.api.resources import Resource
from genfab.api.status import ResourceStatus
from genfab.contract import StageConfig, shard_count, too_many_shards
from genfab.contract.hosted import HostedStage
from genfab.inventory import InventoryError, clear_reports
from genfab.inventory.manifest import clear_manifest, read_manifest
from genfab.inventory.workers import write_input
from genfab.operator.builders import build_configmap, build_group_policy, build_inventory_job, build_job, build_service
from genfab.operator.cache import Cache
from genfab.operator.cluster_support import CLUSTER_UNSUPPORTED, dropped, unsupported_message
from genfab.operator.hosting import Hosted, hosted_annotation, started_hosted, stream_source, write_hosted
from genfab.operator.inventory import Listing, inventory_listing, list_inline
from genfab.operator.kube import Kube, NotFound
from genfab.operator.metrics import OperatorMetrics
from genfab.operator.objects import GenfabResource, Key, Owner, child_name, inventory_name, resource_path
from genfab.operator.observe import parse_time
from genfab.operator.ownership import Children, NameTaken, made_before_children
from genfab.operator.progress import ProgressReader
from genfab.operator.read_budget import BytePool
from genfab.operator.refusal import Refused
from genfab.operator.settings import OperatorSettings
from genfab.operator.storage_access import Opener
from genfab.operator.streams import StreamStart
from genfab.planner import Plan, PlannedStage, stage_config
from genfab.sequencing import now_rfc3339
from genfab.status import StageObservation, failed_at_start
from genfab.storage import Storage

log = logging.getLogger("genfab.operator")


class StageStarter:
    def __init__(self, kube: Kube, cache: Cache, children: Children, open_run: Opener, progress: ProgressReader,
                 settings: OperatorSettings, metrics: OperatorMetrics, clock: Callable[[], datetime],
                 read_pool: BytePool) -> None:
        self.kube = kube
        self.cache = cache
        self.children = children
        self.open_run = open_run
        self.progress = progress
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.read_pool = read_pool
        """Bytes all reconciles together may hold read from storage (a stage's samples listed here)."""

    def start(self, key: Key, body: GenfabResource, resource: Resource, the_plan: Plan, stage: PlannedStage,
              owner: Owner, previous: ResourceStatus | None, stream: StreamStart | None = None,
              hosted_by: str | None = None, hosting: Sequence[str] = ()) -> StageObservation | None:
        """Start `stage`; None once its Job exists, else what the stage is meanwhile: failed at its start
        (its samples cannot be listed, a name it needs is taken) or running while an inventory Job lists
        its samples. `stream`: it takes its upstream's shards as they finish (nothing to list: its shards
        are the upstream's, its input marked as it is committed). `hosted_by`: the running shared worker Job
        that takes its shards (no Job of its own); `hosting`: the stages its Job hosts (genfab.operator.hosting)."""
        try:
            if hosted_by is not None:
                return self._start_hosted(key, the_plan, stage, owner, resource, stream, hosted_by)
            return self._start(key, body, resource, the_plan, stage, owner, previous, stream, hosting)
        except NameTaken as exc:
            return failed_at_start(stage.name, stage.config_hash, stage.output_uri, str(exc),
                                   now_rfc3339(self.clock()), reason="NameTaken")

    def _start(self, key: Key, body: GenfabResource, resource: Resource, the_plan: Plan, stage: PlannedStage,
               owner: Owner, previous: ResourceStatus | None, stream: StreamStart | None, hosting: Sequence[str]
               ) -> StageObservation | None:
        ns = owner.namespace
        jobs_path = resource_path("batch/v1", "jobs", ns)
        name = child_name(the_plan.name, stage)
        existing = self._existing(key, jobs_path, name, owner, previous)
        if existing == "kept":
            return None
        cfg = stage_config(the_plan, stage, stream.upstream_shards if stream is not None else None)
        run = self.open_run(key, the_plan.output_uri, owner)
        listing = (Listing(count=stream.samples) if stream is not None else
                   self._listing(key, the_plan, stage, cfg, owner, resource, run))
        now = now_rfc3339(self.clock())
        if listing.refused:
            return failed_at_start(stage.name, stage.config_hash, stage.output_uri, listing.refused, now,
                                   reason="BadInput")
        if listing.count is None:  # an inventory Job lists the samples: the stage runs, its Job comes next
            before = next((s for s in (previous.stages if previous else []) if s.name == stage.name
                           and s.config_hash == stage.config_hash and s.start_time), None)
            return StageObservation(stage.name, stage.config_hash, stage.output_uri, "running",
                                    start_time=before.start_time if before else now, message=listing.waiting)
        samples = listing.count
        shards = stream.shards if stream is not None else shard_count(samples, stage.shard_size, stage.fixed_shards)
        too_many = too_many_shards(stage.name, samples, stage.shard_size, shards)
        if too_many is not None:  # its listing said how many only now: no Job Kubernetes would refuse
            return failed_at_start(stage.name, stage.config_hash, stage.output_uri, too_many, now, reason="BadInput")
        if existing is None:  # a Job that exists may have run: its reports stay (the create below adopts it)
            clear_reports(run, stage.name, stage.config_hash)
        if stream is not None:  # what its workers may take now (raised as the upstream commits more)
            write_input(run, stage.name, stage.config_hash, stream.ready)
        children = self.children
        children.create(key, owner, "ConfigMap", resource_path("v1", "configmaps", ns),
                        build_configmap(the_plan, stage, cfg, owner))
        if stage.gang:  # the group's network and stable names, before its Pods exist
            if self.settings.group_network_policy:
                children.create(key, owner, "NetworkPolicy", resource_path("networking.k8s.io/v1", "networkpolicies",
                                                                           ns),
                                build_group_policy(the_plan, stage, owner, self.settings))
            children.create(key, owner, "Service", resource_path("v1", "services", ns),
                            build_service(the_plan, stage, owner))
        sent = build_job(the_plan, stage, cfg, resource.spec, shards, samples, owner, self.settings,
                         manifest=listing.manifest, ready=stream.ready if stream is not None else None,
                         hosting=[the_plan.stage(name) for name in hosting])
        job, created = children.create(key, owner, "Job", jobs_path, sent)
        lost = dropped(sent, job)
        if lost:  # it would run every Pod as the same shard, unbounded: gone before its Pods start
            children.delete(key, "Job", resource_path("batch/v1", "jobs", ns, name))
            raise Refused(unsupported_message(lost, "", what=f"the API server (or an admission webhook) that "
                                                             f"stored job {name}"), CLUSTER_UNSUPPORTED)
        self.cache.put_job(job)
        if listing.manifest:  # its work is done (the manifest stays, the shards read it)
            children.delete(key, "Job", resource_path("batch/v1", "jobs", ns, inventory_name(the_plan.name, stage)))
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

    def _start_hosted(self, key: Key, the_plan: Plan, stage: PlannedStage, owner: Owner, resource: Resource,
                      stream: StreamStart | None, job_name: str) -> StageObservation | None:
        """A stage the shared worker Job `job_name` hosts: counted and cleared as any, then its config and shard
        count where the Job's workers find them, and the Job's record of it (genfab.operator.hosting)."""
        cfg = stage_config(the_plan, stage, stream.upstream_shards if stream is not None else None)
        run = self.open_run(key, the_plan.output_uri, owner)
        listing = (Listing(count=stream.samples) if stream is not None else
                   self._listing(key, the_plan, stage, cfg, owner, resource, run))
        now = now_rfc3339(self.clock())
        if listing.refused:  # it will not run: the shared Job's workers must not wait for it
            write_hosted(run, stage.name, stage.config_hash, HostedStage(stopped=listing.refused))
            return failed_at_start(stage.name, stage.config_hash, stage.output_uri, listing.refused, now,
                                   reason="BadInput")
        if listing.count is None:
            return StageObservation(stage.name, stage.config_hash, stage.output_uri, "running", start_time=now,
                                    message=listing.waiting)
        shards = stream.shards if stream is not None else shard_count(listing.count, stage.shard_size,
                                                                       stage.fixed_shards)
        too_many = too_many_shards(stage.name, listing.count, stage.shard_size, shards)
        if too_many is not None:
            write_hosted(run, stage.name, stage.config_hash, HostedStage(stopped=too_many))
            return failed_at_start(stage.name, stage.config_hash, stage.output_uri, too_many, now, reason="BadInput")
        if not started_hosted(run, stage):  # a start cut short after this (an operator restart) keeps what ran
            clear_reports(run, stage.name, stage.config_hash)
        if stream is not None:
            write_input(run, stage.name, stage.config_hash, stream.ready)
        write_hosted(run, stage.name, stage.config_hash, HostedStage(config=cfg, shards=shards,
                                                                        manifest=listing.manifest))
        record = Hosted(stage.config_hash, shards, listing.count, stream_source(cfg))
        job = self.kube.patch(resource_path("batch/v1", "jobs", owner.namespace, job_name), {"metadata": {
            **self.children.uid_precondition(key, job_name), "annotations": {hosted_annotation(stage.name):
                                                                              record.to_json()}}})
        self.cache.put_job(job)
        self.progress.started(key, stage, job["metadata"].get("uid", ""))
        if listing.manifest:
            self.children.delete(key, "Job", resource_path("batch/v1", "jobs", owner.namespace,
                                                            inventory_name(the_plan.name, stage)))
        log.info("%s %s/%s: stage %s started in shared worker job %s: %d samples in %d shards", *key, stage.name,
                 job_name, listing.count, shards)
        return None

    def _existing(self, key: Key, jobs_path: str, name: str, owner: Owner, previous: ResourceStatus | None
                  ) -> Literal["kept", "unrecorded"] | None:
        """Jobs were created before, so the cache may lag behind (operator restart): "kept" when the stage's
        Job exists and is the one this operator recorded (adopted as is), "unrecorded" when one of its name
        exists but no record says this operator made it (the create adopts it if it is what genfab makes,
        else refuses the name), None when there is none. The reports of a Job that exists are never
        cleared: its Pods may have written them. Asked for every stage it starts, a fresh resource's too:
        an operator killed between a Job's create and the status write that records it restarts with no
        record of that Job, and clearing its reports then lost what its Pods had written (a stage
        Succeeded with 0 samples)."""
        try:
            existing = self.kube.get(f"{jobs_path}/{name}")
        except NotFound:
            return None
        uid, recorded_uid = existing["metadata"].get("uid", ""), self.children.uid(key, "Job", name)
        if recorded_uid == uid or (recorded_uid is None and made_before_children(existing, name, previous,
                                                                                 owner.uid)):
            self.children.adopt(key, "Job", name, uid)
            self.cache.put_job(existing)
            return "kept"
        return "unrecorded"

    def _listing(self, key: Key, the_plan: Plan, stage: PlannedStage, cfg: StageConfig, owner: Owner,
                 resource: Resource, run: Storage) -> Listing:
        """The stage's sample count (genfab.operator.inventory): from its inventory Job's manifest where one
        ran, else listed here on a small budget, else (too many) from an inventory Job started now."""
        inventory = inventory_name(the_plan.name, stage)
        job = next((j for j in self.cache.jobs(key) if j["metadata"]["name"] == inventory
                    and self.children.mine(key, j)), None)
        if job is not None:
            return inventory_listing(job, self.cache.pods(owner.namespace, inventory),
                                     lambda: read_manifest(run, stage.name, stage.config_hash))
        try:
            samples = list_inline(cfg, lambda uri: self.open_run(key, uri, owner), self.read_pool)
        except InventoryError as exc:
            return Listing(refused=f"cannot list samples: {exc}")
        if samples is not None:
            return Listing(count=len(samples))
        clear_manifest(run, stage.name, stage.config_hash)  # an earlier run's: the Job writes it anew
        ns = owner.namespace
        self.children.create(key, owner, "ConfigMap", resource_path("v1", "configmaps", ns),
                              build_configmap(the_plan, stage, cfg, owner))
        made, _ = self.children.create(key, owner, "Job", resource_path("batch/v1", "jobs", ns), build_inventory_job(
            the_plan, stage, cfg, resource.spec, owner, self.settings))
        self.cache.put_job(made)
        log.info("%s %s/%s: stage %s: too many samples to list in a reconcile, inventory job %s started", *key,
                 stage.name, inventory)
        return inventory_listing(made, [], lambda: read_manifest(run, stage.name, stage.config_hash))

"""Resources that read other resources: a plan planned again with the TuningRun checkpoints and model
identities it depends on, another resource's output substituted for a `ref:` input once it is usable,
and who to wake when a referenced resource changes."""

from __future__ import annotations

from typing import Any

from genfab.api.resources import Resource
from genfab.operator.cache import Cache
from genfab.operator.kube import Kube, NotFound
from genfab.operator.model_access import ModelIdentities
from genfab.operator.objects import GenfabResource, Key, Owner
from genfab.operator.objects import custom_path as cr_path
from genfab.operator.plan_memo import PlanMemo
from genfab.operator.settings import OperatorSettings
from genfab.operator.storage_access import StorageAccess
from genfab.operator.throttle import Throttled
from genfab.planner import Plan, plan
from genfab.sequencing.refs import (
    RefState,
    checkpoint_state,
    plan_references,
    reference_state,
    stage_ref_paths,
    substitute_refs,
)

PEERS_KEPT = 10_000
"""Other shards' resources kept read (`References.peer`) before the stale ones are dropped."""


class References:
    def __init__(self, kube: Kube, cache: Cache, storage: StorageAccess, settings: OperatorSettings,
                 plans: PlanMemo) -> None:
        self.kube = kube
        self.cache = cache
        self.settings = settings
        self.plans = plans
        self.model_identities = ModelIdentities(storage)
        self._referrers: dict[Key, set[Key]] = {}
        """Resources whose plans read another's output: referenced key -> the keys reading it."""
        self._peers: Throttled[Key, GenfabResource | None] = Throttled(settings.progress_seconds, PEERS_KEPT)
        """Resources another shard owns that this shard's resources read (None: not found)."""

    def referrers(self, key: Key) -> set[Key]:
        """The resources waiting for this one's output: reconciled at once when it changes."""
        return set(self._referrers.get(key, ()))

    def plan(self, key: Key, body: GenfabResource, resource: Resource, owner: Owner,
             execution: str | None = None) -> tuple[Plan, tuple[Any, ...]]:
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
            state = checkpoint_state(target, path, self.peer((ref_kind, owner.namespace, ref_name)))
            if state.state == "ready":
                found[target] = state.root
        spec_storage = self.settings.storage_for(resource.spec.storage)
        identities = self.model_identities.read(owner, resource.spec.models, spec_storage,
                                                first.model_ids())
        if not (found or identities):
            return first, part
        part = ("plan", execution, tuple(sorted(found.items())), tuple(sorted(identities.items())))
        return self.plans.get(key, body, part, lambda: plan(resource, references=found, models=identities,
                                                             execution=execution)), part

    def peer(self, key: Key) -> GenfabResource | None:
        """A resource another one reads (its output, its checkpoints): from the watch cache, or, where
        another shard owns it, read by GET at most every `progress_seconds` (its changes wake no
        referrer here: a referrer waiting on it is reconciled that often, see `Controller._reconcile`)."""
        body = self.cache.resource(key)
        if body is not None or self.settings.shard is None:
            return body
        return self._peers.get(key, lambda: self._get(key))

    def _get(self, key: Key) -> GenfabResource | None:
        try:
            found: GenfabResource = self.kube.get(cr_path(*key))
            return found
        except NotFound:
            return None

    def resolve(self, key: Key, the_plan: Plan) -> tuple[Plan, dict[str, RefState]]:
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
                state = reference_state(target, path, self.peer(ref_key))
                if state.state == "ready" and ref_kind == "TuningRun":  # planned again next time: not yet
                    state = RefState("waiting", message=f"waiting for {target}")
                if state.state == "ready":
                    roots[target] = state.root
                else:
                    pending[target] = state
        return substitute_refs(the_plan, roots), pending

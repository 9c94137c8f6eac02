"""Inputs that are another resource's output (`ref:DatasetJob/name/...`) in a local run.

A cluster resolves them from the referenced resource's status; on this machine there is no
status to read, so a reference resolves to `--ref Kind/name=URI` when given, else to that
resource's own local run at the local default output (`genfab run` of it first), else the run
cannot start and says how to fix it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from genfab.contract.names import checkpoint_step
from genfab.contract.paths import join_uri
from genfab.planner import Plan
from genfab.sequencing import CannotRun
from genfab.sequencing.refs import plan_references, stage_refs, substitute_refs
from genfab.storage import Storage, StorageError

Lookup = Callable[[str], str | None]
"""`Kind/name` -> the output root of a finished local run of it, or None."""


def parse_ref_options(values: tuple[str, ...] | list[str]) -> dict[str, str]:
    """`--ref Kind/name=URI` options as a mapping; a malformed one is a CannotRun naming it."""
    found: dict[str, str] = {}
    for value in values:
        target, sep, uri = value.partition("=")
        kind, slash, name = target.partition("/")
        if not sep or not slash or not kind or not name or "/" in name or not uri:
            raise CannotRun(f"--ref {value!r}: expected Kind/name=URI, e.g. DatasetJob/my-data=file://./genfab-runs/my-data")
        found[target] = uri.rstrip("/")
    return found


def resolve_refs(plan: Plan, given: Mapping[str, str], lookup: Lookup) -> Plan:
    """`plan` with every `ref:` input of a stage that runs replaced by a storage URI. Config hashes
    stay as planned: they name the reference, as in a cluster."""
    roots: dict[str, str] = {}
    for stage in plan.stages:
        if not stage.run:
            continue
        for target in stage_refs(stage):
            root = given.get(target) or lookup(target)
            if root is None:
                kind = target.partition("/")[0]
                uri = next(u for u in stage.input_uris if u.startswith(f"ref:{target}"))
                raise CannotRun(
                    f"stage {stage.name}: input {uri} is the output of {target}, which a cluster resolves from "
                    f"its status; run that {kind} here first (genfab run, default output), or pass "
                    f"--ref {target}=URI with its output")
            roots[target] = root
    resolved = substitute_refs(plan, roots)
    # stages that do not run keep their references (nothing reads them)
    return dataclasses.replace(resolved, stages=tuple(r if s.run else s for s, r in zip(plan.stages, resolved.stages,
                                                                                         strict=True)))


def resolve_checkpoints(plan: Plan, given: Mapping[str, str], open_fn: Callable[[str], Storage]) -> dict[str, str]:
    """The TuningRun checkpoints the plan's settings depend on (`refinement.tuningRunRef`), from
    `--ref TuningRun/name=URI`: a `model_<step>.pkl`, or the run's folder, whose `checkpoints/` gives
    the asked step or the newest. Returns `references` for planning again."""
    found: dict[str, str] = {}
    for target, path in plan_references(plan):
        uri = given.get(target)
        want = path.removeprefix("checkpoints/")
        if uri is None:
            raise CannotRun(f"refinement.tuningRunRef names {target}, which a cluster resolves from its status; pass "
                            f"--ref {target}=URI with its run folder ({{output}}/tuning_runs/{{runName}}) or a "
                            "model_<step>.pkl, or set refinement.checkpointUri")
        if uri.endswith(".pkl"):
            if want != "latest" and not uri.endswith("/" + want):
                raise CannotRun(f"--ref {target}={uri}: refinement.tuningRunRef.step asks for {want}")
            found[target] = uri
            continue
        try:
            names = [o.key.rsplit("/", 1)[-1] for o in open_fn(uri).list("checkpoints/")]
        except StorageError as exc:
            raise CannotRun(f"--ref {target}={uri}: {exc}") from None
        steps = sorted((step, n) for n in names if (step := checkpoint_step(n)) is not None)
        if want == "latest" and steps:
            found[target] = join_uri(uri, f"checkpoints/{steps[-1][1]}")
        elif want in {n for _, n in steps}:
            found[target] = join_uri(uri, f"checkpoints/{want}")
        else:
            have = ", ".join(n for _, n in steps[-5:]) or "none"
            what = "no checkpoint" if want == "latest" else f"no checkpoint {want}"
            raise CannotRun(f"--ref {target}={uri}: {what} under checkpoints/ (it has: {have})")
    return found

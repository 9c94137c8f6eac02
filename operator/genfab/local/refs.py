"""Inputs that are another resource's output (`ref:DatasetJob/name/...`) in a local run.

A cluster resolves them from the referenced resource's status; on this machine there is no
status to read, so a reference resolves to `--ref Kind/name=URI` when given, else to that
resource's own local run at the local default output (`genfab run` of it first), else the run
cannot start and says how to fix it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from genfab.planner import Plan
from genfab.sequencing import CannotRun
from genfab.sequencing.refs import stage_refs, substitute_refs

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

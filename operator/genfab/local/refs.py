"""Inputs that are another resource's output (`ref:DatasetJob/name/...`) in a local run.

A cluster resolves them from the referenced resource's status; on this machine there is no
status to read, so a reference resolves to `--ref Kind/name=URI` when given, else to that
resource's own local run at the local default output (`genfab run` of it first), else the run
cannot start and says how to fix it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from genfab.contract.paths import join_uri, split_ref
from genfab.planner import Plan
from genfab.sequencing import CannotRun

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
    stages = []
    for stage in plan.stages:
        uris = []
        for uri in stage.input_uris:
            ref = split_ref(uri)
            if ref is None or not stage.run:
                uris.append(uri)
                continue
            target, path = ref
            root = given.get(target) or lookup(target)
            if root is None:
                kind = target.partition("/")[0]
                raise CannotRun(
                    f"stage {stage.name}: input {uri} is the output of {target}, which a cluster resolves from "
                    f"its status; run that {kind} here first (genfab run, default output), or pass "
                    f"--ref {target}=URI with its output")
            uris.append(join_uri(root, path) if path else root)
        stages.append(dataclasses.replace(stage, input_uris=tuple(uris)))
    return dataclasses.replace(plan, stages=tuple(stages))

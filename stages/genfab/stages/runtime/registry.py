"""The stage registry: stage name -> implementation class, image family and default resources.

Implementations are named by import path and loaded only when run, so listing the registry never
imports torch. Family and resources come from the stage catalog (`genfab.api.catalog`), the single
source of truth the planner and the chart also read.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from genfab.api.catalog import PIPELINES, StageDef
from genfab.stages.runtime.errors import BadInput
from genfab.stages.runtime.stage import Stage

IMPLEMENTATIONS: dict[str, str] = {}
"""Stage name -> `module:Class`. A stage family's subpackage adds its stages with `register`."""


@dataclass(frozen=True)
class RegisteredStage:
    name: str
    target: str
    definitions: tuple[StageDef, ...]
    """Catalog entries with this name (one per pipeline using it): family, GPUs, CPU, memory."""

    @property
    def family(self) -> str:
        return self.definitions[0].family if self.definitions else "custom"


def register(name: str, target: str) -> None:
    if ":" not in target:
        raise ValueError(f"stage {name!r}: target {target!r} must be `module:Class`")
    IMPLEMENTATIONS[name] = target


def registered() -> dict[str, RegisteredStage]:
    defs: dict[str, list[StageDef]] = {}
    for stages in PIPELINES.values():
        for d in stages:
            defs.setdefault(d.name, []).append(d)
    return {n: RegisteredStage(n, t, tuple(defs.get(n, ()))) for n, t in sorted(IMPLEMENTATIONS.items())}


def load(name: str) -> Stage:
    """Instantiate the implementation of `name`, with a clear error when there is none."""
    target = IMPLEMENTATIONS.get(name)
    if target is None:
        known = ", ".join(sorted(IMPLEMENTATIONS)) or "none"
        raise BadInput(f"no implementation registered for stage {name!r} (registered: {known}); "
                       "use a custom stage with your own image and command")
    module, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    stage = cls()
    if not isinstance(stage, Stage):
        raise TypeError(f"{target} is not a genfab Stage")
    return stage


# The built-in stage families list their stages (names only: importing them loads no numpy or torch).
for _family in ("genfab.stages.relighting", "genfab.stages.gaussians"):
    for _name, _target in importlib.import_module(_family).STAGES.items():
        register(_name, _target)

"""The stage registry: which class (or `SampleStage`) implements a pipeline's stage, from the pipeline declarations
(`genfab.api.pipeline`). Implementations are named by import path and loaded only when run, so
listing them never imports torch."""

from __future__ import annotations

import importlib
from typing import Any

from genfab.api.pipeline import StageDecl, pipelines
from genfab.stages.runtime.errors import BadInput
from genfab.stages.runtime.pooled import PooledStage
from genfab.stages.runtime.simple import SampleStage
from genfab.stages.runtime.stage import Stage


def implemented() -> dict[str, list[str]]:
    """Stage name -> the pipelines that implement a stage of that name."""
    out: dict[str, list[str]] = {}
    for p in pipelines().values():
        for s in p.stages:
            if s.implementation is not None:
                out.setdefault(s.name, []).append(p.name)
    return dict(sorted(out.items()))


def declaration(pipeline: str, name: str) -> StageDecl:
    """The declaration of `pipeline`'s stage `name`, with a clear error when there is none."""
    found = pipelines().get(pipeline)
    if found is None:
        raise BadInput(f"unknown pipeline {pipeline!r} (registered: {', '.join(sorted(pipelines()))}); "
                       "is the pipeline's package installed in this image?")
    try:
        decl = found.stage(name)
    except KeyError:
        raise BadInput(f"pipeline {pipeline!r} has no stage {name!r} (stages: {', '.join(found.stage_names)})"
                       ) from None
    if decl.implementation is None:
        raise BadInput(f"stage {name!r} of pipeline {pipeline!r} has no implementation in genfab yet; "
                       "use a custom stage with your own image and command")
    return decl


def load(pipeline: str, name: str) -> tuple[Stage[Any], StageDecl]:
    """Instantiate the implementation of `pipeline`'s stage `name`."""
    decl = declaration(pipeline, name)
    assert decl.implementation is not None
    module, _, attr = decl.implementation.partition(":")
    found = getattr(importlib.import_module(module), attr)
    # functions composed (a SampleStage, a PooledStage), or a Stage class
    stage = found.stage() if isinstance(found, SampleStage | PooledStage) else found()
    if not isinstance(stage, Stage):
        raise TypeError(f"{decl.implementation} is not a genfab Stage, SampleStage or PooledStage")
    stage.declared_as = decl.implementation
    return stage, decl

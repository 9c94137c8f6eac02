"""Models a plan cannot run without, checked before anything starts (both executors): a selected
stage of genfab's own whose settings need a model (`PlannedStage.required_models`, not a fallback
the stage says per sample) is refused in one line when no model location is configured, or when
the executor read the location and the model is not in it; and models that do not fit each other
(`StageDecl.model_fit`, e.g. a multi-camera LoRA on an edit model it was not trained on). A location
the executor could not read (a volume only Pods mount) leaves the stage to say it when it loads the
model, before its first sample."""

from __future__ import annotations

from collections.abc import Mapping

from genfab.api.pipeline import pipelines
from genfab.contract.names import MISSING_MODEL as MISSING
from genfab.planner import Plan

TINY_MODELS = "python scripts/tiny_models.py writes tiny random stand-ins to ./genfab-models"


def _listing(pairs: list[tuple[str, str]]) -> tuple[str, str]:
    stages = list(dict.fromkeys(stage for stage, _ in pairs))
    models = list(dict.fromkeys(model for _, model in pairs))
    return ", ".join(stages), ", ".join(models)


NO_LOCATION, MODEL_MISSING = "InvalidSpec", "ModelMissing"
"""The operator's reasons: without a location the spec must change; a missing model may be uploaded."""


def model_refusal(plan: Plan, location: str | None) -> tuple[str, str] | None:
    """Why the plan's selected stages cannot load the models they need here, as (reason, one line);
    None when they can (or when only a stage Pod can tell). `location`: the model location the
    stages get, if any."""
    needs = [(s.name, m) for s in plan.stages if s.run and s.implementation is not None for m in s.required_models]
    if not needs:
        return None
    if not location:
        stages, models = _listing(needs)
        many = len({stage for stage, _ in needs}) > 1
        return NO_LOCATION, (
            f"stage{'s' if many else ''} {stages} of pipeline {plan.pipeline} load{'' if many else 's'} {models} "
            f"from the model location, and none is configured: set spec.models.uri to a folder or s3:// prefix "
            f"holding one folder per model id ({TINY_MODELS}), or leave {'them' if many else 'it'} out with "
            f"onlyStages")
    missing = [(stage, m) for stage, m in needs if plan.stage(stage).models.get(m) == MISSING]
    if not missing:
        return None
    stages, models = _listing(missing)
    many = len({m for _, m in missing}) > 1
    return MODEL_MISSING, (
        f"model{'s' if many else ''} {models} (stage {stages} of pipeline {plan.pipeline}) "
        f"{'are' if many else 'is'} not in the model location {location}: put each in a folder named by its id "
        f"there (`hf download ID --local-dir DIR` fetches one on a machine with network; {TINY_MODELS}), or point "
        f"spec.models at a location that has {'them' if many else 'it'}")


def fit_refusal(plan: Plan, classes: Mapping[str, str]) -> str | None:
    """Why the selected stages' models do not fit each other (`StageDecl.model_fit`), given the
    diffusers pipeline class of each model the executor read; None when they fit or nothing was read."""
    if not classes:
        return None
    pipeline = pipelines()[plan.pipeline]
    for stage in plan.stages:
        decl = pipeline.stage(stage.name) if stage.name in pipeline.stage_names else None
        if not stage.run or stage.implementation is None or decl is None or decl.model_fit is None:
            continue
        why = decl.model_fit(decl.settings.model_validate(stage.config), classes) if decl.settings else None
        if why:
            return f"stage {stage.name}: {why}"
    return None

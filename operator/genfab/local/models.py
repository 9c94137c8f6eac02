"""Model identities on this machine: `genfab run` and `genfab plan` read the model location the way the
stage processes will (`spec.models`: an `s3://` prefix with this run's storage settings, a `file://` or
hub-cache folder), so a plan's hashes cover the weights that are there now."""

from __future__ import annotations

from collections.abc import Mapping

from genfab.api.common import ModelSource
from genfab.contract.names import ENV_MODELS
from genfab.inventory.model_identity import ModelLocationError, model_identities, pipeline_classes
from genfab.planner import Plan
from genfab.sequencing import CannotRun, models_env
from genfab.sequencing.preflight import fit_refusal
from genfab.storage import S3Settings, StorageError, open_storage


def _location(models: ModelSource | None) -> str:
    return models_env(models, mounted=False).get(ENV_MODELS, "") if models is not None else ""


def local_fit_refusal(the_plan: Plan, models: ModelSource | None, environ: Mapping[str, str]) -> str | None:
    """Why the plan's models do not fit each other (`sequencing.preflight.fit_refusal`), read from
    `spec.models` on this machine; None when they fit, or when the location cannot be read here (the
    stage then says it at its start, before its first sample)."""
    try:  # a location this machine cannot mount (a cluster volume) or read is left to the stage
        ids, location = the_plan.model_ids(), _location(models)
        if not ids or not location:
            return None
        storage = open_storage(location, S3Settings.from_env(dict(environ))) if location.startswith("s3://") else None
        return fit_refusal(the_plan, pipeline_classes(ids, location, storage))
    except (CannotRun, ModelLocationError, StorageError):
        return None


def local_model_identities(the_plan: Plan, models: ModelSource | None, environ: Mapping[str, str]) -> dict[str, str]:
    """Identity of every model the plan's stages load, from `spec.models` (none: {}, so each model is
    hashed as unread). A location that cannot be read is a CannotRun naming it."""
    ids, location = the_plan.model_ids(), _location(models)
    if not ids or not location:
        return {}
    try:
        storage = open_storage(location, S3Settings.from_env(dict(environ))) if location.startswith("s3://") else None
        return model_identities(ids, location, storage)
    except ModelLocationError as exc:
        raise CannotRun(f"spec.models: {exc}") from None

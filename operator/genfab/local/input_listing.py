"""A resource's input, listed before anything is written: `validate`, `plan` and `run` count the
samples of the stage that reads the job's input with the same `resolve_samples` its Pods use, so a
missing or empty folder is said in one line up front (which input, and missing or empty) and `plan`
shows the count instead of `?`.

An `s3://` input is listed only where this machine has credentials for it (the environment, or the
spec's storage secret in the local secrets folder); otherwise its count stays `?` with a note.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from genfab.api import Resource
from genfab.contract.names import ENV_ACCESS_KEY_ID, ENV_S3_SECRET_DIR
from genfab.inventory import InventoryError, resolve_samples
from genfab.local.storage_env import local_environment
from genfab.planner import Plan, PlannedStage, stage_config
from genfab.sequencing import CannotRun
from genfab.storage import S3Settings, Storage, StorageError, open_storage

IDENTITY_VARIABLES = (ENV_ACCESS_KEY_ID, "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", ENV_S3_SECRET_DIR)
"""Any of these in the environment: this machine may read an s3:// input (boto3's own chain)."""


@dataclass(frozen=True)
class InputListing:
    samples: int | None
    """The input's samples, or None where it was not listed (`note` says why)."""
    stage: str = ""
    """The stage that reads the input (the one whose count this is)."""
    problem: str = ""
    """One line: the input is missing, empty or unreadable (the run would fail at its first stage)."""
    note: str = ""
    """One line: why it was not listed (no credentials for an s3:// input here)."""


def input_stage(p: Plan) -> PlannedStage | None:
    """The first selected stage that lists the job's input itself (no upstream; a folder, a curated set
    or the sources a pipeline declares): its sample count is what only a listing can know."""
    return next((s for s in p.stages if s.run and not s.upstream and s.samples is None), None)


def has_credentials(environ: Mapping[str, str]) -> bool:
    """Whether boto3's chain can find an identity here: the environment names one, or the shared file exists."""
    shared = environ.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.expanduser("~/.aws/credentials")
    return any(environ.get(k) for k in IDENTITY_VARIABLES) or os.path.isfile(shared)


def list_input(p: Plan, open_fn: Callable[[str], Storage], environ: Mapping[str, str]) -> InputListing:
    """Count the samples of the stage that reads the input (see the module's words)."""
    stage = input_stage(p)
    if stage is None:
        return InputListing(None)
    cfg = stage_config(p, stage)
    where = f"input {stage.input_uris[0]}" if stage.input_uris else f"stage {stage.name}'s input"
    # A folder's URI says where it is; a pipeline's declared sources are in its config (difix's scenes).
    reads_s3 = stage.input_uris[0].startswith("s3://") if stage.input_uris else '"s3://' in cfg.to_json()
    if reads_s3 and not has_credentials(environ):
        return InputListing(None, stage.name, note=f"{where} not listed: it is in S3 and this environment has no S3 "
                                                   "credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE, or "
                                                   "spec.storage.secretRef's secret in the local secrets folder)")
    try:
        return InputListing(len(resolve_samples(cfg, open_fn)), stage.name)
    except InventoryError as exc:
        return InputListing(None, stage.name, problem=f"input of stage {stage.name}: {exc}")
    except StorageError as exc:
        return InputListing(None, stage.name, problem=f"{where} cannot be read: {exc}")


def list_resource_input(resource: Resource, p: Plan, environ: Mapping[str, str], secrets: Path) -> InputListing:
    """`list_input` with the credentials `genfab run` would use (the spec's storage secret, if any)."""
    try:
        env, _ = local_environment(resource.spec.storage, environ, secrets)
    except CannotRun as exc:
        return InputListing(None, note=f"input not listed: {exc}")
    settings = S3Settings.from_env(env)
    return list_input(p, lambda uri: open_storage(uri, settings), env)

"""How a local run reaches `spec.storage` (endpoint settings, credentials from a secret file or the
environment) and resolves `ref:` inputs: table tests of the pure decisions."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from genfab.api.common import Storage
from genfab.local.refs import parse_ref_options, resolve_refs
from genfab.local.storage_env import local_environment, read_secret
from genfab.planner import Plan, plan
from genfab.sequencing import CannotRun
from tests.helpers import load_example

MINIO = {"endpoint": "http://minio.lab:9000", "region": "eu-1", "addressingStyle": "path"}
ENV_KEYS = {"AWS_ACCESS_KEY_ID": "env-id", "AWS_SECRET_ACCESS_KEY": "env-secret", "AWS_SESSION_TOKEN": "env-token"}


def storage(**extra: Any) -> Storage:
    return Storage.model_validate({**MINIO, **extra})


def secrets(tmp_path: Path, layout: str) -> Path:
    if layout == "dir":
        (tmp_path / "lab-s3").mkdir()
        (tmp_path / "lab-s3" / "AWS_ACCESS_KEY_ID").write_text("file-id\n")
        (tmp_path / "lab-s3" / "AWS_SECRET_ACCESS_KEY").write_text("file-secret\n")
    elif layout == "env":
        (tmp_path / "lab-s3.env").write_text(
            "# minio\nexport AWS_ACCESS_KEY_ID=file-id\nAWS_SECRET_ACCESS_KEY='file-secret'\nOTHER=ignored\n")
    return tmp_path


def test_spec_endpoint_settings_win_over_the_environment(tmp_path: Path) -> None:
    env, note = local_environment(storage(), {"GENFAB_S3_ENDPOINT": "http://other:1", **ENV_KEYS}, tmp_path)
    assert note is None
    assert (env["GENFAB_S3_ENDPOINT"], env["GENFAB_S3_REGION"], env["GENFAB_S3_ADDRESSING_STYLE"]) == (
        "http://minio.lab:9000", "eu-1", "path")
    assert env["AWS_ACCESS_KEY_ID"] == "env-id"  # no secretRef: ambient credentials


def test_without_spec_storage_the_environment_is_used_as_is(tmp_path: Path) -> None:
    environ = {"GENFAB_S3_ENDPOINT": "http://other:1", "PATH": "/bin"}
    assert local_environment(None, environ, tmp_path) == (environ, None)


@pytest.mark.parametrize("layout", ["dir", "env"])
def test_a_named_secret_file_replaces_the_environment_credentials(tmp_path: Path, layout: str) -> None:
    env, note = local_environment(storage(secretRef={"name": "lab-s3"}), ENV_KEYS, secrets(tmp_path, layout))
    assert note is None
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == ("file-id", "file-secret")
    assert "AWS_SESSION_TOKEN" not in env  # another identity's token never mixes in
    assert "OTHER" not in env


def test_a_missing_secret_falls_back_to_environment_credentials_and_says_so(tmp_path: Path) -> None:
    env, note = local_environment(storage(secretRef={"name": "lab-s3"}), ENV_KEYS, tmp_path)
    assert env["AWS_ACCESS_KEY_ID"] == "env-id"
    assert note is not None and "lab-s3" in note and "using the credentials of the environment" in note


def test_a_missing_secret_without_environment_credentials_is_a_note_naming_both(tmp_path: Path) -> None:
    env, note = local_environment(storage(secretRef={"name": "lab-s3"}), {}, tmp_path)
    assert "AWS_ACCESS_KEY_ID" not in env
    assert note is not None and f"{tmp_path}/lab-s3.env" in note and "no AWS_ACCESS_KEY_ID or" in note


@pytest.mark.parametrize(("files", "says"), [
    ({"lab-s3.env": "AWS_ACCESS_KEY_ID=x\n"}, "has no AWS_SECRET_ACCESS_KEY"),
    ({"lab-s3.env": "AWS_ACCESS_KEY_ID\n"}, "lab-s3.env:1: expected KEY=VALUE"),
    ({"lab-s3.env": "x" * 70000}, "not a secret file"),
])
def test_unusable_secrets_are_one_clear_line(tmp_path: Path, files: dict[str, str], says: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(CannotRun, match=says):
        local_environment(storage(secretRef={"name": "lab-s3"}), {}, tmp_path)


def test_read_secret_is_none_without_a_file(tmp_path: Path) -> None:
    assert read_secret(tmp_path, "absent") is None


def tuning_plan(**dataset: str) -> Plan:
    from genfab.api import parse_resource

    doc = load_example("tuningrun-difix.yaml")
    doc["spec"]["dataset"] = dataset
    return plan(parse_resource(doc))


@pytest.mark.parametrize(("given", "found", "expected"), [
    ({"DatasetJob/data1": "s3://lab/data1/"}, None, "s3://lab/data1/difix/data.json"),
    ({}, "file://./genfab-runs/data1", "file://./genfab-runs/data1/difix/data.json"),
])
def test_refs_resolve_to_the_given_or_the_local_run_output(given: dict[str, str], found: str | None,
                                                           expected: str) -> None:
    original = tuning_plan(datasetJobRef="data1")
    resolved = resolve_refs(original, {k: v.rstrip("/") for k, v in given.items()}, lambda target: found)
    train = resolved.stage("train")
    assert train.input_uris == (expected,)
    assert train.config_hash == original.stage("train").config_hash  # the hash names the reference


def test_an_unresolvable_ref_names_the_resource_and_the_fix() -> None:
    with pytest.raises(CannotRun, match=r"DatasetJob/data1.*--ref DatasetJob/data1=URI"):
        resolve_refs(tuning_plan(datasetJobRef="data1"), {}, lambda target: None)


def test_refs_of_stages_that_do_not_run_are_left_alone() -> None:
    original = tuning_plan(datasetJobRef="data1")
    skipped = dataclasses.replace(original, stages=tuple(dataclasses.replace(s, run=False) for s in original.stages))
    assert resolve_refs(skipped, {}, lambda target: None) == skipped


@pytest.mark.parametrize("value", ["DatasetJob", "DatasetJob/x", "x=s3://a/b", "DatasetJob/a/b=s3://x/y",
                                   "DatasetJob/x="])
def test_malformed_ref_options_are_refused(value: str) -> None:
    with pytest.raises(CannotRun, match="expected Kind/name=URI"):
        parse_ref_options([value])


def test_a_tuning_run_reference_resolves_to_a_checkpoint_of_its_run_folder(tmp_path: Path) -> None:
    from genfab.api import parse_resource
    from genfab.local.refs import resolve_checkpoints
    from genfab.planner import plan
    from genfab.storage import open_storage

    def scenejob(**ref: Any) -> Any:
        return plan(parse_resource({
            "apiVersion": "genfab.dev/v1alpha1", "kind": "SceneJob", "metadata": {"name": "sj"},
            "spec": {"pipeline": "worldexplorer", "input": {"image": "file:///in/a.png"}, "output": "file:///out",
                     "refinement": {"tuningRunRef": {"name": "tr", **ref}}}}))

    run = tmp_path / "tuning_runs" / "lr"
    (run / "checkpoints").mkdir(parents=True)
    for step in (500, 1000):
        (run / "checkpoints" / f"model_{step}.pkl").write_bytes(b"x")
    given = {"TuningRun/tr": f"file://{run}"}
    assert resolve_checkpoints(scenejob(), given, open_storage) == {
        "TuningRun/tr": f"file://{run}/checkpoints/model_1000.pkl"}
    assert resolve_checkpoints(scenejob(step=500), given, open_storage)["TuningRun/tr"].endswith("model_500.pkl")
    with pytest.raises(CannotRun, match=re.escape("no checkpoint model_700.pkl under checkpoints/ (it has: "
                                                  "model_500.pkl, model_1000.pkl)")):
        resolve_checkpoints(scenejob(step=700), given, open_storage)
    with pytest.raises(CannotRun, match="pass --ref TuningRun/tr=URI"):
        resolve_checkpoints(scenejob(), {}, open_storage)
    pkl = {"TuningRun/tr": "file:///elsewhere/model_42.pkl"}
    assert resolve_checkpoints(scenejob(), pkl, open_storage) == pkl
    with pytest.raises(CannotRun, match=re.escape("asks for model_7.pkl")):
        resolve_checkpoints(scenejob(step=7), pkl, open_storage)

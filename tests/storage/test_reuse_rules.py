"""What decides an output, end to end through `genfab run`: new weights under the same model id re-run
exactly the stages that load them (and what consumes theirs), on a `file://` and an `s3://` model
location; `--rerun` makes named stages again; a run-time option re-runs nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from genfab.storage import S3Settings, Storage, open_storage
from tests.storage.test_local_runner import BUCKET, genfab_run, target  # noqa: F401  (fixture)
from tests.storage.test_relighting_pipeline import job, portraits
from tests.storage.test_storage import s3_endpoint  # noqa: F401  (fixture)

DEPTH = "depth-anything/Depth-Anything-V2-Small-hf"
SEG = ("segment", "albedo")
FROM_DEGRADE = ("degrade", "recombine", "organize")


def relight(uri: str, inputs: Path, models: str) -> dict[str, Any]:
    doc = job(uri, inputs, degradation={
        "weights": {"softShading": 1.0, "hardShadow": 0.0, "specular": 0.0, "ambientOnly": 0.0},
        "softShading": {"normals": "depth-anything"}})
    doc["spec"]["models"] = {"uri": models}
    return doc


def made(run: Storage) -> dict[str, tuple[int, int]]:
    """(made now, reused) samples per stage of the last run."""
    return {s["name"]: (s["succeeded"] - s["reused"], s["reused"])
            for s in json.loads(run.read_bytes("_genfab/summary.json"))["stages"]}


def tiny_depth(folder: Path, seed: int) -> Path:
    """The tiny Depth Anything, written with other random weights each `seed` (same id, same folder)."""
    import torch
    from scripts.tiny_models import save_tiny_depth_anything

    torch.manual_seed(seed)
    path = save_tiny_depth_anything(folder)
    return path


@pytest.fixture
def model_location(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Any]:
    """(`spec.models.uri`, write(seed)): a `file://` folder, or the same folder mirrored to S3."""
    local = tmp_path / "models"
    if request.param == "file":
        return f"file://{local}", lambda seed: tiny_depth(local, seed)
    endpoint = request.getfixturevalue("s3_endpoint")
    settings = S3Settings(endpoint=endpoint, addressing_style="path", access_key_id="test",
                          secret_access_key="test-secret")
    uri = f"s3://{BUCKET}/models-{tmp_path.name}"

    def write(seed: int) -> None:
        store = open_storage(uri, settings)
        folder = tiny_depth(local, seed)
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                store.upload_file(f"{DEPTH}/{path.relative_to(folder).as_posix()}", path)

    return uri, write


@pytest.mark.parametrize("model_location", ["file", "s3"], indirect=True)
def test_new_weights_under_the_same_id_rerun_exactly_their_stages(
        tmp_path: Path, target: tuple[str, dict[str, str], Storage],  # noqa: F811
        model_location: tuple[str, Any]) -> None:
    pytest.importorskip("transformers")
    uri, env, run = target
    models, write = model_location
    env = {**env, **({"GENFAB_S3_ENDPOINT": env.get("GENFAB_S3_ENDPOINT") or "", "AWS_ACCESS_KEY_ID": "test",
                      "AWS_SECRET_ACCESS_KEY": "test-secret", "GENFAB_S3_ADDRESSING_STYLE": "path"}
                     if models.startswith("s3://") else {})}
    if models.startswith("s3://") and not env["GENFAB_S3_ENDPOINT"]:
        pytest.skip("an s3:// model location with a file:// output is covered by the s3 target")
    write(0)
    doc = relight(uri, portraits(tmp_path), models)
    first = genfab_run(tmp_path, doc, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert made(run) == {n: (2, 0) for n in (*SEG, *FROM_DEGRADE)}

    again = genfab_run(tmp_path, doc, env=env)  # nothing changed: everything reused
    assert again.returncode == 0, again.stdout + again.stderr
    assert made(run) == {n: (0, 2) for n in (*SEG, *FROM_DEGRADE)}

    write(1)  # other weights, same model id, same folder
    third = genfab_run(tmp_path, doc, env=env)
    assert third.returncode == 0, third.stdout + third.stderr
    assert made(run) == {**{n: (0, 2) for n in SEG}, **{n: (2, 0) for n in FROM_DEGRADE}}


def test_rerun_and_run_time_options(tmp_path: Path) -> None:
    """`--rerun` makes the named stage and its consumers again; a plan of the same spec reuses all."""
    out = tmp_path / "out"
    doc = job(f"file://{out}", portraits(tmp_path))
    assert genfab_run(tmp_path, doc).returncode == 0
    run = open_storage(f"file://{out}")
    forced = genfab_run(tmp_path, doc, "--rerun", "degrade")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert made(run) == {**{n: (0, 2) for n in SEG}, **{n: (2, 0) for n in FROM_DEGRADE}}
    assert genfab_run(tmp_path, doc).returncode == 0  # without --rerun: what --rerun made is kept
    assert made(run) == {n: (0, 2) for n in (*SEG, *FROM_DEGRADE)}
    bad = genfab_run(tmp_path, doc, "--rerun", "nope")
    assert bad.returncode == 2 and "rerun.stages" in bad.stderr and "Traceback" not in bad.stderr

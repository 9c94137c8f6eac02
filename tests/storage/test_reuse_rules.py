"""What decides an output, end to end through `genfab run`: new weights under the same model id re-run
exactly the stages that load them (and what consumes theirs), on a `file://` and an `s3://` model
location; `--rerun` makes named stages again, once (on file://). (Run-time options staying out of the hash are
the planner table's rows: tests/unit/test_planner.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from genfab.storage import S3Settings, Storage, open_storage
from tests.helpers import genfab_run
from tests.storage.relighting_inputs import job, portraits
from tests.storage.s3 import BUCKET

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
    """The tiny Depth Anything, its weights moved by seeded noise for each `seed` (same id, same folder:
    what a lab does when it replaces a checkpoint in place)."""
    import torch
    from scripts.tiny_models import save_tiny_depth_anything
    from transformers import DepthAnythingForDepthEstimation

    path = save_tiny_depth_anything(folder)
    if seed:
        model = DepthAnythingForDepthEstimation.from_pretrained(path)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for param in model.parameters():
                param.add_(torch.randn(param.shape, generator=generator) * 0.01)
        model.save_pretrained(path)
    return path


@pytest.fixture(params=["file", "s3"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str], Storage, str, Any]:
    """(output URI, env, its storage, `spec.models.uri`, write(seed)): all on `file://`, or all on S3 (the
    model folder mirrored to the bucket, read back through its ETags)."""
    local = tmp_path / "models"
    if request.param == "file":
        out = f"file://{tmp_path}/out"
        return out, {}, open_storage(out), f"file://{local}", lambda seed: tiny_depth(local, seed)
    endpoint = request.getfixturevalue("s3_endpoint")
    env = {"GENFAB_S3_ENDPOINT": endpoint, "GENFAB_S3_ADDRESSING_STYLE": "path", "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test-secret"}
    settings = S3Settings.from_env(env)
    out, models = f"s3://{BUCKET}/reuse-{tmp_path.name}", f"s3://{BUCKET}/models-{tmp_path.name}"

    def write(seed: int) -> None:
        store = open_storage(models, settings)
        folder = tiny_depth(local, seed)
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                store.upload_file(f"{DEPTH}/{path.relative_to(folder).as_posix()}", path)

    return out, env, open_storage(out, settings), models, write


def test_new_weights_under_the_same_id_rerun_exactly_their_stages(
        tmp_path: Path, place: tuple[str, dict[str, str], Storage, str, Any]) -> None:
    pytest.importorskip("transformers")
    uri, env, run, models, write = place
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
    if env:  # `--rerun` once, on file:// (it names stages, not storage)
        return

    # `--rerun` makes the named stage and its consumers again; the next plain run reuses everything; an
    # unknown stage is one line naming `rerun.stages`.
    forced = genfab_run(tmp_path, doc, "--rerun", "degrade")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert made(run) == {**{n: (0, 2) for n in SEG}, **{n: (2, 0) for n in FROM_DEGRADE}}
    assert genfab_run(tmp_path, doc).returncode == 0  # without --rerun: what --rerun made is kept
    assert made(run) == {n: (0, 2) for n in (*SEG, *FROM_DEGRADE)}
    bad = genfab_run(tmp_path, doc, "--rerun", "nope")
    assert bad.returncode == 2 and "rerun.stages" in bad.stderr and "Traceback" not in bad.stderr

"""worldexplorer's built-in scaffold (`scaffold_gen`) through `genfab run` (the real runtime, one
subprocess per shard) with tiny random FLUX.1-dev, FluxFill, Depth Pro and CLIP models from
scripts/tiny_models.py, on the CPU, over a curated set: the eight views, the candidates and their CLIP
choice, and the refusals (random weights: the paths run, the pictures mean nothing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("diffusers")
pytest.importorskip("torch")

from genfab.stages.common.imaging import decode_png
from genfab.stages.worldexplorer.scaffold_stage import square
from tests import made_once
from tests.helpers import PORTRAIT, ROOT, genfab_run, save_seva_stand_in

SIDE = 64
PATHS = os.pathsep.join(str(ROOT / p) for p in ("operator", "stages", ""))


@pytest.fixture(scope="module")
def tiny_models() -> Iterator[Path]:
    yield made_once.tiny_models("save_worldexplorer_models")  # machine-wide, read-only


def curated_set(root: Path) -> Path:
    """Two samples: one with both variants and a prompt, one with no prompt."""
    (root / "photo").mkdir(parents=True)
    (root / "style").mkdir()
    for name in ("photo/0.png", "style/0.png", "photo/1.png"):
        (root / name).write_bytes(PORTRAIT.read_bytes())
    (root / "metadata.json").write_text(json.dumps({"samples": [
        {"index": 0, "prompt": "a harbour at dawn", "photorealistic": {"original_path": "photo/0.png"},
         "stylized": {"path": "style/0.png"}},
        {"index": 1, "photorealistic": {"original_path": "photo/1.png"}}]}))
    return root / "metadata.json"


def scenejob(tmp: Path, models: Path, **scaffold: Any) -> dict[str, Any]:
    return {"apiVersion": "genfab.dev/v1alpha1", "kind": "SceneJob", "metadata": {"name": "we-tiny"},
            "spec": {"pipeline": "worldexplorer", "input": {"manifest": curated_set(tmp / "curated").as_uri()},
                     "output": (tmp / "out").as_uri(), "models": {"uri": models.as_uri()},
                     "onlyStages": ["scaffold"], "continueOnError": True,
                     "worldexplorer": {"scaffold": {"method": "scaffold_gen", "resolution": SIDE, "fluxSteps": 2,
                                                    "fillSteps": 2, **scaffold}}}}


def test_automatic_selection_writes_the_eight_views_and_picks_by_clip(tmp_path: Path, tiny_models: Path) -> None:
    doc = scenejob(tmp_path, tiny_models, selection="automatic", inpaintCandidates=2)
    result = genfab_run(tmp_path, doc, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    out = tmp_path / "out"
    for variant in ("photorealistic", "stylized"):
        scaffold = out / variant / "index_0000" / "scaffold"
        views = [decode_png((scaffold / "final" / f"{v:03d}.png").read_bytes()) for v in range(8)]
        assert all(v.shape == (SIDE, SIDE, 3) for v in views)
        np.testing.assert_array_equal(views[0], square(decode_png(PORTRAIT.read_bytes()), SIDE))  # the input is 000
        info = json.loads((scaffold / "scaffold.json").read_text())
        assert [info["views"][f"{v:03d}"]["source"] for v in range(8)] == [
            "input", "inpainted", "generated", "inpainted", "generated", "inpainted", "generated", "inpainted"]
        assert info["views"]["002"]["prompt"].startswith("a harbour at dawn, with the horizon line centered")
        for gap in ("001", "003", "005", "007"):
            entry = info["gaps"][gap]
            assert entry["candidates"] == 2 and len(entry["scores"]) == 2
            assert entry["chosen"] == int(np.argmax(entry["scores"]))
            chosen = decode_png((scaffold / "candidates" / f"{gap}_{entry['chosen']:02d}.png").read_bytes())
            np.testing.assert_array_equal(chosen, views[int(gap)])
            hole = decode_png((scaffold / "masks" / f"{gap}.png").read_bytes()) > 127
            assert hole[:, SIDE // 2].all()  # the view's middle is 45° from both neighbours' axes: unseen at 60°
        assert info["gaps"]["001"]["prompt"] == (f"{info['views']['000']['prompt']} and "
                                                 f"{info['views']['002']['prompt']}")
    # index 1 has no prompt and the job sets no theme: dropped with the reason, the job goes on
    assert not (out / "photorealistic" / "index_0001").exists()
    dropped = (out / "_genfab" / "dropped_samples.csv").read_text()
    assert "photorealistic/index_0001,NoPrompt" in dropped
    batch = json.loads((out / "batch_summary.json").read_text())  # the seed's per-sample summary
    rows = {r["sample"]: r for r in batch["samples"]}
    assert sorted(rows) == ["photorealistic/index_0000", "photorealistic/index_0001", "stylized/index_0000"]
    done = rows["stylized/index_0000"]
    assert done["status"] == "succeeded" and done["stages"]["scaffold"]["seconds"] > 0
    assert done["stages"]["scaffold"]["output"] == (out / "stylized/index_0000/scaffold").as_uri() + "/"
    assert done["stages"]["expansion"] == {"status": "not selected"}
    assert rows["photorealistic/index_0001"]["stages"]["scaffold"]["reason"] == "NoPrompt"
    assert batch["counts"] == {"succeeded": 2, "failed": 1, "incomplete": 0}
    stages = {s["name"]: s for s in json.loads((out / "_genfab/summary.json").read_text())["stages"]}
    figures = stages["scaffold"]["figures"]  # the two scaffolds' hole shares and lowest chosen CLIP scores
    assert set(figures) == {"scaffoldHoleShare", "scaffoldClipMin"} and figures["scaffoldClipMin"]["count"] == 2
    assert 0.0 < figures["scaffoldHoleShare"]["p50"] < 1.0


def test_fast_selection_keeps_one_candidate_and_a_theme_gives_the_rooms(tmp_path: Path, tiny_models: Path) -> None:
    doc = scenejob(tmp_path, tiny_models, selection="fast", theme="rustic farmhouse")
    doc["spec"]["indices"] = [1]
    result = genfab_run(tmp_path, doc, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    info = json.loads((tmp_path / "out/photorealistic/index_0001/scaffold/scaffold.json").read_text())
    assert [info["views"][f"{v:03d}"]["prompt"] for v in (0, 2, 4, 6)] == [
        "kitchen of a rustic farmhouse", "office of a rustic farmhouse", "bedroom of a rustic farmhouse",
        "living room of a rustic farmhouse"]
    assert all(g["candidates"] == 1 and g["scores"] is None and g["chosen"] == 0 for g in info["gaps"].values())


def test_a_samples_own_fields_in_metadata_json_come_first(tmp_path: Path, tiny_models: Path) -> None:
    from genfab.stages.worldexplorer.scaffold_prompts import EYE_LEVEL

    doc = scenejob(tmp_path, tiny_models, selection="fast")
    manifest = tmp_path / "curated" / "metadata.json"
    data = json.loads(manifest.read_text())
    data["samples"][0]["scaffold"] = {"prompts": {"002": "a lighthouse on the cliff", "006": "fishing boats"}}
    data["samples"][0]["expansion"] = {"trajectory": "orbit", "num_frames": 24}  # kept for the expansion
    manifest.write_text(json.dumps(data))
    doc["spec"]["indices"] = [0]
    doc["spec"]["variants"] = ["photorealistic"]
    result = genfab_run(tmp_path, doc, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    info = json.loads((tmp_path / "out/photorealistic/index_0000/scaffold/scaffold.json").read_text())
    assert [info["views"][f"{v:03d}"]["prompt"] for v in (0, 2, 4, 6)] == [
        f"{text}, {EYE_LEVEL}" for text in ("a harbour at dawn", "a lighthouse on the cliff", "a harbour at dawn",
                                            "fishing boats")]
    assert info["expansion"] == {"trajectory": "orbit", "num_frames": 24}


@pytest.mark.parametrize(("scaffold", "expansion", "stage", "message"), [
    ({"method": "single_image"}, None, "scaffold", "set worldexplorer.seva.image to a SEVA stage image (built from "
     "images/seva/Dockerfile), or set worldexplorer.scaffold.method: scaffold_gen"),
    ({}, {"method": "seva"}, "expansion", "set worldexplorer.seva.image to a SEVA stage image (built from "
     "images/seva/Dockerfile), or set worldexplorer.expansion.method: walk (genfab's FluxFill walk)"),
])
def test_what_the_built_in_stage_cannot_run_is_one_line(tmp_path: Path, scaffold: dict[str, Any],
                                                        expansion: dict[str, Any] | None, stage: str,
                                                        message: str) -> None:
    doc = scenejob(tmp_path, tmp_path / "no-models", **scaffold)
    if expansion is not None:
        doc["spec"]["worldexplorer"]["expansion"] = expansion
        doc["spec"].pop("onlyStages", None)  # the expansion is asked for
    result = genfab_run(tmp_path, doc, timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr  # refused before any stage starts
    output = result.stdout + result.stderr
    assert output.startswith(f"genfab run: stage {stage}: ") and message in output and len(output.splitlines()) == 1
    assert not (tmp_path / "out").exists()  # nothing started, nothing written
    validate = subprocess.run([sys.executable, "-m", "genfab.cli.main", "validate", str(tmp_path / "job.yaml")],
                              capture_output=True, text=True, env={**os.environ, "PYTHONPATH": PATHS})
    assert validate.returncode == 0 and f"note: this resource cannot run as set: stage {stage}: " in validate.stdout


def _select(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "genfab.cli.main", "select", str(tmp / "job.yaml"), *args],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": PATHS}, cwd=tmp)


def test_manual_selection_stops_at_the_gate_and_goes_on_once_final_is_complete(tmp_path: Path,
                                                                                tiny_models: Path) -> None:
    doc = scenejob(tmp_path, tiny_models, selection="manual", inpaintCandidates=2, theme="old library")
    del doc["spec"]["onlyStages"]  # every stage: the gate holds those two and more stages down, too
    doc["spec"]["worldexplorer"]["expansion"] = {"method": "walk"}  # genfab's own, named: no SEVA image here
    doc["spec"]["variants"] = ["stylized"]
    result = genfab_run(tmp_path, doc, timeout=120)  # it stops at once: it used to wait forever
    output = result.stdout + result.stderr
    assert result.returncode == 3, output  # stopped at the gate: nothing failed
    assert "genfab run:" not in result.stderr, result.stderr  # and nothing says it did
    assert "AwaitingSelection: stage scaffold: 1 sample(s) await a person's choice: stylized/index_0000 " \
           "(final/001.png, final/003.png, final/005.png, final/007.png)" in " ".join(output.split())
    scaffold = tmp_path / "out/stylized/index_0000/scaffold"
    assert sorted(p.name for p in (scaffold / "final").iterdir()) == ["000.png", "002.png", "004.png", "006.png"]
    assert len(list((scaffold / "candidates").iterdir())) == 8
    status = json.loads((tmp_path / "out/_genfab/status.json").read_text())["status"]
    gate = next(c for c in status["conditions"] if c["type"] == "AwaitingSelection")
    assert gate["status"] == "True" and "stylized/index_0000" in gate["message"]
    held = {s["name"]: s["phase"] for s in status["stages"] if s["name"] != "scaffold"}
    assert held == {"expansion": "Waiting", "gaussians": "Waiting"}, held
    assert status["phase"] == "AwaitingSelection"  # neither done nor failed: the operator's phase too
    job = str(tmp_path / "job.yaml")
    next_step = (f"then run `genfab run {job}` again" if _cuda() else
                 f"then run `genfab run {job}` again on a machine with a CUDA GPU (expansion, gaussians need one")
    assert next_step in " ".join(output.split()), output
    assert "`genfab review file://" in output and "OUTPUT" not in output  # the output filled in
    assert not (tmp_path / "out/stylized/index_0000/scenes").exists()

    bad = _select(tmp_path, "--choose", "stylized/index_0000:003=1", "--sample", "stylized/index_0000", "--gap",
                  "001", "--candidate", "5")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "there are 001_00.png, 001_01.png" in bad.stderr
    assert "nothing was copied" in bad.stderr and not (scaffold / "final/003.png").exists()
    choices = tmp_path / "choices.txt"
    choices.write_text("# sample gap candidate\nstylized/index_0000 001 1\nstylized/index_0000, 003, 1\n")
    chosen = _select(tmp_path, "--choices", str(choices), "--choose", "stylized/index_0000:005=1")
    assert chosen.returncode == 0, chosen.stderr
    assert chosen.stdout.splitlines()[0].endswith("; still to choose final/007.png")
    assert chosen.stdout.count("stylized/index_0000") == 1  # each sample named once
    (scaffold / "candidates/007_00.png").replace(scaffold / "final/007.png")  # or by hand, as the seed does
    assert (scaffold / "final/001.png").read_bytes() == (scaffold / "candidates/001_01.png").read_bytes()

    # the scaffold is reused, the gate is open; on a CPU, expansion is refused as it would start (the
    # gate stood before it, so the run could not be refused up front), with one line, no retry and
    # the exit code of a refusal (2)
    again = genfab_run(tmp_path, doc, timeout=600)
    status = json.loads((tmp_path / "out/_genfab/status.json").read_text())["status"]
    gate = next(c for c in status["conditions"] if c["type"] == "AwaitingSelection")
    assert gate["status"] == "False" and gate["reason"] == "Chosen"
    stages = {s["name"]: s for s in status["stages"]}
    assert stages["scaffold"]["samples"]["succeeded"] == 1
    if _cuda():
        assert again.returncode == 0 and stages["expansion"]["phase"] == "Succeeded", again.stdout + again.stderr
    else:
        refusal = "stage expansion of pipeline worldexplorer needs a CUDA GPU (gsplat) and this machine has none"
        assert again.returncode == 2 and refusal in " ".join(again.stderr.split()), again.stdout + again.stderr
        assert stages["expansion"]["phase"] == "Failed" and refusal in stages["expansion"]["message"]
        assert not (tmp_path / "out/_genfab/logs/expansion").exists()  # no process was started for it


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def test_single_image_scaffold_runs_seva_through_its_adapter_and_keeps_the_key_frames(tmp_path: Path) -> None:
    """`method: single_image` with `seva.image` set, through `genfab run`, on the SEVA stand-in
    (tests/fakes/research: SEVA's import paths and signatures; it paints each frame with its index and
    yaw): the sweep and the key frames 000-007 taken from it, 000 being the input image."""
    models = tmp_path / "models"
    save_seva_stand_in(models)
    doc = scenejob(tmp_path, models, method="single_image")
    doc["spec"]["worldexplorer"]["scaffold"] = {"method": "single_image", "resolution": SIDE}
    doc["spec"]["worldexplorer"]["seva"] = {"image": "lab/genfab-seva:test", "sweepFrames": 16, "steps": 3}
    doc["spec"]["indices"] = [0]
    doc["spec"]["variants"] = ["photorealistic"]
    result = genfab_run(tmp_path, doc, timeout=600, extra_paths=(ROOT / "tests" / "fakes" / "research",))
    assert result.returncode == 0, result.stdout + result.stderr
    scaffold = tmp_path / "out/photorealistic/index_0000/scaffold"
    assert len(list((scaffold / "sweep").iterdir())) == 16
    info = json.loads((scaffold / "scaffold.json").read_text())
    assert info["method"] == "single_image" and info["sweepFrames"] == 16
    assert [info["views"][f"{v:03d}"]["sweepFrame"] for v in range(8)] == [0, 2, 4, 6, 8, 10, 12, 14]
    final = [decode_png((scaffold / "final" / f"{v:03d}.png").read_bytes()) for v in range(8)]
    np.testing.assert_array_equal(final[0], square(decode_png(PORTRAIT.read_bytes()), SIDE))
    for v in range(1, 8):  # the stand-in painted target k (sweep frame k + 1) red = k, green = yaw / 2
        assert tuple(final[v][0, 0]) == (2 * v - 1, round(45 * v / 2), 7)


def test_only_stages_ending_at_the_gate_stop_there_and_say_how_to_go_on(tmp_path: Path, tiny_models: Path) -> None:
    """`onlyStages: [scaffold]` with `selection: manual`: the run waits for the choice (exit 3), names
    each sample once and says to select the later stages to go on."""
    doc = scenejob(tmp_path, tiny_models, selection="manual", inpaintCandidates=2, theme="old library")
    doc["spec"]["variants"] = ["stylized"]
    result = genfab_run(tmp_path, doc, timeout=300)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 3, output
    assert "stylized/index_0000: stylized/index_0000" not in output
    assert "stylized/index_0000: 4 in-between views await a person's choice of 2 candidates each" in output
    job = tmp_path / "job.yaml"
    assert (f"then run `genfab run {job} --only expansion,gaussians` to go on" in output if _cuda() else
            f"then run `genfab run {job}` again here; expansion, gaussians (not selected) need a CUDA GPU: on a "
            f"machine with one, `genfab run {job} --only expansion,gaussians`" in output), output

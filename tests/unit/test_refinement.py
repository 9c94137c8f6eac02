"""DiFix refinement in 3DGS (Difix3D+), on the CPU: the novel cameras' progression, the reference
view choice, the pseudo-view schedule, a fix with the tiny random DiFix (a stand-in for
nvidia/difix_ref), and the hand-off from a TuningRun into the gaussians stage's plan."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from scripts.tiny_models import save_tuning_models  # noqa: E402

from genfab.api import parse_resource  # noqa: E402
from genfab.planner import plan  # noqa: E402
from genfab.sequencing.refs import checkpoint_state, plan_references  # noqa: E402
from genfab.stages.gaussians.cameras import Camera, intrinsics, look_at  # noqa: E402
from genfab.stages.gaussians.refine import (  # noqa: E402
    DifixFixer,
    Refiner,
    RefineSettings,
    nearest,
    shift_poses,
    start_poses,
    targets,
)


def ring(n: int, offset: float = 0.0) -> list[Camera]:
    cams = []
    for i in range(n):
        a = 2 * np.pi * (i + offset) / n
        c2w = look_at(np.array([4 * np.cos(a), 4 * np.sin(a), 1.0]), np.zeros(3))
        cams.append(Camera(f"v{i:02d}", intrinsics(40, 40, 16, 16), c2w, 32, 32))
    return cams


def test_novel_cameras_move_from_the_training_views_toward_the_held_out_ones() -> None:
    train, held = ring(8), ring(8, offset=0.5)
    goals = targets(train, held)
    poses = start_poses(train, 4)
    assert [nearest(p, [c.c2w for c in train], 4.0) for p in poses] == [0, 2, 5, 7]
    distances = []
    for _ in range(4):
        poses = shift_poses(poses, goals, 0.5, 4.0)
        distances.append(min(float(np.linalg.norm(poses[0][:3, 3] - g[:3, 3])) for g in goals))
    assert all(b < a for a, b in itertools.pairwise(distances)) and distances[-1] < 0.1
    for p in poses:  # still rotations, still looking at the scene
        assert np.allclose(p[:3, :3] @ p[:3, :3].T, np.eye(3), atol=1e-6)
        assert np.dot(p[:3, 2], -p[:3, 3] / np.linalg.norm(p[:3, 3])) > 0.9
    mids = targets(train, [])  # nothing held out: between neighbouring training views
    assert len(mids) == 8 and np.allclose(np.linalg.norm(mids[0][:3, 3][:2]), 4.0, atol=0.4)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tuning_models(tmp_path_factory.mktemp("refine") / "models")


def test_a_fix_adds_pseudo_views_with_the_nearest_reference(models: Path) -> None:
    fixer = DifixFixer(models / "nvidia/difix_ref", None, "remove degradation", 199, "cpu")
    train, held = ring(6), ring(6, offset=0.5)
    images = [np.full((32, 32, 3), i / 6, np.float32) for i in range(6)]
    refiner = Refiner(fixer, RefineSettings((10, 20), novel_views=3, novel_probability=0.3, seed=1), train, held,
                      images, 4.0)
    seen: list[list[str]] = []

    def render(cams: list[Camera]) -> tuple[np.ndarray, np.ndarray]:
        seen.append([c.name for c in cams])
        alpha = np.zeros((len(cams), 32, 32, 1), np.float32)
        alpha[:, 8:24, 8:24] = 1
        return np.random.default_rng(0).random((len(cams), 32, 32, 3)).astype(np.float32), alpha

    assert [s for s in range(30) if refiner.due(s)] == [9, 19]
    assert refiner.pick() is None  # nothing fixed yet: always a training view
    assert refiner.fix(render, 9) == 3 and refiner.fix(render, 19) == 3
    views = refiner.pseudo
    assert len(views) == 6 and views.fix_steps_done == [10, 20] and seen[0][0] == "novel_000010_000"
    assert all(img.shape == (32, 32, 3) and img.min() >= 0 and img.max() <= 1 for img in views.images)
    assert views.coverage[0][16, 16, 0] == 1 and views.coverage[0][0, 0, 0] == 0
    picks = [refiner.pick() for _ in range(2000)]
    share = sum(p is not None for p in picks) / len(picks)
    assert abs(share - 0.3) < 0.04 and {p for p in picks if p is not None} == set(range(6))


def test_a_checkpoint_goes_over_the_base_model(models: Path, tmp_path: Path) -> None:
    from genfab.stages.models.difix import load_difix
    from genfab.stages.models.difix_checkpoints import save_checkpoint

    net, _ = load_difix(models / "nvidia/difix_ref", 199, 4)
    with torch.no_grad():
        for p in net.unet.parameters():
            p.add_(0.05)
    path = save_checkpoint(net, torch.optim.AdamW(net.trainable()), 7, tmp_path)
    base = DifixFixer(models / "nvidia/difix_ref", None, "remove degradation", 199, "cpu")
    tuned = DifixFixer(models / "nvidia/difix_ref", path, "remove degradation", 199, "cpu")
    x = np.random.default_rng(0).random((1, 32, 32, 3)).astype(np.float32)
    assert not np.allclose(base.fix(x, x), tuned.fix(x, x))
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        (tmp_path / "model_9.pkl").write_bytes(b"not a checkpoint")
        DifixFixer(models / "nvidia/difix_ref", tmp_path / "model_9.pkl", "x", 199, "cpu")


def scenejob(**refinement: Any) -> Any:
    return parse_resource({
        "apiVersion": "genfab.dev/v1alpha1", "kind": "SceneJob", "metadata": {"name": "sj", "namespace": "lab"},
        "spec": {"pipeline": "worldexplorer", "input": {"image": "s3://lab-in/a.png"}, "output": "s3://lab-out/run",
                 "refinement": refinement}})


def test_the_tuning_run_checkpoint_enters_only_the_gaussians_hash() -> None:
    r = scenejob(tuningRunRef={"name": "difix-lr"})
    waiting = plan(r)
    assert plan_references(waiting) == [("TuningRun/difix-lr", "checkpoints/latest")]
    assert "ref:TuningRun/difix-lr/checkpoints/latest" in waiting.stage("gaussians").input_uris
    a = plan(r, references={"TuningRun/difix-lr": "s3://lab-out/exp/tuning_runs/lr/checkpoints/model_1000.pkl"})
    b = plan(r, references={"TuningRun/difix-lr": "s3://lab-out/exp/tuning_runs/lr/checkpoints/model_2000.pkl"})
    assert plan_references(a) == []
    assert a.stage("gaussians").config["checkpoint"].endswith("model_1000.pkl")
    changed = {s.name for s in a.stages if s.config_hash != b.stage(s.name).config_hash}
    assert changed == {"gaussians"}
    base = plan(scenejob())  # refinement with the base model: no checkpoint, nothing to wait for
    assert "checkpoint" not in base.stage("gaussians").config and plan_references(base) == []


def run_status(phase: str, checkpoints: list[str], step: int = 0) -> dict[str, Any]:
    folder = "s3://lab-out/exp/tuning_runs/lr/checkpoints"
    return {"status": {"phase": phase, "training": {"step": step, "maxSteps": 3000, "checkpoints": checkpoints,
                                                     "latestCheckpoint": f"{folder}/{checkpoints[-1]}" if checkpoints
                                                     else None}}}


@pytest.mark.parametrize(("path", "body", "state", "uri_or_text"), [
    ("checkpoints/latest", None, "waiting", "does not exist"),
    ("checkpoints/latest", run_status("Running", ["model_1000.pkl"], 1200), "waiting", "step 1200 of 3000"),
    ("checkpoints/latest", run_status("Succeeded", ["model_1000.pkl", "model_3000.pkl"]), "ready", "model_3000.pkl"),
    ("checkpoints/model_1000.pkl", run_status("Running", ["model_1000.pkl"], 1200), "ready", "model_1000.pkl"),
    ("checkpoints/model_2000.pkl", run_status("Running", ["model_1000.pkl"], 1200), "waiting", "model_2000.pkl"),
    ("checkpoints/model_2500.pkl", run_status("Succeeded", ["model_1000.pkl", "model_3000.pkl"]), "failed",
     "without checkpoint model_2500.pkl"),
    ("checkpoints/latest", run_status("Failed", ["model_1000.pkl"]), "failed", "failed before"),
])
def test_which_checkpoint_a_tuning_run_ref_resolves_to(path: str, body: dict[str, Any] | None, state: str,
                                                      uri_or_text: str) -> None:
    found = checkpoint_state("TuningRun/difix-lr", path, body)
    assert found.state == state
    assert uri_or_text in (found.root if state == "ready" else found.message)

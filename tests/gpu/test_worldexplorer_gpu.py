"""GPU tier: worldexplorer end to end through `genfab run` with tiny random FLUX.1-dev, FluxFill,
Depth Pro and CLIP models (scripts/tiny_models.py): `scaffold_gen` with automatic selection, the
built-in expansion (the scaffold as a Gaussian scene, the outward walk with FluxFill, aligned-depth
geometry, img2trajvid/) and 3DGS, for two samples and two variants; then `onlyStages: [gaussians]`
trains again from stage 2's committed outputs. Random weights: the plumbing and the layout, not quality."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("needs CUDA", allow_module_level=True)
pytest.importorskip("gsplat")
pytest.importorskip("diffusers")

from scripts.tiny_models import save_worldexplorer_models  # noqa: E402

from genfab.stages.gaussians.loaders import load_scene  # noqa: E402
from genfab.stages.gaussians.ply import read_ply  # noqa: E402
from tests.helpers import PORTRAIT, ROOT, genfab_run, save_seva_stand_in  # noqa: E402

SAMPLES = ("photorealistic/index_0000", "photorealistic/index_0001", "stylized/index_0000", "stylized/index_0001")
FRAMES = 16
OWN_FRAMES = 10
"""Sample 1's own `expansion.num_frames` in metadata.json (the lab's worldexplorer per-sample fields)."""


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield save_worldexplorer_models(tmp_path_factory.mktemp("models"))


def scenejob(tmp: Path, models: Path) -> dict[str, Any]:
    root = tmp / "curated"
    root.mkdir()
    for name in ("p0.png", "s0.png", "p1.png", "s1.png"):
        (root / name).write_bytes(PORTRAIT.read_bytes())
    (root / "metadata.json").write_text(json.dumps({"samples": [
        {"index": i, "prompt": "a quiet reading room", "photorealistic": {"original_path": f"p{i}.png"},
         "stylized": {"path": f"s{i}.png"}, **({"expansion": {"num_frames": OWN_FRAMES}} if i == 1 else {})}
        for i in (0, 1)]}))
    return {"apiVersion": "genfab.dev/v1alpha1", "kind": "SceneJob", "metadata": {"name": "we-gpu"},
            "spec": {"pipeline": "worldexplorer", "input": {"manifest": (root / "metadata.json").as_uri()},
                     "output": (tmp / "out").as_uri(), "models": {"uri": models.as_uri()},
                     "shardSize": 4,  # one process per stage: the models load once (and tiny ones need no compile)
                     "worldexplorer": {
                         "scaffold": {"method": "scaffold_gen", "selection": "automatic", "inpaintCandidates": 2,
                                      "resolution": 64, "fluxSteps": 2, "fillSteps": 2,
                                      "fluxRuntime": {"compile": "off"}},
                         # genfab's own methods, named (the lab's SEVA and VGGT need their images)
                         "expansion": {"method": "walk", "numFrames": FRAMES, "iterations": 20,
                                       "fillMinHoleRatio": 0.01}},
                     "gaussians": {"steps": 60, "shDegree": 1, "video": False, "testEvery": 4}}}


def test_scaffold_expansion_and_3dgs_for_two_samples_and_two_variants(tmp_path: Path, tiny_models: Path) -> None:
    doc = scenejob(tmp_path, tiny_models)
    result = genfab_run(tmp_path, doc, timeout=1200)
    assert result.returncode == 0, result.stdout + result.stderr
    out = tmp_path / "out"
    for sample in SAMPLES:
        scenes = out / sample / "scenes"
        info = json.loads((scenes / "expansion.json").read_text())
        assert info["generator"] == "flux-fill" and info["geometry"] == "aligned-depth"
        frames, wanted = info["frames"], OWN_FRAMES if sample.endswith("index_0001") else FRAMES
        assert frames["scaffold"] == 8 and frames["generated"] + frames["rendered"] == wanted  # metadata.json's own
        assert info["numFrames"] == wanted and info["fromMetadata"] == (["num_frames"] if wanted == OWN_FRAMES else [])
        assert frames["generated"] >= 1 and frames["points"] > 0  # the walk uncovered something and filled it
        scene = load_scene(scenes / "img2trajvid")  # what stage 3 reads
        assert len(scene.cameras) == 8 + wanted and scene.points is not None and len(scene.points) == frames["points"]
        splats = read_ply(scenes / "gaussians" / "gf.ply")
        assert len(splats) > 0
        metrics = json.loads((scenes / "gaussians" / "metrics.json").read_text())
        assert metrics["steps"] == 60
    batch = json.loads((out / "batch_summary.json").read_text())
    assert batch["counts"] == {"succeeded": 4, "failed": 0, "incomplete": 0}
    assert all(r["stages"]["expansion"]["status"] == "succeeded" for r in batch["samples"])
    summary = {s["name"]: s for s in json.loads((out / "_genfab" / "summary.json").read_text())["stages"]}
    assert summary["expansion"]["producedBy"] == {"expansion: walk (genfab), geometry: scene": 4}
    page = (out / "_genfab/report/index.html").read_text()  # the run's report of real scenes
    table = page.split("<h3>Per scene</h3>", 1)[1].split("</table>", 1)[0]
    for sample in SAMPLES:
        metrics = json.loads((out / sample / "scenes/gaussians/metrics.json").read_text())
        row = table.split(f"<td>{sample}</td>", 1)[1].split("</tr>", 1)[0]
        assert f">{metrics['psnr']:.2f}<" in row and f">{metrics['num_gaussians']}<" in row, row
        trajectory = page.split("Trajectory and the trained scene", 1)[1].split(f'data-sample="{sample}"', 1)[1]
        assert trajectory.split("</tr>", 1)[0].count("<img ") == 7  # six frames and the 3DGS render
    print("\nreport:", next(line for line in result.stdout.splitlines() if line.startswith("report:")))

    # Stage 3 alone (the seed's run_3dgs_only): it finds stage 2's img2trajvid and trains again.
    stamp = {s: (out / s / "scenes/expansion.json").stat().st_mtime_ns for s in SAMPLES}
    doc["spec"]["onlyStages"] = ["gaussians"]
    doc["spec"]["gaussians"]["steps"] = 80
    again = genfab_run(tmp_path, doc, timeout=1200)
    assert again.returncode == 0, again.stdout + again.stderr
    for sample in SAMPLES:
        assert json.loads((out / sample / "scenes/gaussians/metrics.json").read_text())["steps"] == 80
        assert (out / sample / "scenes/expansion.json").stat().st_mtime_ns == stamp[sample]  # stage 2 reused


def test_the_expansion_takes_its_frames_from_seva_when_its_image_is_set(tmp_path: Path, tiny_models: Path) -> None:
    """`worldexplorer.seva.image` set: every trajectory frame comes from SEVA's `img2trajvid` through the
    adapter (here the stand-in of tests/fakes/research, which paints each frame flat), is depth-aligned
    and added; img2trajvid/ holds them all as generated frames."""
    save_seva_stand_in(tiny_models)
    doc = scenejob(tmp_path, tiny_models)
    doc["spec"]["indices"], doc["spec"]["variants"] = [0], ["stylized"]
    doc["spec"]["onlyStages"] = ["scaffold", "expansion"]
    doc["spec"]["worldexplorer"]["scaffold"]["selection"] = "fast"
    doc["spec"]["worldexplorer"]["seva"] = {"image": "lab/genfab-seva:test", "steps": 2}
    # unset: SEVA with its image; its geometry (VGGT on the SEVA path) named as the scene's, VGGT has no image here
    doc["spec"]["worldexplorer"]["expansion"].pop("method")
    doc["spec"]["worldexplorer"]["expansion"]["geometry"] = "scene"
    result = genfab_run(tmp_path, doc, timeout=900, extra_paths=(ROOT / "tests" / "fakes" / "research",))
    assert result.returncode == 0, result.stdout + result.stderr
    scenes = tmp_path / "out" / "stylized" / "index_0000" / "scenes"
    info = json.loads((scenes / "expansion.json").read_text())
    assert info["generator"] == "seva" and info["frames"]["generated"] == FRAMES and info["frames"]["rendered"] == 0
    summary = {s["name"]: s for s in json.loads((tmp_path / "out" / "_genfab" / "summary.json").read_text())["stages"]}
    assert next(iter(summary["expansion"]["producedBy"])).startswith("expansion: seva 0+genfab.stand.in, geometry: ")
    scene = load_scene(scenes / "img2trajvid")
    assert len(scene.cameras) == 8 + FRAMES


def test_on_the_labs_path_the_expansion_builds_no_scene_of_its_own(tmp_path: Path, tiny_models: Path) -> None:
    """SEVA's frames and VGGT's points (both images set; here the stand-ins of tests/fakes/research): the
    expansion writes SEVA's frames and VGGT's points and builds no Gaussian scene of the scaffold (one
    depth pass on view 000 gives the trajectory's scale; nothing is trained that nothing reads)."""
    import numpy as np

    save_seva_stand_in(tiny_models)
    vggt = tiny_models / "facebook" / "VGGT-1B"
    vggt.mkdir(parents=True, exist_ok=True)
    np.savez(vggt / "stand_in.npz", cam_T_world=np.eye(4)[None], depth=np.array([2.0]))
    (vggt / "config.json").write_text("{}")  # the hub repository's layout (the stand-in reads the .npz)
    doc = scenejob(tmp_path, tiny_models)
    doc["spec"]["indices"], doc["spec"]["variants"] = [0], ["stylized"]
    doc["spec"]["onlyStages"] = ["scaffold", "expansion"]
    doc["spec"]["worldexplorer"]["scaffold"]["selection"] = "fast"
    doc["spec"]["worldexplorer"]["seva"] = {"image": "lab/genfab-research:test", "steps": 2}
    doc["spec"]["worldexplorer"]["vggt"] = {"image": "lab/genfab-research:test"}
    for unset in ("method", "geometry"):  # the lab's: SEVA's frames, VGGT's points
        doc["spec"]["worldexplorer"]["expansion"].pop(unset, None)
    result = genfab_run(tmp_path, doc, timeout=900, extra_paths=(ROOT / "tests" / "fakes" / "research",))
    assert result.returncode == 0, result.stdout + result.stderr
    scenes = tmp_path / "out" / "stylized" / "index_0000" / "scenes"
    info = json.loads((scenes / "expansion.json").read_text())
    assert (info["generator"], info["geometry"]) == ("seva", "vggt")
    assert info["frames"]["generated"] == FRAMES and info["frames"]["points"] > 0
    assert info["splats"] == 0 and info["holeRatios"] == [] and info["sceneExtent"] > 0
    scene = load_scene(scenes / "img2trajvid")
    assert len(scene.cameras) == 8 + FRAMES

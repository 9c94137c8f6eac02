"""GPU tier: DiFix refinement inside the `gaussians` stage (Difix3D+), through the stage runtime as a
Pod runs it, on a procedural scene, with the tiny random DiFix (a stand-in for nvidia/difix_ref) and
a Difix3D-format checkpoint over it: novel views are rendered, fixed and trained on at the fix steps,
and the final renders are fixed too."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("needs CUDA", allow_module_level=True)
pytest.importorskip("gsplat")
pytest.importorskip("peft")

from scripts.tiny_models import save_tuning_models  # noqa: E402

from genfab.contract import EXIT_OK, report_key  # noqa: E402
from genfab.inventory import ShardReport  # noqa: E402
from genfab.stages.gaussians import procedural  # noqa: E402
from genfab.stages.gaussians.stage import GAUSSIANS  # noqa: E402
from genfab.stages.models.difix import load_difix  # noqa: E402
from genfab.stages.models.difix_checkpoints import save_checkpoint  # noqa: E402
from genfab.stages.runtime import main  # noqa: E402
from genfab.storage import open_storage  # noqa: E402
from tests.helpers import stage_contract  # noqa: E402

UP, HASH = "a" * 64, "d" * 64


def test_refinement_trains_on_fixed_novel_views(tmp_path: Path) -> None:
    models = save_tuning_models(tmp_path / "models")
    net, _ = load_difix(models / "nvidia/difix_ref", 199, 4)
    checkpoint = save_checkpoint(net, torch.optim.AdamW(net.trainable()), 1000, tmp_path / "tuned" / "checkpoints")
    run = tmp_path / "run"
    scene = procedural.generate(5, n_views=16, width=96, height=96, n_points=4000, device="cuda")
    procedural.write_scene(scene, run / "expansion" / "room" / "scenes", "nerfstudio")
    upstream = ShardReport("expansion", UP, 0, 1, state="succeeded", total=1, succeeded=["room"])
    open_storage(f"file://{run}").write_bytes(report_key("expansion", UP, 0), upstream.to_json())
    env = stage_contract(tmp_path, "gaussians", family="scene", configHash=HASH, shardSize=1,
                         pipeline="worldexplorer", outputLayout="{variant}/index_{index:04d}/scenes/gaussians/",
                         upstream=[{"name": "expansion", "configHash": UP, "outputUri": f"file://{run}/expansion"}],
                         config={"gaussians": {"steps": 300, "video": True},
                                 "refinement": {"fixSteps": [100, 200], "novelViews": 4, "fixFinalRenders": True},
                                 "checkpoint": f"file://{checkpoint}"})
    env["GENFAB_MODELS"] = f"file://{models}"
    assert main(GAUSSIANS.stage(), env) == EXIT_OK
    report = ShardReport.from_json(open_storage(f"file://{run}").read_bytes(report_key("gaussians", HASH, 0)))
    assert report.state == "succeeded" and report.succeeded == ["room"], report.failed
    out = run / "gaussians" / "room" / "scenes" / "gaussians"
    metrics = json.loads((out / "metrics.json").read_text())
    refinement = metrics["refinement"]
    print(f"\nrefinement: {refinement}, test PSNR {metrics['psnr']:.2f} dB")
    assert refinement["fix_steps"] == [100, 200] and refinement["pseudo_views"] == 8
    assert refinement["difix"] == f"file://{checkpoint}"
    # The random stand-in DiFix "fixes" into noise, and the novel cameras head for the held-out views, so
    # the held-out PSNR says the pseudo-views were trained on, not how good refinement is (seen: ~4 dB).
    assert np.isfinite(metrics["psnr"]) and metrics["num_gaussians"] > 1000
    assert (out / "preview_fixed.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "trajectory_fixed.mp4").stat().st_size > 1000

"""GPU tier: the `gaussians` stage end to end through the stage runtime on file:// storage, as the
Pod runs it: scenes from an upstream `expansion` stage in both input formats, one broken scene,
two scenes packed per batch (samples sort as room, yard | zbroken); PLY, metrics, preview and video
land where the layout says."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("needs CUDA", allow_module_level=True)
pytest.importorskip("gsplat")

from genfab.contract import EXIT_OK, report_key  # noqa: E402
from genfab.inventory import ShardReport  # noqa: E402
from genfab.stages.gaussians import procedural  # noqa: E402
from genfab.stages.gaussians.ply import read_ply  # noqa: E402
from genfab.stages.gaussians.stage import GAUSSIANS  # noqa: E402
from genfab.stages.runtime import main  # noqa: E402
from genfab.storage import open_storage  # noqa: E402
from tests.helpers import stage_contract  # noqa: E402

UP, HASH = "a" * 64, "b" * 64


def test_stage_trains_packed_scenes_and_writes_the_layout(tmp_path: Path) -> None:
    run = tmp_path / "run"
    for sample, fmt in (("room", "nerfstudio"), ("yard", "colmap")):
        scene = procedural.generate(3 if sample == "room" else 4, n_views=16, width=96, height=96, n_points=4000,
                                    device="cuda")
        procedural.write_scene(scene, run / "expansion" / sample / "scenes", fmt)
    (run / "expansion" / "zbroken" / "scenes").mkdir(parents=True)
    (run / "expansion" / "zbroken" / "scenes" / "transforms.json").write_text("{not json")
    upstream = ShardReport("expansion", UP, 0, 1, state="succeeded", total=3, succeeded=["room", "yard", "zbroken"])
    open_storage(f"file://{run}").write_bytes(report_key("expansion", UP, 0), upstream.to_json())
    env = stage_contract(tmp_path, "gaussians", family="scene", configHash=HASH, shardSize=3,
                         pipeline="worldexplorer", outputLayout="{variant}/index_{index:04d}/scenes/gaussians/",
                         upstream=[{"name": "expansion", "configHash": UP, "outputUri": f"file://{run}/expansion"}],
                         config={"gaussians": {"steps": 400, "scenesPerPod": 2, "background": [1, 1, 1],
                                               "plyPath": "export/", "video": True}})
    assert main(GAUSSIANS.stage(), env) == EXIT_OK

    report = ShardReport.from_json(open_storage(f"file://{run}").read_bytes(report_key("gaussians", HASH, 0)))
    assert report.state == "succeeded" and sorted(report.succeeded) == ["room", "yard"]
    assert [(f.id, f.reason) for f in report.failed] == [("zbroken", "BadScene")]
    for sample in ("room", "yard"):
        out = run / "gaussians" / sample / "scenes" / "gaussians"
        splats = read_ply(out / "export" / "gf.ply")
        metrics = json.loads((out / "metrics.json").read_text())
        print(f"\n{sample}: {len(splats)} Gaussians, test PSNR {metrics['psnr']:.2f} dB, "
              f"packed {metrics.get('scenes_packed')}, batched {metrics.get('batched')}")
        assert len(splats) == metrics["num_gaussians"] > 1000
        assert metrics["psnr"] > 17 and metrics["scenes_packed"] == 2 and metrics["ply"].endswith("export/gf.ply")
        assert np.isfinite(splats.means).all()
        assert (out / "preview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / "trajectory.mp4").stat().st_size > 1000

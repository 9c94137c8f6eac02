"""The vistadream Rerun recording, read back with rerun's own reader (CPU: no rendering needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rerun")

from rerun.chunk import RrdReader

from genfab.stages.scene import frames, geometry
from genfab.stages.vistadream import canvas, recording


def test_the_recording_has_the_seeds_entities_and_blueprint(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    image, border, c = canvas.add_border_and_mask(rgb, 0.5)
    depth = np.full(border.shape, 2.0, np.float32)
    scene = canvas.outpaint_frames(image, border, c, depth, geometry.intrinsics_from_fov(c.width, c.height, 60.0))
    coarse = frames.Frame("coarse_00", image, depth, border, border, border, scene[1].intrinsic, np.eye(4))
    views = [recording.TrajectoryView(np.eye(4), scene[0].intrinsic, rgb, np.ones((48, 64), np.float32))] * 3
    path = tmp_path / "scene.rrd"
    sh0 = np.zeros((10, 1, 3), np.float32)
    recording.write_recording(path, [*scene, coarse], np.random.rand(10, 3), sh0, views)
    reader = RrdReader(str(path))
    assert len(reader.recordings()) == 1 and len(reader.blueprints()) == 1
    entities = {chunk.entity_path for chunk in reader.stream().to_chunks()}
    for name in ("input", "outpaint", "coarse_00"):
        for image_name in ("rgb", "depth", "confidence", "inpaint"):
            assert f"/world/cameras/{name}/{image_name}" in entities
        assert f"/world/cameras/{name}" in entities
    assert {"/world/points", "/world/render", "/world/render/rgb", "/world/render/depth"} <= entities
    np.testing.assert_array_equal(recording.splat_colors(np.zeros((2, 1, 3))), [[128, 128, 128]] * 2)

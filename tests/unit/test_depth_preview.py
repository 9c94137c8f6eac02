"""The colour views of depth people look at: one scale for a sequence (a video does not flicker), or a
map's own."""

from __future__ import annotations

import numpy as np
import pytest

from genfab.stages.common.imaging import depth_preview, inverse_depth_bounds


@pytest.mark.parametrize(("depths", "expected"), [
    ([], None),
    ([np.zeros((4, 4), np.float32)], None),  # no pixel has depth
    ([np.full((4, 4), 2.0), np.full((4, 4), 0.5)], (0.5, 2.0)),  # inverse depth, over every frame
    ([np.where(np.eye(4) > 0, 0.0, 4.0)], (0.25, 0.25)),  # pixels without depth left out
])
def test_the_bounds_are_the_sequence_s_inverse_depth_percentiles(depths: list[np.ndarray],
                                                                 expected: tuple[float, float] | None) -> None:
    bounds = inverse_depth_bounds(depths)
    assert bounds == (None if expected is None else pytest.approx(expected))


def test_a_strided_sample_of_a_long_sequence_gives_the_same_bounds_as_all_its_pixels() -> None:
    rng = np.random.default_rng(0)
    depths = [rng.uniform(1.0, 10.0, (96, 128)) for _ in range(40)]
    inverse = 1.0 / np.concatenate([d.ravel() for d in depths])
    assert inverse_depth_bounds(depths, pixels=4096) == pytest.approx(tuple(np.percentile(inverse, [2, 98])),
                                                                         rel=0.02)


def test_with_shared_bounds_the_same_depth_has_the_same_colour_in_every_frame() -> None:
    near_far = np.array([[1.0, 4.0]])
    other = np.array([[1.0, 100.0]])  # another frame of the sequence, with a far background
    bounds = inverse_depth_bounds([near_far, other])
    assert (depth_preview(near_far, bounds)[0, 0] == depth_preview(other, bounds)[0, 0]).all()
    # each map's own percentiles stretch each frame on its own: the same depth changes colour
    assert not (depth_preview(near_far)[0, 1] == depth_preview(np.array([[1.0, 4.0, 100.0]]))[0, 1]).all()
    assert (depth_preview(np.zeros((2, 2)), bounds) == 0).all()

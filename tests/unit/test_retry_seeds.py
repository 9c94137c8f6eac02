"""Every output and every retry of reference-object's scenes has a seed of its own: per-unit seeds from
one function (`scene_seed`, random in the lab's reference-object sense, reproducible from the resource's seed), and a
retry's seed derived from its output (the old `seed + attempt` made the next iteration's image again)."""

from __future__ import annotations

import itertools

import pytest
from PIL import Image

from genfab.stages.reference_object.qwen_edit import Editor
from genfab.stages.reference_object.units import scene_units_of
from genfab.stages.runtime import SampleError, retry_seed


@pytest.mark.parametrize(("base", "perspectives", "prompts", "iterations", "attempts"),
                         [(12345, 4, 3, 50, 4), (0, 2, 10, 200, 3), (2**40, 1, 1, 1000, 6)])
def test_every_try_of_every_output_has_its_own_seed(base: int, perspectives: int, prompts: int, iterations: int,
                                                    attempts: int) -> None:
    units = scene_units_of({f"perspective_{p:02d}_left" for p in range(perspectives)}, prompts, iterations, base)
    first = {u.seed for u in units}
    assert len(first) == len(units)  # distinct across perspectives, prompts and iterations
    retries = [retry_seed(u.seed, a, u.id) for u, a in itertools.product(units, range(1, attempts))]
    assert len(set(retries)) == len(retries)  # no two retries share a seed
    assert not set(retries) & first  # and none is any output's first seed
    assert all(retry_seed(u.seed, 0, u.id) == u.seed for u in units)  # the first try keeps the seed's seed
    assert all(0 <= s < 2**63 for s in retries)  # a valid torch.Generator seed


class BlankThenImage(Editor):
    """An editor whose first `blanks` tries give a blank image (a stand-in for the pipeline)."""

    def __init__(self, retries: int, blanks: int) -> None:
        super().__init__(pipe=None, steps=1, true_cfg_scale=1.0, retries=retries)
        self.blanks, self.seeds = blanks, []

    def edit_once(self, image: Image.Image, prompt: str, seed: int) -> Image.Image:
        self.seeds.append(seed)
        colour = (0, 0, 0) if len(self.seeds) <= self.blanks else (200, 30, 30)
        return Image.new("RGB", (8, 8), colour)


def test_a_retried_edit_records_the_seed_it_used() -> None:
    editor = BlankThenImage(retries=2, blanks=1)
    _, info = editor.edit(Image.new("RGB", (8, 8)), "a mug", 12345, key="perspective_0_prompt_0_seed_12345")
    assert editor.seeds[0] == 12345 and editor.seeds[1] not in (12345, 12346)
    assert info == {"seed": editor.seeds[1], "attempts": 2, "errors": ["blank image"]}
    with pytest.raises(SampleError, match="3 attempts failed"):
        BlankThenImage(retries=2, blanks=3).edit(Image.new("RGB", (8, 8)), "a mug", 1, key="x")

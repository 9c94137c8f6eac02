"""genfab's FLUX text-to-image core against diffusers' own `FluxPipeline.__call__`, with the tiny random
FLUX.1-dev of scripts/tiny_models.py through the real loading code, on the CPU (random weights: the loop,
the seeding and the prompt cache, never picture quality)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers")
torch = pytest.importorskip("torch")

from scripts.tiny_models import save_tiny_flux  # noqa: E402

from genfab.stages.flux.core import Prompt  # noqa: E402
from genfab.stages.flux.speed import EAGER  # noqa: E402
from genfab.stages.flux.text import FluxText, FluxTextCore  # noqa: E402
from genfab.stages.models.placement import Placement  # noqa: E402


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_flux(tmp_path_factory.mktemp("models"))


def test_the_core_with_every_option_off_is_diffusers_own_pipeline_step_for_step(model: Path) -> None:
    from diffusers import FluxPipeline

    pipe = FluxPipeline.from_pretrained(model, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    kept: dict[str, torch.Tensor] = {}

    def keep(_: object, i: int, t: object, kwargs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        kept["latents"] = kwargs["latents"]
        return kwargs

    eager = pipe(prompt="a lighthouse", height=64, width=96, num_inference_steps=3, guidance_scale=3.5,
                 generator=torch.Generator().manual_seed(7), output_type="pt", max_sequence_length=512,
                 callback_on_step_end=keep).images
    core = FluxTextCore(pipe, Placement.choose("float32"), EAGER)
    prompt = Prompt.encode(pipe, "a lighthouse", torch.device("cpu"))
    out = core.generate(prompt, 64, 96, 3, 3.5, torch.Generator().manual_seed(7))
    torch.testing.assert_close(out.latents, kept["latents"].float(), rtol=0, atol=1e-6)
    torch.testing.assert_close(out.image, eager.float(), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="multiples of 32"):
        core.generate(prompt, 40, 96, 3, 3.5, torch.Generator())


def test_the_stage_helper_gives_uint8_and_encodes_each_prompt_once(model: Path) -> None:
    text = FluxText(model, Placement.choose("float32"), steps=2, guidance=3.5, options=EAGER)
    first = text("a harbour", 64, 64, seed=1)
    assert first.shape == (64, 64, 3) and first.dtype == np.uint8
    assert np.array_equal(text("a harbour", 64, 64, seed=1), first)  # seeded
    assert not np.array_equal(text("a harbour", 64, 64, seed=2), first)
    text("a forest", 64, 64, seed=1)
    assert sorted(text.prompts) == ["a forest", "a harbour"]

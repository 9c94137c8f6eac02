"""genfab's FluxFill core against diffusers' own `FluxFillPipeline.__call__`, with the tiny random
FLUX.1-Fill-dev of scripts/tiny_models.py through the real loading code, on the CPU: random
weights, so these check the loop, the seeding and the options' plumbing, never picture quality."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers")
torch = pytest.importorskip("torch")

from scripts.tiny_models import save_tiny_flux_fill  # noqa: E402

from genfab.api.scenejob import FluxRuntime  # noqa: E402
from genfab.stages.flux import graph  # noqa: E402
from genfab.stages.flux.core import Prompt, release_text_encoders  # noqa: E402
from genfab.stages.flux.fill import FluxFill, FluxFillCore  # noqa: E402
from genfab.stages.flux.speed import EAGER, EagerFallback, apply, compile_mode, guarded  # noqa: E402
from genfab.stages.models.placement import Placement  # noqa: E402
from genfab.stages.runtime.errors import BadInput  # noqa: E402
from genfab.stages.vistadream import canvas  # noqa: E402


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_flux_fill(tmp_path_factory.mktemp("models"))


def with_(**options: object) -> FluxRuntime:
    """Eager options with `options` changed (no validation: the tests try refused combinations)."""
    return EAGER.model_copy(update=options)


def cpu() -> Placement:
    return Placement.choose("float32")


def load(model: Path) -> object:
    from diffusers import FluxFillPipeline

    pipe = FluxFillPipeline.from_pretrained(model, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def inputs() -> tuple[torch.Tensor, torch.Tensor]:
    image = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(3))
    mask = torch.zeros(1, 1, 64, 96)
    mask[..., :, :24] = 1  # paint the left quarter
    return image, mask


def test_the_core_with_every_option_off_is_diffusers_own_fill_step_for_step(model: Path) -> None:
    pipe = load(model)
    image, mask = inputs()
    kept: dict[str, torch.Tensor] = {}

    def keep(_: object, i: int, t: object, kwargs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        kept["latents"] = kwargs["latents"]
        return kwargs

    eager = pipe(prompt="", image=image, mask_image=mask, height=64, width=96, num_inference_steps=3,
                 guidance_scale=30.0, generator=torch.Generator().manual_seed(5), output_type="pt",
                 max_sequence_length=512, callback_on_step_end=keep).images
    prompt = Prompt.encode(pipe, "", torch.device("cpu"))
    release_text_encoders(pipe)
    assert pipe.text_encoder is None and pipe.text_encoder_2 is None
    core = FluxFillCore(pipe, cpu(), EAGER, prompt)
    out = core.fill(image, mask, 3, 30.0, torch.Generator().manual_seed(5))
    torch.testing.assert_close(out.latents, kept["latents"].float(), rtol=0, atol=1e-6)
    torch.testing.assert_close(out.image, eager.float(), rtol=0, atol=1e-6)
    again = core.fill(image, mask, 3, 30.0, torch.Generator().manual_seed(5))
    torch.testing.assert_close(again.image, out.image, rtol=0, atol=0)  # no state carried between fills
    with pytest.raises(ValueError, match="multiples of 32"):
        core.fill(image[..., :40], mask[..., :40], 3, 30.0, torch.Generator())


def test_first_block_cache_runs_in_its_own_context_per_fill(model: Path) -> None:
    """diffusers' fill pipeline opens no cache context, so its first-block cache cannot run there;
    genfab's loop opens one per fill and resets it, so two equal fills give equal pictures."""
    pipe = load(model)
    prompt = Prompt.encode(pipe, "", torch.device("cpu"))
    core = FluxFillCore(pipe, cpu(), with_(first_block_cache=0.5), prompt)
    assert core.applied.cache and "first-block-cache=0.5" in core.applied.options
    image, mask = inputs()
    first = core.fill(image, mask, 4, 30.0, torch.Generator().manual_seed(5))
    second = core.fill(image, mask, 4, 30.0, torch.Generator().manual_seed(5))
    torch.testing.assert_close(first.image, second.image, rtol=0, atol=0)
    assert torch.isfinite(first.latents).all()


def test_gpu_only_options_are_skipped_on_the_cpu_and_fp8_says_what_it_needs(model: Path) -> None:
    pipe = load(model)
    denoiser, applied = apply(pipe.transformer, with_(compile="full"), torch.device("cpu"))
    assert denoiser is pipe.transformer and applied.options == []  # compiling for the CPU is not worth it
    with pytest.raises(BadInput, match=r"^fluxRuntime.fp8 needs an NVIDIA GPU .* this stage runs on the CPU"):
        apply(pipe.transformer, with_(fp8="rowwise"), torch.device("cpu"))
    with pytest.raises(BadInput, match=r"^fluxRuntime.fp8 does not run with offload group"):
        apply(pipe.transformer, with_(fp8="rowwise"), torch.device("cpu"), offload="group")
    with pytest.raises(BadInput, match=r"^fluxRuntime.attention 'sage' is not usable in this image: .*sageattention"):
        apply(pipe.transformer, with_(attention="sage"), torch.device("cpu"))


@pytest.mark.parametrize(("requested", "cuda", "offload", "expected"), [
    ("off", True, "none", ("off", "")),
    ("blocks", True, "none", ("blocks", "")),
    ("full", True, "none", ("full", "")),
    ("blocks", False, "none", ("off", "fluxRuntime.compile is skipped on the CPU")),
    ("blocks", True, "group", ("off", "fluxRuntime.compile is skipped under offload group")),
    ("full", True, "sequential", ("off", "fluxRuntime.compile is skipped under offload sequential")),
    ("blocks", True, "model", ("blocks", "")),
    ("full", True, "model", ("blocks", "fluxRuntime.compile full becomes blocks under offload model")),
])
def test_which_compilation_applies(requested: str, cuda: bool, offload: str, expected: tuple[str, str]) -> None:
    mode, why = compile_mode(requested, cuda, offload)
    assert mode == expected[0] and why.startswith(expected[1]) and bool(why) == bool(expected[1])


@pytest.mark.parametrize(("mode", "cuda", "offload", "cache", "captured"), [
    ("blocks", True, "none", 0.0, True),
    ("blocks", False, "none", 0.0, False),  # no CUDA graphs on the CPU
    ("blocks", True, "model", 0.0, False),  # the hook moves the weights between calls
    ("blocks", True, "none", 0.05, False),  # the cache decides in Python at each step
    ("full", True, "none", 0.0, False),  # inductor's own CUDA graphs
    ("off", True, "none", 0.0, False),  # the plain transformer stays diffusers' own
])
def test_which_steps_are_captured_as_cuda_graphs(mode: str, cuda: bool, offload: str, cache: float,
                                                 captured: bool) -> None:
    assert graph.wanted(mode, cuda, offload, cache) is captured


def test_a_failing_compilation_switches_every_block_to_eager_once(caplog: pytest.LogCaptureFixture) -> None:
    from torch._inductor.exc import InductorError

    fallback = EagerFallback()
    attempts: list[int] = []

    def broken(x: int) -> int:
        attempts.append(x)
        raise InductorError(RuntimeError("Failed to find C compiler. Please specify via CC"), None)

    blocks = [guarded(lambda x: x + 1, broken, fallback) for _ in range(3)]
    with caplog.at_level("WARNING", logger="genfab.stages"):
        assert [block(1) for block in blocks] == [2, 2, 2]
    assert attempts == [1]  # one failed compilation, then every block eager
    assert [r.getMessage() for r in caplog.records] == [
        "fluxRuntime.compile failed, the model runs eagerly (slower, same result): RuntimeError: Failed to find C "
        "compiler. Please specify via CC"]

    def wrapped(x: int) -> int:  # dynamo's wrapper starts "backend='inductor' raised:": the cause is named instead
        raise torch._dynamo.exc.BackendCompilerFailed(lambda *_: None, KeyError("genfab::op"), None)

    caplog.clear()
    with caplog.at_level("WARNING", logger="genfab.stages"):
        assert guarded(lambda x: x + 1, wrapped, EagerFallback())(1) == 2
    assert caplog.records[0].getMessage().endswith("eagerly (slower, same result): KeyError: 'genfab::op'")

    def out_of_memory(x: int) -> int:
        raise torch.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(torch.OutOfMemoryError):  # not a compilation error: never hidden
        guarded(lambda x: x, out_of_memory, EagerFallback())(1)


def test_flux_fill_paints_only_the_mask_and_is_seeded(model: Path) -> None:
    fill = FluxFill(model, cpu(), steps=2, guidance=30.0, options=EAGER)
    rgb = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    image, mask, geometry = canvas.add_border_and_mask(rgb, 0.2)
    out = fill(image, mask, seed=7)
    assert out.shape == image.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(geometry.crop(out), rgb)  # the input's pixels are kept exactly
    assert (out[mask] != 0).any()  # the black border was painted
    np.testing.assert_array_equal(fill(image, mask, seed=7), out)
    assert not np.array_equal(fill(image, mask, seed=8), out)
    with pytest.raises(ValueError, match="multiples of 32"):
        fill(rgb, np.ones(rgb.shape[:2], bool), seed=0)

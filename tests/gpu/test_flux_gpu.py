"""GPU tier: the FluxFill core's speed options on the tiny random FLUX.1-Fill-dev (scripts/tiny_models.py)
in bf16: each option applies and fills; the lossless ones stay close to the plain loop. Random
weights, so closeness is all this checks (benchmarks/vistadream.py measures speed at full size)."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("needs CUDA", allow_module_level=True)
pytest.importorskip("diffusers")

from scripts.tiny_models import save_tiny_flux_fill  # noqa: E402

from genfab.api.scenejob import FluxRuntime  # noqa: E402
from genfab.stages.flux import fp8_mlp, fp8_rows, qkv_rope  # noqa: E402
from genfab.stages.flux.core import Prompt, release_text_encoders  # noqa: E402
from genfab.stages.flux.fill import FluxFillCore  # noqa: E402
from genfab.stages.flux.speed import EAGER  # noqa: E402
from genfab.stages.models.placement import Placement  # noqa: E402


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_flux_fill(tmp_path_factory.mktemp("models"))


def with_(**options: object) -> FluxRuntime:
    """Eager options with `options` changed (no validation: the tests try refused combinations)."""
    return EAGER.model_copy(update=options)


def fill_with(model: Path, options: FluxRuntime) -> torch.Tensor:
    from diffusers import FluxFillPipeline

    placement = Placement.choose("bfloat16")
    pipe = placement.place(FluxFillPipeline.from_pretrained(model, dtype=torch.bfloat16))
    prompt = Prompt.encode(pipe, "", placement.device)
    release_text_encoders(pipe)
    core = FluxFillCore(pipe, placement, options, prompt)
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., :16] = 1
    return core.fill(image, mask, 4, 30.0, torch.Generator().manual_seed(1)).image


def test_every_speed_option_fills_and_the_lossless_ones_stay_close(model: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    monkeypatch.setattr(fp8_mlp, "MIN_ROWS", 1)  # the tiny fill's few tokens take the fused FP8 layers too
    # diffusers' set_attention_backend (the cudnn variant) also sets the process's active backend: restore it
    monkeypatch.setattr(_AttentionBackendRegistry, "_active_backend", _AttentionBackendRegistry._active_backend)
    torch._dynamo.reset()
    plain = fill_with(model, EAGER)
    variants = {"blocks": with_(compile="blocks"), "full": with_(compile="full"),
                "cudnn": with_(attention="_native_cudnn"),
                "fbc+blocks": with_(compile="blocks", first_block_cache=0.05)}
    if torch.cuda.get_device_capability() >= (8, 9):
        variants["fp8"] = with_(compile="off", fp8="rowwise")
        variants["fp8+blocks"] = with_(compile="blocks", fp8="rowwise")
        # the same graphs again: inductor's caches would hand back the first compilation (torch 2.11 failed to
        # load its multi-kernel reductions and the fill ran eagerly)
        variants["fp8+blocks again"] = variants["fp8+blocks"]
    for name, options in variants.items():
        torch._dynamo.reset()
        caplog.clear()
        with caplog.at_level("WARNING", logger="genfab.stages"):
            out = fill_with(model, options)
        assert "compile failed" not in caplog.text, (name, caplog.text)
        assert out.shape == plain.shape and torch.isfinite(out).all(), name
        error = (out - plain).abs().mean().item()
        print(f"{name}: mean abs difference to the plain loop {error:.4f}")
        if name in ("blocks", "full", "cudnn"):
            assert error < 0.02, name


def test_step_graph_replays_the_step_and_captures_each_shape(model: Path) -> None:
    from diffusers import FluxTransformer2DModel

    from genfab.stages.flux.graph import StepGraph

    transformer = FluxTransformer2DModel.from_pretrained(model / "transformer", dtype=torch.bfloat16).cuda().eval()
    graphed = StepGraph(transformer)
    config = transformer.config
    generator = torch.Generator("cuda").manual_seed(0)

    def inputs(tokens: int) -> dict[str, object]:
        def rand(*shape: int) -> torch.Tensor:
            return torch.randn(*shape, device="cuda", dtype=torch.bfloat16, generator=generator)

        return {"hidden_states": rand(1, tokens, config.in_channels), "timestep": torch.rand(1, device="cuda"),
                "guidance": torch.full((1,), 30.0, device="cuda") if config.guidance_embeds else None,
                "pooled_projections": rand(1, config.pooled_projection_dim),
                "encoder_hidden_states": rand(1, 8, config.joint_attention_dim),
                "txt_ids": torch.zeros(8, 3, device="cuda"),
                "img_ids": torch.rand(tokens, 3, device="cuda") * 8, "return_dict": False}

    with torch.inference_mode():
        for tokens in (16, 16, 64, 16):  # a replay, a new shape's capture, the first graph again
            step = inputs(tokens)
            expected = transformer(**step)[0].clone()
            got = graphed(**step)[0]
            assert not graphed.failed
            torch.testing.assert_close(got, expected, atol=1e-2, rtol=1e-2)
    assert len(graphed.captured) == 2


@pytest.mark.parametrize(("rows", "width", "head_width"), [(4608, 12288, 3072), (300, 100, 36), (7, 64, 0)])
def test_the_row_quantisation_kernel_is_the_reference(rows: int, width: int, head_width: int) -> None:
    generator = torch.Generator("cuda").manual_seed(0)
    pre = (torch.randn(rows, width, device="cuda", generator=generator) * 3).bfloat16()
    head = None
    if head_width:  # a strided view, as the attention output can be
        head = torch.randn(rows, 2 * head_width, device="cuda", generator=generator).bfloat16()[:, ::2]
    pre[0] = 0
    if head is not None:
        head[0] = 0
    got, scale = fp8_rows.gelu_fp8_rows(pre, head)
    expected, expected_scale = fp8_rows.reference(pre, head)
    assert torch.equal(scale, expected_scale)
    flips = (got.float() != expected.float()).float().mean().item()
    assert flips < 1e-3, flips  # Triton's and PyTorch's sigmoid round differently, rarely
    assert torch.equal(got[0].float(), torch.zeros_like(got[0].float()))


@pytest.mark.parametrize(("batch", "image", "text", "heads", "dim"), [(1, 4096, 512, 24, 128), (2, 37, 0, 3, 64),
                                                                      (1, 5, 3, 1, 16)])
def test_the_attention_input_kernel_is_the_reference(batch: int, image: int, text: int, heads: int, dim: int
                                                         ) -> None:
    generator = torch.Generator("cuda").manual_seed(0)

    def projection(tokens: int) -> torch.Tensor:  # a fused QKV output: queries, keys, values side by side
        return (torch.randn(batch, tokens, 3 * heads * dim, device="cuda", generator=generator) * 4).bfloat16()

    streams = projection(image), projection(text) if text else None
    # bf16 values, as the model's norm weights are (the reference rounds them to the activations' dtype)
    weight = (torch.rand(4, dim, device="cuda", generator=generator) + 0.5).bfloat16().float()
    angles = torch.rand(image + text, dim, device="cuda", generator=generator) * 6
    args = (*streams, weight, angles.cos(), angles.sin(), heads, 1e-6)
    got, expected = qkv_rope.qkv_norm_rope(*args), qkv_rope.reference(*args)
    assert got.shape == expected.shape == (3, batch, heads, image + text, dim)
    flips = (got != expected).float().mean().item()
    assert flips < 1e-2, flips  # the sum of squares is added in another order: a rare last-bit rounding
    torch.testing.assert_close(got.float(), expected.float(), atol=0.05, rtol=0.02)

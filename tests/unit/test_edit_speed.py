"""genfab's Qwen Image Edit core options on the CPU, with diffusers' real Qwen Image Edit pipeline at
tiny random sizes (no processor: the prompt embeddings are given, as the benchmark does; the
processor needs torchvision)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from scripts.tiny_models import tiny_qwen_transformer  # noqa: E402

from genfab.api.reference_object import EditRuntime  # noqa: E402
from genfab.stages.reference_object import edit_speed  # noqa: E402
from genfab.stages.runtime import BadInput  # noqa: E402


def tiny_pipeline() -> Any:
    from diffusers import AutoencoderKLQwenImage, FlowMatchEulerDiscreteScheduler, QwenImageEditPipeline

    torch.manual_seed(0)
    # 8x downsampling: the pipeline encodes the reference at a fixed area whatever the output size (patched
    # down to 64² by the `pipe` fixture), so a smaller factor makes many more reference tokens
    vae = AutoencoderKLQwenImage(base_dim=8, z_dim=4, dim_mult=[1, 2, 4, 4], num_res_blocks=1,
                                 temperal_downsample=[False, True, True], latents_mean=[0.0] * 4,
                                 latents_std=[1.0] * 4)
    pipe = QwenImageEditPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=None,
                                 tokenizer=None, processor=None, transformer=tiny_qwen_transformer())
    pipe.set_progress_bar_config(disable=True)
    return pipe


def edit(pipe: Any, steps: int = 4) -> Any:
    from PIL import Image

    g = torch.Generator().manual_seed(1)
    embeds = {"prompt_embeds": torch.randn(1, 7, 16, generator=g),
              "negative_prompt_embeds": torch.randn(1, 3, 16, generator=g),
              "prompt_embeds_mask": torch.ones(1, 7, dtype=torch.long),
              "negative_prompt_embeds_mask": torch.ones(1, 3, dtype=torch.long)}
    image = Image.fromarray((np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8))
    edit_speed.reset(pipe.transformer)
    return pipe(image=image, **embeds, true_cfg_scale=4.0, num_inference_steps=steps, height=32, width=32,
                generator=torch.Generator().manual_seed(7), output_type="latent").images


@pytest.fixture(scope="module")
def pipe() -> Iterator[Any]:
    """The tiny pipeline, its reference encoded at 64² instead of the 1024² area diffusers resizes every
    reference to (`calculate_dimensions`): the same steps, passes and truncation, without 4,096 reference
    tokens a pass (about 9 s an edit on a CPU; these tests count passes, not pixels)."""
    from diffusers.pipelines.qwenimage import pipeline_qwenimage_edit

    dimensions = pipeline_qwenimage_edit.calculate_dimensions
    patch = pytest.MonkeyPatch()
    patch.setattr(pipeline_qwenimage_edit, "calculate_dimensions", lambda _area, ratio: dimensions(64 * 64, ratio))
    try:
        yield tiny_pipeline()
    finally:
        patch.undo()


def count_passes(pipe: Any) -> list[int]:
    calls = [0]
    inner = pipe.transformer.__dict__.get("forward")
    target = inner.forward if isinstance(inner, edit_speed.CfgTruncation) else pipe.transformer.forward

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return target(*args, **kwargs)

    if isinstance(inner, edit_speed.CfgTruncation):
        inner.forward = counted
    else:
        pipe.transformer.forward = counted
    return calls


@pytest.mark.parametrize("truncation", [0.0, 0.3, 0.6])
def test_cfg_truncation_runs_the_negative_pass_only_while_the_normalised_time_is_within_it(
        pipe: Any, truncation: float) -> None:
    edit_speed.undo(pipe.transformer)
    full = edit(pipe)
    assert edit_speed.apply(pipe.transformer, EditRuntime(cfg_truncation=truncation), torch.device("cpu")) == [
        f"cfg-truncation={truncation}"]
    calls = count_passes(pipe)
    out = edit(pipe)
    sigmas = (pipe.scheduler.timesteps / 1000).tolist()
    guided = sum(1 - s <= truncation for s in sigmas)
    assert calls[0] == len(sigmas) + guided
    assert guided < len(sigmas)  # each case truncates something
    assert not torch.allclose(out, full)
    again = edit(pipe)  # `reset` per call: the same passes, the same result
    assert calls[0] == 2 * (len(sigmas) + guided) and torch.equal(again, out)
    edit_speed.undo(pipe.transformer)


def test_the_default_runtime_changes_nothing_on_the_cpu(pipe: Any) -> None:
    edit_speed.undo(pipe.transformer)
    before = edit(pipe)
    assert edit_speed.apply(pipe.transformer, EditRuntime(), torch.device("cpu")) == []
    assert torch.equal(edit(pipe), before)
    # without true CFG there is nothing to truncate
    assert edit_speed.apply(pipe.transformer, EditRuntime(cfg_truncation=0.5), torch.device("cpu"),
                            true_cfg=False) == []


def test_fp8_on_the_cpu_is_refused_in_one_line(pipe: Any) -> None:
    with pytest.raises(BadInput, match=r"^scenes.editRuntime.fp8 needs an NVIDIA GPU .* set fp8: off$"):
        edit_speed.apply(pipe.transformer, EditRuntime(fp8="rowwise"), torch.device("cpu"))


GIB = 2**30


@pytest.mark.parametrize(("mode", "cuda", "quantised", "offload", "free", "expected"), [
    # a bf16 model, or the CPU: nothing to do and nothing to record
    ("auto", True, False, "none", 80 * GIB, (False, "")),
    ("on", False, True, "none", 80 * GIB, (False, "")),
    # auto: bf16 when the GPU has the memory and nothing is offloaded
    ("auto", True, True, "none", 80 * GIB, (True, "dequantized=bf16")),
    ("auto", True, True, "none", 45 * GIB, (True, "dequantized=bf16")),
    ("auto", True, True, "none", 30 * GIB,
     (False, "4-bit (dequantize: auto: 30.0 GiB free on the GPU, 44.0 GiB needed for bf16)")),
    ("auto", True, True, "model", 80 * GIB, (False, "4-bit (dequantize: auto keeps it with offload: model)")),
    # on and off do as they say on a GPU
    ("on", True, True, "none", 10 * GIB, (True, "dequantized=bf16")),
    ("off", True, True, "none", 80 * GIB, (False, "4-bit (dequantize: off)")),
])
def test_dequantize_decision(mode: str, cuda: bool, quantised: bool, offload: str, free: int,
                             expected: tuple[bool, str]) -> None:
    assert edit_speed.dequantize_decision(mode, cuda, quantised, offload, free, 44 * GIB) == expected


class Loaded(torch.nn.Module):
    """What diffusers leaves on a model loaded from a bitsandbytes export, before and after `dequantize`."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(8, 4, bias=False)
        self.quantization_method = "bitsandbytes"
        self.config = type("Config", (), {"quantization_config": {"load_in_4bit": True}})()
        self.is_quantized = True

    def dequantize(self) -> None:
        self.is_quantized = False


def test_a_dequantized_export_is_no_longer_quantised_though_its_config_says_how_it_was_saved() -> None:
    model = Loaded()
    assert edit_speed.quantised(model)
    model.dequantize()
    assert not edit_speed.quantised(model)  # fp8 and LoRA fusing apply from here
    del model.is_quantized  # a model without diffusers' flag: its config decides
    assert edit_speed.quantised(model)


def test_the_bf16_size_counts_a_4bit_weight_at_its_original_shape() -> None:
    model = Loaded()
    packed = torch.nn.Parameter(torch.zeros(16, 1, dtype=torch.uint8), requires_grad=False)
    packed.quant_state = type("State", (), {"shape": torch.Size([4, 8])})()  # type: ignore[attr-defined]
    model.register_parameter("packed", packed)
    assert edit_speed.bf16_bytes(model) == 8 * 4 * 4 + 4 * 8 * 2  # the float32 linear as it is; the 4-bit one in bf16


def test_the_cpu_and_bf16_models_are_never_dequantized(pipe: Any) -> None:
    model = Loaded()
    assert edit_speed.dequantize(model, EditRuntime(dequantize="on"), torch.device("cpu")) == []
    assert model.is_quantized
    assert edit_speed.dequantize(pipe.transformer, EditRuntime(), torch.device("cpu")) == []

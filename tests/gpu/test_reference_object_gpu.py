"""reference-object on a GPU machine with the real packages and tiny random models
(scripts/tiny_models.py): the packages need torchvision, which the CPU machines do not have.

- Step 6 with the real `segment-anything` and `sam2`: the real packages load from the model location
  and run the stage's whole path, training-free PerSAM and PerSAM-F.
- Training-free PerSAM's decoder (`persam.personalised` on segment-anything's `MaskDecoder`, full
  size, random weights) against the released Personalize-SAM decoder (its `per_segment_anything`
  folder, from ZrrSkywalker/Personalize-SAM, at `$GENFAB_PERSAM_RELEASED` or `.persam_ref/`; the test
  skips without it): same weights, same guidance and target, same masks.
- The Qwen Image Edit core on the tiny pipelines, plain and Plus (2509/2511), with the camera LoRA
  fused and the blocks compiled.
- The whole pipeline with `genfab run` and every built-in stage: the tiny Qwen Image Edit pipeline,
  a real `transformers serve` with a tiny chat model, SAM and SAM2.

Random weights: the pictures and masks are meaningless, so the checks are on the layout, the counts
and that every image ends as a labelled dataset entry or as a NoMask drop."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from genfab.api.quality import FIGURES
from genfab.inventory import ShardReport, write_report
from genfab.storage import open_storage
from tests.helpers import genfab_run
from tests.reference_object_job import job
from tests.storage.annotation_scenes import annotation_env, disc, png, scene
from tests.storage.chat_server import chat_server  # noqa: F401  (fixture)

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
    pytest.mark.skipif(importlib.util.find_spec("segment_anything") is None
                       or importlib.util.find_spec("sam2") is None, reason="needs segment-anything and sam2"),
]


@pytest.mark.parametrize("persam_training", [False, True])
def test_annotation_runs_the_real_sam_and_sam2_on_tiny_models(tmp_path: Path, persam_training: bool) -> None:
    from scripts.tiny_models import save_reference_object_models

    from genfab.stages.reference_object.annotate_stage import ANNOTATION
    from genfab.stages.runtime.loop import main

    models = save_reference_object_models(tmp_path / "models", edit=False)
    rng = np.random.default_rng(0)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    ref_mask = disc((80, 80), 40)
    (inputs / "ref.png").write_bytes(png(scene(rng, ref_mask)))
    (inputs / "ref_mask.png").write_bytes(png(np.repeat(ref_mask[..., None] * 255, 3, axis=2)))
    run = open_storage(f"file://{tmp_path}/run")
    scenes = open_storage(f"file://{tmp_path}/run/04_dataset")
    units = [f"perspective_0_prompt_{i}_seed_1" for i in range(4)]
    for i, unit in enumerate(units):
        scenes.write_bytes(f"{unit}.png", png(scene(rng, disc((40 + 25 * i, 60), 25))))
    write_report(run, ShardReport("scenes", "s" * 64, 0, 1, state="succeeded", total=4, succeeded=units))
    config = {"objectName": "orange disc", "seed": 3,
              "annotation": {"splitRatio": 0.75, "persamTraining": persam_training, "persamEpochs": 50}}
    assert main(ANNOTATION.stage(), annotation_env(tmp_path, models, inputs, config)) == 0
    dataset = open_storage(f"file://{tmp_path}/run/06_yolo_dataset")
    labelled = [o.key for o in dataset.list() if "/labels/" in o.key]
    state = json.loads(run.read_bytes("pipeline_state.json"))
    dropped = [f for f in state["failed_operations"] if f["step"] == 6]
    assert len(labelled) + len(dropped) == 4 and all(f["reason"] == "NoMask" for f in dropped), dropped
    assert dataset.exists("dataset.yaml") and dataset.read_bytes("classes.txt") == b"orange disc\n"
    method = "PerSAM-F" if persam_training else "PerSAM"
    markers = [json.loads(dataset.read_bytes(o.key)) for o in dataset.list("_genfab/markers/")]
    assert markers and all(m["extra"]["params"]["persam"] == method for m in markers)
    assert all(("negative" in m["extra"]["params"]) != persam_training for m in markers)


def released_persam(root: Path) -> tuple[object, object]:
    """Personalize-SAM's own `transformer` and `mask_decoder` modules, loaded from their files (its
    package imports timm for MobileSAM, which this test does not need)."""
    import sys
    import types

    folder = root / "per_segment_anything" / "modeling"
    package = types.ModuleType("persam_released")
    package.__path__ = [str(folder)]
    sys.modules["persam_released"] = package
    for name in ("common", "transformer", "mask_decoder"):
        spec = importlib.util.spec_from_file_location(f"persam_released.{name}", folder / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return sys.modules["persam_released.transformer"], sys.modules["persam_released.mask_decoder"]


def test_personalised_sam_decoder_is_the_released_persam_decoder() -> None:
    import os

    from segment_anything.modeling import MaskDecoder, TwoWayTransformer

    from genfab.stages.reference_object.persam import attention_guidance, personalised

    root = Path(os.environ.get("GENFAB_PERSAM_RELEASED", Path(__file__).parents[2] / ".persam_ref"))
    if not (root / "per_segment_anything").is_dir():
        pytest.skip(f"no per_segment_anything at {root} (ZrrSkywalker/Personalize-SAM)")
    released_tf, released_dec = released_persam(root)
    sizes = {"depth": 2, "embedding_dim": 256, "mlp_dim": 2048, "num_heads": 8}  # SAM's decoder
    ours = MaskDecoder(num_multimask_outputs=3, transformer=TwoWayTransformer(**sizes), transformer_dim=256,
                       iou_head_depth=3, iou_head_hidden_dim=256).cuda().eval()
    theirs = released_dec.MaskDecoder(  # type: ignore[attr-defined]
        num_multimask_outputs=3, transformer=released_tf.TwoWayTransformer(**sizes),  # type: ignore[attr-defined]
        transformer_dim=256, iou_head_depth=3, iou_head_hidden_dim=256).cuda().eval()
    theirs.load_state_dict(ours.state_dict())
    g = torch.Generator(device="cuda").manual_seed(0)
    image, pe, dense = (torch.randn(1, 256, 64, 64, device="cuda", generator=g) for _ in range(3))
    sparse = torch.randn(1, 3, 256, device="cuda", generator=g)
    guidance = attention_guidance(torch.randn(480, 640, device="cuda", generator=g), (64, 64))
    target = torch.randn(1, 1, 256, device="cuda", generator=g)
    with torch.no_grad():
        plain, _ = ours(image, pe, sparse, dense, multimask_output=False)
        with personalised(ours, guidance, target):
            mine, mine_iou = ours(image, pe, sparse, dense, multimask_output=False)
        released, released_iou = theirs(image, pe, sparse.clone(), dense, False, attn_sim=guidance,
                                        target_embedding=target)
        again, _ = ours(image, pe, sparse, dense, multimask_output=False)
    assert torch.allclose(mine, released, atol=1e-4, rtol=1e-4), float((mine - released).abs().max())
    assert torch.allclose(mine_iou, released_iou, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(mine, plain, atol=1e-3)  # the two components change the masks
    assert torch.equal(again, plain)  # and leave the decoder as it was


@pytest.mark.parametrize("plus", [False, True])
def test_the_edit_core_runs_the_tiny_pipelines_with_the_fused_lora_and_compiled_blocks(tmp_path: Path,
                                                                                     plus: bool) -> None:
    from PIL import Image
    from scripts.tiny_models import save_tiny_camera_lora, save_tiny_qwen_image_edit

    from genfab.api.reference_object import EditRuntime
    from genfab.stages.models.placement import Placement
    from genfab.stages.reference_object import edit_speed
    from genfab.stages.reference_object.qwen_edit import Editor, fuse_lora, load_lora, load_pipeline

    placement = Placement.choose()
    pipe = load_pipeline(save_tiny_qwen_image_edit(tmp_path, plus=plus), placement)
    assert type(pipe).__name__ == ("QwenImageEditPlusPipeline" if plus else "QwenImageEditPipeline")
    before = {k: v.clone() for k, v in pipe.transformer.state_dict().items() if "to_q.weight" in k}
    load_lora(pipe, save_tiny_camera_lora(tmp_path))
    fuse_lora(pipe)
    after = pipe.transformer.state_dict()
    assert not any("lora" in k for k in after)  # merged, the LoRA layers dropped
    assert all(not torch.equal(before[k], after[k]) for k in before)
    applied = edit_speed.apply(pipe.transformer, EditRuntime(), placement.device)
    assert applied == ["compile=blocks"]
    editor = Editor(pipe, steps=2, true_cfg_scale=4.0, retries=1)
    image = Image.fromarray(scene(np.random.default_rng(0), disc((80, 80), 40)))
    first, info = editor.edit(image, "turn the camera left", seed=7)
    second, _ = editor.edit(image, "a longer prompt: the object on a wooden table in the evening", seed=7)
    assert first.size == second.size and info["seed"] == 7 and info["attempts"] == 1


def test_a_bitsandbytes_4bit_export_loads_through_the_stage_path_with_the_lora(tmp_path: Path) -> None:
    """The default edit model's form (`ovedrive/qwen-image-edit-4bit`: the transformer saved
    bitsandbytes-quantised): the tiny pipeline's transformer quantised to NF4 and saved, then
    `load_pipeline`, `load_lora`, `fuse_lora` (the LoRA stays as separate layers) and two edits."""
    pytest.importorskip("bitsandbytes", reason="needs bitsandbytes (the diffusion image's; carried for this test)")
    import shutil

    from diffusers import BitsAndBytesConfig, QwenImageTransformer2DModel
    from PIL import Image
    from scripts.tiny_models import save_tiny_camera_lora, save_tiny_qwen_image_edit

    from genfab.api.reference_object import EditRuntime
    from genfab.stages.models.placement import Placement
    from genfab.stages.reference_object import edit_speed
    from genfab.stages.reference_object.qwen_edit import Editor, fuse_lora, load_lora, load_pipeline

    export = save_tiny_qwen_image_edit(tmp_path)
    q4 = QwenImageTransformer2DModel.from_pretrained(  # type: ignore[no-untyped-call]
        export / "transformer", torch_dtype=torch.bfloat16,
        quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                               bnb_4bit_compute_dtype=torch.bfloat16))
    shutil.rmtree(export / "transformer")
    q4.save_pretrained(export / "transformer")
    del q4
    placement = Placement.choose()
    pipe = load_pipeline(export, placement)
    assert edit_speed.quantised(pipe.transformer)
    assert "quantization_config" in json.loads((export / "transformer" / "config.json").read_text())
    load_lora(pipe, save_tiny_camera_lora(tmp_path))
    fuse_lora(pipe)
    assert any("lora" in name for name, _ in pipe.transformer.named_modules())  # kept beside the 4-bit weights
    from genfab.stages.runtime import BadInput

    with pytest.raises(BadInput, match="already quantised"):  # FP8 on top of 4 bit is refused
        edit_speed.apply(pipe.transformer, EditRuntime(compile="off", fp8="rowwise"), placement.device)
    editor = Editor(pipe, steps=2, true_cfg_scale=4.0, retries=0)
    image = Image.fromarray(scene(np.random.default_rng(0), disc((80, 80), 40)))
    first, info = editor.edit(image, "turn the camera left", seed=7)
    assert first.size[0] > 0 and info["attempts"] == 1

    # the stage's default, `dequantize: auto`: the same export made bf16 once at load, before the LoRA,
    # which then fuses; the edit is the 4-bit one up to floating-point order
    del editor, pipe
    pipe = load_pipeline(export, placement)
    assert edit_speed.dequantize(pipe.transformer, EditRuntime(), placement.device, placement.offload) == [
        "dequantized=bf16"]
    assert not edit_speed.quantised(pipe.transformer)
    assert not any(type(m).__name__ == "Linear4bit" for m in pipe.transformer.modules())
    load_lora(pipe, save_tiny_camera_lora(tmp_path))
    fuse_lora(pipe)
    assert not any("lora" in name for name, _ in pipe.transformer.named_modules())  # fused into the bf16 weights
    again, _ = Editor(pipe, steps=2, true_cfg_scale=4.0, retries=0).edit(image, "turn the camera left", seed=7)
    diff = np.abs(np.asarray(again, dtype=np.float64) - np.asarray(first, dtype=np.float64))
    assert diff.mean() < 2.0, diff.mean()  # 8-bit levels: rounding, not another model


def test_the_whole_pipeline_runs_with_the_built_in_stages(tmp_path: Path,
                                                          chat_server: tuple[str, str]) -> None:  # noqa: F811
    from scripts.tiny_models import save_reference_object_models

    models = save_reference_object_models(tmp_path / "models")
    endpoint, model = chat_server
    out = tmp_path / "out"
    doc = job(tmp_path, f"file://{out}", endpoint, model, models, stand_in=False)
    doc["spec"]["referenceObject"]["scenes"].update({"steps": 2})
    result = genfab_run(tmp_path, doc, timeout=1200)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    run = out / "mug"
    assert (run / "01_white_background.png").is_file()
    assert sorted(p.name for p in (run / "02_perspectives").glob("*.png")) == [
        "perspective_00_front__eye_level.png", "perspective_01_back__eye_level.png"]
    scenes = sorted(p.name for p in (run / "04_dataset").glob("*.png"))
    assert len(scenes) == 4
    metadata = json.loads((run / "04_dataset" / "metadata.json").read_text())
    assert metadata["total"] == 4 and all(v["seconds"] > 0 for v in metadata["images"].values())
    assert len(list((run / "05_qwen_augmented_images").glob("*.png"))) == 4
    assert len(list((run / "05_qwen_combined_images").glob("*.png"))) == 8
    labelled = list((run / "06_yolo_dataset").glob("*/labels/*.txt"))
    state = json.loads((run / "pipeline_state.json").read_text())
    dropped = [f for f in state["failed_operations"] if f["step"] == 6]
    # tiny random SAM and SAM2: their masks are junk, found or not (NoMask), and the quality figures' default
    # bounds drop what they find (QualityOutOfRange names the figure, its value and the bound)
    assert len(labelled) + len(dropped) == 8, dropped
    assert all(f["reason"] == "NoMask" or (f["reason"] == "QualityOutOfRange" and f["message"].split()[0] in FIGURES)
               for f in dropped), dropped
    assert not [f for f in state["failed_operations"] if f["step"] != 6], state["failed_operations"]
    assert state["completed_steps"] == [1, 2, 3, 4, 5, 6, 7]

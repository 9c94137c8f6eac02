"""Tiny randomly initialised models, saved in the layout a model location has (`<root>/<model id>/`),
so the model-backed stages run their real `from_pretrained` code anywhere, without weights (the
diffusers way: dummy components). The tests, the GPU benchmark's `--tiny` mode and anyone trying a
pipeline end to end use them:

    python scripts/tiny_models.py /tmp/models      # SAM3, Depth Anything V2, BLIP (needs torch + transformers)

then set `spec.models: {uri: file:///tmp/models}` (and `segmentation.backends: [sam3, classical]`,
`softShading.normals: depth-anything`, `captioning.enabled: true` to use them). Random weights: the
outputs show that the paths run, not what the real models would produce."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

TINY_PREPROCESS = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}


def _clip_vocab(path: Path) -> None:
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = {c: i for i, c in enumerate(letters)}
    vocab.update({c + "</w>": len(letters) + i for i, c in enumerate(letters)})
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.json").write_text(json.dumps(vocab))
    (path / "merges.txt").write_text("#version: 0.2\n")


def _preprocess(path: Path, side: int) -> None:
    (path / "preprocessor_config.json").write_text(json.dumps({"size": {"height": side, "width": side},
                                                               **TINY_PREPROCESS}))


def save_tiny_sam3(root: Path, model_id: str = "facebook/sam3") -> Path:
    import torch
    from transformers import (
        CLIPTokenizer,
        Sam3Config,
        Sam3DETRDecoderConfig,
        Sam3DETREncoderConfig,
        Sam3GeometryEncoderConfig,
        Sam3MaskDecoderConfig,
        Sam3Model,
        Sam3VisionConfig,
        Sam3ViTConfig,
    )

    path = root / model_id
    torch.manual_seed(0)
    vit = Sam3ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                        image_size=224, patch_size=14, window_size=8, global_attn_indexes=[0, 1])
    config = Sam3Config(
        vision_config=Sam3VisionConfig(backbone_config=vit, fpn_hidden_size=32, scale_factors=[2.0, 1.0]),
        text_config={"vocab_size": 1000, "hidden_size": 32, "intermediate_size": 64, "projection_dim": 32,
                     "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": 32},
        geometry_encoder_config=Sam3GeometryEncoderConfig(hidden_size=32, num_layers=1, num_attention_heads=4,
                                                          intermediate_size=64, mask_fuser_hidden_size=32,
                                                          mask_fuser_num_layers=1),
        detr_encoder_config=Sam3DETREncoderConfig(hidden_size=32, num_layers=1, num_attention_heads=4,
                                                  intermediate_size=64),
        detr_decoder_config=Sam3DETRDecoderConfig(hidden_size=32, num_layers=1, num_queries=5,
                                                  num_attention_heads=4, intermediate_size=64),
        mask_decoder_config=Sam3MaskDecoderConfig(hidden_size=32, num_upsampling_stages=2),
    )
    Sam3Model(config).save_pretrained(path)
    _clip_vocab(path)
    CLIPTokenizer(str(path / "vocab.json"), str(path / "merges.txt")).save_pretrained(path)
    _preprocess(path, 224)
    return path


def save_tiny_depth_anything(root: Path, model_id: str = "depth-anything/Depth-Anything-V2-Small-hf") -> Path:
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    path = root / model_id
    torch.manual_seed(0)
    backbone = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64,
                            image_size=70, patch_size=14, out_indices=[1, 2, 3, 4], apply_layernorm=True,
                            reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=32,
                                 neck_hidden_sizes=[16, 16, 32, 32], fusion_hidden_size=16, head_hidden_size=8)
    DepthAnythingForDepthEstimation(config).save_pretrained(path)
    _preprocess(path, 70)
    return path


def save_tiny_blip(root: Path, model_id: str = "Salesforce/blip-image-captioning-base") -> Path:
    import torch
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessorPil,
        BlipProcessor,
    )

    path = root / model_id
    path.mkdir(parents=True, exist_ok=True)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "a", "person", "photo", "of", "in", "light"]
    (path / "vocab.txt").write_text("\n".join(words) + "\n")
    tokenizer = BertTokenizer(str(path / "vocab.txt"), bos_token="[DEC]")
    torch.manual_seed(0)
    config = BlipConfig(
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                       "num_attention_heads": 4, "image_size": 32, "patch_size": 8},
        text_config={"vocab_size": len(words), "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 2, "num_attention_heads": 4, "encoder_hidden_size": 32,
                     "bos_token_id": 5, "pad_token_id": 0, "sep_token_id": 3, "max_position_embeddings": 32},
        projection_dim=32,
    )
    BlipForConditionalGeneration(config).save_pretrained(path)
    processor = BlipProcessor(image_processor=BlipImageProcessorPil(size={"height": 32, "width": 32}),
                              tokenizer=tokenizer)
    processor.save_pretrained(path)
    return path


def save_all(root: Path) -> list[Path]:
    """Every tiny model the built-in model stages can load, under their default model ids."""
    return [save_tiny_sam3(root), save_tiny_depth_anything(root), save_tiny_blip(root)]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="the model location folder to write")
    for path in save_all(parser.parse_args().root):
        print(path)

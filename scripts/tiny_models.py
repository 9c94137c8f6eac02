"""Tiny randomly initialised models, saved in the layout a model location has (`<root>/<model id>/`),
so the model-backed stages run their real `from_pretrained` code anywhere, without weights (the
diffusers way: dummy components). The tests, the GPU benchmark's `--tiny` mode and anyone trying a
pipeline end to end use them:

    pip install -e '.[tiny]'
    python scripts/tiny_models.py     # ./genfab-models: SAM3, Depth Anything V2, MiDaS, BLIP, FLUX.1-Fill-dev,
                                      # FLUX.1-dev, Depth Pro, CLIP, DiFix, VGG16+LPIPS, a tiny chat model

then set `spec.models: {uri: file://./genfab-models}`, as the tiny examples do (relighting also
needs `segmentation.backends: [sam3, classical]`, `softShading.normals: midas`,
`captioning.enabled: true` to use them). Random weights: the
outputs show that the paths run, not what the real models would produce."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DEFAULT_ROOT = "genfab-models"
"""Where the tiny-model examples look (`spec.models.uri: file://./genfab-models`), from the repository root."""
TINY_PREPROCESS = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}


def clip_vocab(path: Path) -> None:
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
    clip_vocab(path)
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


def save_tiny_clip(root: Path, model_id: str = "openai/clip-vit-base-patch16") -> Path:
    """CLIP (text and vision towers with projections), worldexplorer's automatic scaffold selection."""
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    path = root / model_id
    clip_vocab(path)
    CLIPTokenizer(str(path / "vocab.json"), str(path / "merges.txt"), model_max_length=16).save_pretrained(path)
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={"vocab_size": 54, "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
                     "num_attention_heads": 4, "max_position_embeddings": 16, "bos_token_id": 52,
                     "eos_token_id": 53, "pad_token_id": 53},
        vision_config={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4,
                       "image_size": 32, "patch_size": 8},
        projection_dim=16)
    CLIPModel(config).save_pretrained(path)
    (path / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 32},
        "crop_size": {"height": 32, "width": 32}, "do_center_crop": True, "do_resize": True, "do_rescale": True,
        "do_normalize": True, "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711]}))
    return path


def t5_tokenizer(path: Path) -> None:
    """A T5 tokenizer (a sentencepiece-style Unigram over letters) built offline, in the layout
    `T5TokenizerFast.from_pretrained` reads."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import T5TokenizerFast

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [(c, -1.0) for c in "abcdefghijklmnopqrstuvwxyz▁"]
    backend = Tokenizer(models.Unigram(vocab, unk_id=2))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    T5TokenizerFast(tokenizer_object=backend, eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
                    extra_ids=0).save_pretrained(path)


def save_tiny_flux_fill(root: Path, model_id: str = "black-forest-labs/FLUX.1-Fill-dev") -> Path:
    """FLUX.1-Fill-dev's diffusers layout with diffusers' own dummy sizes: the fill transformer takes the
    packed noisy latent (2 channels x 4), the packed masked-image latent (8) and the packed mask (4):
    20 channels."""
    from diffusers import FluxFillPipeline

    return _save_tiny_flux(root / model_id, FluxFillPipeline, in_channels=20)


def save_tiny_flux(root: Path, model_id: str = "black-forest-labs/FLUX.1-dev") -> Path:
    """FLUX.1-dev's diffusers layout (text to image), diffusers' dummy sizes: the packed latent (8)."""
    from diffusers import FluxPipeline

    return _save_tiny_flux(root / model_id, FluxPipeline, in_channels=8)


def _save_tiny_flux(path: Path, pipeline: Any, in_channels: int) -> Path:
    """A FLUX pipeline's components (transformer, VAE, CLIP-L and T5 encoders and tokenizers, scheduler)
    shrunk; the transformer embeds the distilled guidance, as FLUX.1-dev and Fill-dev do."""
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, T5Config, T5EncoderModel, T5TokenizerFast

    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=in_channels, out_channels=8, num_layers=1,
                                         num_single_layers=1, attention_head_dim=16, num_attention_heads=2,
                                         joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=[4, 4, 8],
                                         guidance_embeds=True)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, eos_token_id=2, hidden_size=32, intermediate_size=37, num_attention_heads=4,
        num_hidden_layers=2, pad_token_id=1, vocab_size=1000, hidden_act="gelu", projection_dim=32))
    text_encoder_2 = T5EncoderModel(T5Config(vocab_size=32, d_model=32, d_kv=8, d_ff=37, num_layers=2,
                                             num_heads=4, relative_attention_num_buckets=8, pad_token_id=0,
                                             eos_token_id=1, decoder_start_token_id=0))
    vae = AutoencoderKL(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(4,), layers_per_block=1,
                        latent_channels=2, norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False,
                        shift_factor=0.0609, scaling_factor=1.5035)
    clip_vocab(path / "tokenizer")
    tokenizer = CLIPTokenizer(str(path / "tokenizer" / "vocab.json"), str(path / "tokenizer" / "merges.txt"),
                              model_max_length=77)
    t5_tokenizer(path / "tokenizer_2")
    pipe = pipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text_encoder,
                    tokenizer=tokenizer, text_encoder_2=text_encoder_2,
                    tokenizer_2=T5TokenizerFast.from_pretrained(path / "tokenizer_2"), transformer=transformer)
    pipe.save_pretrained(path)
    return path


def save_tiny_midas(root: Path, model_id: str = "Intel/dpt-hybrid-midas") -> Path:
    """MiDaS v3 (DPT) shrunk: a 4-layer ViT (the real checkpoint is DPT-Hybrid, a ViT on a BiT
    backbone; transformers loads both through `AutoModelForDepthEstimation`), MiDaS's 0.5/0.5
    normalisation at a 32-pixel input."""
    import torch
    from transformers import DPTConfig, DPTForDepthEstimation

    path = root / model_id
    torch.manual_seed(0)
    config = DPTConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=37,
                       image_size=32, patch_size=8, backbone_out_indices=[0, 1, 2, 3],
                       neck_hidden_sizes=[16, 16, 32, 32], fusion_hidden_size=16, reassemble_factors=[4, 2, 1, 0.5],
                       is_hybrid=False, head_in_index=-1)
    DPTForDepthEstimation(config).save_pretrained(path)
    (path / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "DPTImageProcessor", "size": {"height": 32, "width": 32},
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}))
    return path


def save_tiny_depth_pro(root: Path, model_id: str = "apple/DepthPro-hf") -> Path:
    """Depth Pro (metric depth and a field of view) shrunk: small DINOv2 patch and image encoders and
    field-of-view head, a 64-pixel working size."""
    import torch
    from transformers import DepthProConfig, DepthProForDepthEstimation

    path = root / model_id
    torch.manual_seed(0)
    dinov2 = {"model_type": "dinov2", "hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 4,
              "intermediate_size": 64, "image_size": 16, "patch_size": 4}
    config = DepthProConfig(
        fusion_hidden_size=16, patch_size=16, intermediate_hook_ids=[1, 0], intermediate_feature_dims=[16, 16],
        scaled_images_ratios=[0.5, 1.0], scaled_images_overlap_ratios=[0.0, 0.25],
        scaled_images_feature_dims=[16, 16], use_fov_model=True,
        image_model_config=dinov2, patch_model_config=dinov2, fov_model_config=dinov2)
    model = DepthProForDepthEstimation(config)
    with torch.no_grad():  # random FOV heads give ~0 degrees; centre this one's output on 60 degrees
        final = model.fov_model.head.layers[-1]
        final.weight.mul_(0.01)
        final.bias.fill_(60.0)
    model.save_pretrained(path)
    depth_pro_preprocessor(path, 32, TINY_PREPROCESS)
    return path


def depth_pro_preprocessor(path: Path, side: int, normalise: dict[str, list[float]]) -> None:
    """Written by hand: transformers' DepthProImageProcessor needs torchvision to be constructed."""
    (path / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "DepthProImageProcessor", "size": {"height": side, "width": side}, "resample": 2,
        "do_resize": True, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True, **normalise}))


def save_tiny_difix(root: Path, model_id: str = "nvidia/difix_ref", sample: int = 64,
                    full_size: bool = False) -> Path:
    """A DiFix base model in the diffusers layout the TuningRun trainer loads (`unet/`, `vae/`,
    `text_encoder/`, `tokenizer/`, `scheduler/`). `full_size`: SD-Turbo's real configuration with
    random weights (the benchmark); otherwise a few-thousand-parameter stand-in."""
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    path = root / model_id
    torch.manual_seed(0)
    if full_size:  # stabilityai/sd-turbo (SD 2.1 base): 865M UNet, 83M VAE, OpenCLIP-H text tower
        unet = UNet2DConditionModel(sample_size=64, attention_head_dim=(5, 10, 20, 20), cross_attention_dim=1024,
                                    use_linear_projection=True)
        vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                            sample_size=768)
        text = CLIPTextConfig(vocab_size=54, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23,
                              num_attention_heads=16, max_position_embeddings=77, hidden_act="gelu",
                              bos_token_id=52, eos_token_id=53, pad_token_id=53)
        max_length = 77
    else:
        unet = UNet2DConditionModel(sample_size=sample // 4, block_out_channels=(8, 16), layers_per_block=1,
                                    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16,
                                    attention_head_dim=2, norm_num_groups=4)
        vae = AutoencoderKL(block_out_channels=(8, 8, 16), layers_per_block=1, latent_channels=4,
                            down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                            norm_num_groups=4, sample_size=sample)
        text = CLIPTextConfig(vocab_size=54, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                              num_attention_heads=2, max_position_embeddings=16, bos_token_id=52, eos_token_id=53,
                              pad_token_id=53)
        max_length = 16
    unet.save_pretrained(path / "unet")
    vae.save_pretrained(path / "vae")
    CLIPTextModel(text).save_pretrained(path / "text_encoder")
    clip_vocab(path / "tokenizer")
    CLIPTokenizer(str(path / "tokenizer" / "vocab.json"), str(path / "tokenizer" / "merges.txt"),
                  model_max_length=max_length).save_pretrained(path / "tokenizer")
    DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, prediction_type="epsilon",
                  timestep_spacing="trailing").save_pretrained(path / "scheduler")
    (path / "model_index.json").write_text(json.dumps({"_class_name": "DifixPipeline", "_diffusers_version": "0.42.1"}))
    return path


def save_tiny_perceptual(root: Path, model_id: str = "genfab/vgg16-lpips", full_size: bool = False) -> Path:
    """VGG16 + LPIPS heads for the DiFix losses (random; `full_size`: VGG16's real widths)."""
    from genfab.stages.tuning.perceptual import save_random_perceptual

    widths = None if full_size else [4, 4, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8]
    return save_random_perceptual(root / model_id, widths)


def save_tiny_alexnet_lpips(root: Path, model_id: str = "genfab/alexnet-lpips", full_size: bool = False) -> Path:
    """AlexNet + LPIPS heads for the 3DGS evaluation (random; `full_size`: AlexNet's real widths)."""
    from genfab.stages.models.lpips import save_random_alexnet_lpips

    return save_random_alexnet_lpips(root / model_id, None if full_size else [4, 8, 8, 8, 8])


CHAT_WORDS = (
    "a", "the", "on", "in", "with", "under", "near", "of", "and", "at", "by", "beside", "sunny", "rainy",
    "misty", "golden", "evening", "morning", "night", "bright", "soft", "warm", "cold", "kitchen", "table",
    "desk", "shelf", "park", "bench", "street", "beach", "forest", "garden", "office", "cafe", "window",
    "floor", "grass", "sand", "snow", "wooden", "marble", "concrete", "red", "blue", "green", "white",
    "black", "yellow", "light", "shadow", "lamp", "sky", "cloud", "tree", "flower", "book", "cup", "plant",
    "chair", "sofa", "rug", "wall", "brick", "stone", "river", "lake", "mountain", "city", "room", "studio",
    "market",
)


def save_tiny_chat(root: Path, model_id: str = "genfab/tiny-chat") -> Path:
    """A tiny random chat model (Qwen2 architecture, a word-level vocabulary of scene words, a ChatML
    template), for an OpenAI-compatible server such as `transformers serve` in tests: its replies are
    random strings of those words, different per seed when sampling."""
    import torch
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    path = root / model_id
    path.mkdir(parents=True, exist_ok=True)
    vocab = {"[UNK]": 0, **{f" {w}": i + 1 for i, w in enumerate(CHAT_WORDS)}}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r" ?[^\s]+"), behavior="isolated")
    template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", eos_token="<|im_end|>",
                                        pad_token="<|endoftext|>", additional_special_tokens=["<|im_start|>"],
                                        chat_template=template)
    tokenizer.save_pretrained(path)
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         tie_word_embeddings=True)
    model = Qwen2ForCausalLM(config)
    model.generation_config.do_sample = True
    # Replies are words: the special and unknown tokens are never sampled.
    model.generation_config.suppress_tokens = [0, tokenizer.pad_token_id,
                                               tokenizer.convert_tokens_to_ids("<|im_start|>")]
    model.save_pretrained(path)
    return path


def save_tiny_sam(root: Path, model_id: str = "ybelkada/segment-anything") -> Path:
    """A tiny random SAM (32-wide, 2-block image encoder; segment-anything's fixed 256-d prompt and
    mask decoder parts), described by `sam_config.json` for genfab's loader."""
    import torch

    from genfab.stages.reference_object.sam_models import build_tiny_sam

    path = root / model_id
    (path / "checkpoints").mkdir(parents=True, exist_ok=True)
    cfg = {"encoder_embed_dim": 32, "encoder_depth": 2, "encoder_num_heads": 2, "encoder_global_attn_indexes": [1],
           "checkpoint": "tiny_sam.pth"}
    torch.manual_seed(0)
    torch.save(build_tiny_sam(cfg).state_dict(), path / "checkpoints" / "tiny_sam.pth")
    (path / "sam_config.json").write_text(json.dumps(cfg, indent=2))
    return path


TINY_SAM2_YAML = """\
# A tiny random SAM2.1 (16-wide, 5-block Hiera; one memory-attention layer), written by
# scripts/tiny_models.py under the default config and checkpoint names. The global-attention block
# must not pool (Hiera's pooling blocks divide by their window size, 0 for global attention): with
# stages [1, 1, 2, 1] the pooling blocks are 1, 2 and 4.
model:
  _target_: sam2.modeling.sam2_base.SAM2Base
  image_encoder:
    _target_: sam2.modeling.backbones.image_encoder.ImageEncoder
    scalp: 1
    trunk:
      _target_: sam2.modeling.backbones.hieradet.Hiera
      embed_dim: 16
      num_heads: 1
      stages: [1, 1, 2, 1]
      global_att_blocks: [3]
      window_pos_embed_bkg_spatial_size: [7, 7]
    neck:
      _target_: sam2.modeling.backbones.image_encoder.FpnNeck
      position_encoding:
        _target_: sam2.modeling.position_encoding.PositionEmbeddingSine
        num_pos_feats: 256
        normalize: true
        scale: null
        temperature: 10000
      d_model: 256
      backbone_channel_list: [128, 64, 32, 16]
      fpn_top_down_levels: [2, 3]
      fpn_interp_model: nearest
  memory_attention:
    _target_: sam2.modeling.memory_attention.MemoryAttention
    d_model: 256
    pos_enc_at_input: true
    layer:
      _target_: sam2.modeling.memory_attention.MemoryAttentionLayer
      activation: relu
      dim_feedforward: 256
      dropout: 0.1
      pos_enc_at_attn: false
      self_attention:
        _target_: sam2.modeling.sam.transformer.RoPEAttention
        rope_theta: 10000.0
        feat_sizes: [64, 64]
        embedding_dim: 256
        num_heads: 1
        downsample_rate: 1
        dropout: 0.1
      d_model: 256
      pos_enc_at_cross_attn_keys: true
      pos_enc_at_cross_attn_queries: false
      cross_attention:
        _target_: sam2.modeling.sam.transformer.RoPEAttention
        rope_theta: 10000.0
        feat_sizes: [64, 64]
        rope_k_repeat: true
        embedding_dim: 256
        num_heads: 1
        downsample_rate: 1
        dropout: 0.1
        kv_in_dim: 64
    num_layers: 1
  memory_encoder:
    _target_: sam2.modeling.memory_encoder.MemoryEncoder
    out_dim: 64
    position_encoding:
      _target_: sam2.modeling.position_encoding.PositionEmbeddingSine
      num_pos_feats: 64
      normalize: true
      scale: null
      temperature: 10000
    mask_downsampler:
      _target_: sam2.modeling.memory_encoder.MaskDownSampler
      kernel_size: 3
      stride: 2
      padding: 1
    fuser:
      _target_: sam2.modeling.memory_encoder.Fuser
      layer:
        _target_: sam2.modeling.memory_encoder.CXBlock
        dim: 256
        kernel_size: 7
        padding: 3
        layer_scale_init_value: 1e-6
        use_dwconv: true
      num_layers: 1
  num_maskmem: 7
  image_size: 1024
  sigmoid_scale_for_mem_enc: 20.0
  sigmoid_bias_for_mem_enc: -10.0
  use_mask_input_as_output_without_sam: true
  directly_add_no_mem_embed: true
  no_obj_embed_spatial: true
  use_high_res_features_in_sam: true
  multimask_output_in_sam: true
  iou_prediction_use_sigmoid: true
  use_obj_ptrs_in_encoder: true
  add_tpos_enc_to_obj_ptrs: true
  proj_tpos_enc_in_obj_ptrs: true
  use_signed_tpos_enc_to_obj_ptrs: true
  only_obj_ptrs_in_the_past_for_eval: true
  pred_obj_scores: true
  pred_obj_scores_mlp: true
  fixed_no_obj_ptr: true
  multimask_output_for_tracking: true
  use_multimask_token_for_obj_ptr: true
  multimask_min_pt_num: 0
  multimask_max_pt_num: 1
  use_mlp_for_obj_ptr_proj: true
  compile_image_encoder: false
"""


def save_tiny_sam2(root: Path, model_id: str = "facebook/sam2.1-hiera-large") -> Path:
    """A tiny random SAM2.1 under the default file names (`sam2.1_hiera_l.yaml`, `sam2.1_hiera_large.pt`)."""
    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from genfab.stages.reference_object.sam_models import SAM2_CHECKPOINT, SAM2_CONFIG

    path = root / model_id
    path.mkdir(parents=True, exist_ok=True)
    (path / SAM2_CONFIG).write_text(TINY_SAM2_YAML)
    torch.manual_seed(0)
    model = instantiate(OmegaConf.load(path / SAM2_CONFIG).model, _recursive_=True)
    torch.save({"model": model.state_dict()}, path / SAM2_CHECKPOINT)
    return path


QWEN_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
                 "<|image_pad|>", "<|video_pad|>")


def tiny_qwen_transformer() -> Any:
    import torch
    from diffusers import QwenImageTransformer2DModel

    torch.manual_seed(0)
    return QwenImageTransformer2DModel(patch_size=2, in_channels=16, out_channels=4, num_layers=2,
                                       attention_head_dim=16, num_attention_heads=3, joint_attention_dim=16,
                                       guidance_embeds=False, axes_dims_rope=(8, 4, 4))


def save_tiny_qwen_image_edit(root: Path, model_id: str = "ovedrive/Qwen-Image-Edit-2509-4bit", plus: bool = True
                              ) -> Path:
    """A tiny random Qwen Image Edit pipeline (diffusers' own test sizes; a byte-level tokenizer with
    Qwen's special tokens; `plus`: the 2509/2511 QwenImageEditPlusPipeline). Not quantised, whatever
    the id says. Its processor needs torchvision (GPU machines here)."""
    import torch
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImageEditPipeline,
        QwenImageEditPlusPipeline,
    )
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2TokenizerFast,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    path = root / model_id
    backend = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(sorted(ByteLevel.alphabet()))}, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = Qwen2TokenizerFast(tokenizer_object=backend, unk_token=None, bos_token=None, eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>")
    tokenizer.add_special_tokens({"additional_special_tokens": list(QWEN_SPECIALS)})
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIALS}
    torch.manual_seed(0)
    z = 4
    vae = AutoencoderKLQwenImage(base_dim=z * 6, z_dim=z, dim_mult=[1, 2, 4], num_res_blocks=1,
                                 temperal_downsample=[False, True], latents_mean=[0.0] * z, latents_std=[1.0] * z)
    config = Qwen2_5_VLConfig(
        text_config={"hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
                     "num_key_value_heads": 2, "rope_theta": 1000000.0, "vocab_size": len(tokenizer),
                     "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"}},
        vision_config={"depth": 2, "hidden_size": 16, "intermediate_size": 16, "num_heads": 2, "out_hidden_size": 16},
        hidden_size=16, vocab_size=len(tokenizer), vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"], vision_token_id=ids["<|vision_pad|>"],
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"])
    text_encoder = Qwen2_5_VLForConditionalGeneration(config)
    processor = Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=28 * 28 * 64),
                                 tokenizer=tokenizer, video_processor=Qwen2VLVideoProcessor())
    cls = QwenImageEditPlusPipeline if plus else QwenImageEditPipeline
    pipe = cls(transformer=tiny_qwen_transformer(), vae=vae, scheduler=FlowMatchEulerDiscreteScheduler(),
               text_encoder=text_encoder, tokenizer=tokenizer, processor=processor)
    pipe.save_pretrained(path)
    return path


def save_tiny_camera_lora(root: Path, model_id: str = "dx8152/Qwen-Edit-2509-Multiple-angles") -> Path:
    """A random rank-4 LoRA for the tiny Qwen Image Edit transformer, saved the way diffusers saves
    LoRAs, plus a model card (what makes the folder a LoRA repository)."""
    import torch
    from diffusers import QwenImagePipeline
    from peft import LoraConfig, get_peft_model_state_dict

    path = root / model_id
    transformer = tiny_qwen_transformer()
    transformer.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                       target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    torch.manual_seed(1)
    QwenImagePipeline.save_lora_weights(path, transformer_lora_layers=get_peft_model_state_dict(transformer))
    (path / "README.md").write_text("Tiny random multi-camera LoRA written by scripts/tiny_models.py.\n")
    return path


def save_reference_object_models(root: Path, edit: bool = True) -> Path:
    """The models reference-object loads by default: the Qwen Image Edit pipeline (`scenes.modelPath`)
    and the multi-camera LoRA, SAM and SAM2; returns `root`. `edit=False` leaves out the Qwen ones:
    their processor needs torchvision, which the CPU machines here lack. (The chat model for the
    prompts is served, not loaded: `save_tiny_chat`.)"""
    if edit:
        save_tiny_qwen_image_edit(root)
        save_tiny_camera_lora(root)
    save_tiny_sam(root)
    save_tiny_sam2(root)
    return root


def save_tuning_models(root: Path, full_size: bool = False) -> Path:
    """What a TuningRun loads by default (stabilityai/sd-turbo, the lab's trainer's starting model, and
    genfab/vgg16-lpips), with nvidia/difix_ref (a DiFix, skip convolutions included: a TuningRun's other
    starting point and the refinement's default) unless `full_size` (the benchmark's one SD-Turbo-size
    model); returns `root`."""
    save_tiny_difix(root, model_id="stabilityai/sd-turbo", full_size=full_size)
    if not full_size:
        save_tiny_difix(root, model_id="nvidia/difix_ref")
    save_tiny_perceptual(root, full_size=full_size)
    return root


def save_vistadream_models(root: Path) -> Path:
    """The models vistadream's stages load by default (FluxFill, Depth Pro, the 3DGS evaluation's
    LPIPS); returns `root`."""
    save_tiny_flux_fill(root)
    save_tiny_depth_pro(root)
    save_tiny_alexnet_lpips(root)
    return root


def save_tiny_sd_vae(root: Path, model_id: str = "stabilityai/stable-diffusion-2-1-base") -> Path:
    """Stable Diffusion 2.1's VAE layout (`vae/`, 4 latent channels, its scale factor) shrunk: the
    autoencoder SEVA works in (`worldexplorer.seva.vaeModel`)."""
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    return save_sd_vae(root / model_id, AutoencoderKL(sample_size=32, in_channels=3, out_channels=3,
                                                      block_out_channels=(4,), layers_per_block=1, latent_channels=4,
                                                      norm_num_groups=1, scaling_factor=0.18215))


def save_sd_vae(path: Path, vae: Any) -> Path:
    """A Stable Diffusion folder holding only its `vae/` (what SEVA reads of it)."""
    vae.save_pretrained(path / "vae")
    (path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline",
                                                       "vae": ["diffusers", "AutoencoderKL"]}))
    return path


MOGE_VITL = {"encoder": "dinov2_vitl14", "remap_output": "exp", "intermediate_layers": 4,
             "dim_upsample": [256, 128, 64], "dim_times_res_block_hidden": 2, "num_res_blocks": 2,
             "num_tokens_range": [1200, 2500], "last_conv_channels": 32, "last_conv_size": 1}
"""MoGe-1 ViT-L's configuration (MoGe's configs/train/v1.json), what Ruicheng/moge-vitl's `model_config` holds."""
SD21_VAE = {"act_fn": "silu", "block_out_channels": [128, 256, 512, 512], "in_channels": 3, "latent_channels": 4,
            "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
            "layers_per_block": 2, "norm_num_groups": 32, "out_channels": 3, "sample_size": 768,
            "scaling_factor": 0.18215}
"""Stable Diffusion 2.1's VAE configuration (stabilityai/stable-diffusion-2-1-base/vae)."""


def save_random_moge(root: Path, model_id: str = "Ruicheng/moge-vitl") -> Path:
    """MoGe-1 ViT-L at production size with random weights, as `model.pt` the way MoGe's hub repository
    holds it. Needs MoGe's own code (`moge`, research code: scripts/gpu_tier.py --prepare-research).

    Its mask head is made to trust every pixel (its last convolution's weights scaled to 1 % and its bias
    1.0, over MoGe's 0.5 threshold), as `write_depth_pro` centres Depth Pro's random FOV head on 60 degrees:
    random weights give a mask that is False everywhere, and a scene pipeline whose depth trusts no pixel
    adds no Gaussian for any new view (vistadream's coarse views, in the lab's code and genfab's alike), so
    a benchmark would time trainings of nothing. The depth and the network's cost are untouched."""
    import torch
    from moge.model.v1 import MoGeModel

    path = root / model_id
    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = MoGeModel(**MOGE_VITL)
    with torch.no_grad():
        last = model.head.output_block[1][-1]  # the mask's block (MoGe v1's head: points, then mask)
        last.weight.mul_(0.01)
        last.bias.fill_(1.0)
    torch.save({"model_config": MOGE_VITL, "model": model.state_dict()}, path / "model.pt")
    return path


def save_random_seva(root: Path) -> list[Path]:
    """SEVA at production size with random weights: its network (`SevaParams()`, bf16, as SEVA's
    `load_model` builds it) as `modelv1.1.safetensors`, Stable Diffusion 2.1's VAE and open_clip's
    ViT-H-14, each in its hub repository's layout under its default model id. Needs SEVA's code and
    open_clip; built on the GPU (seconds, where the CPU takes minutes)."""
    import open_clip
    import torch
    from diffusers import AutoencoderKL
    from safetensors.torch import save_file
    from seva.model import Seva, SevaParams

    seva, vae = root / "stabilityai/stable-virtual-camera", root / "stabilityai/stable-diffusion-2-1-base"
    clip = root / "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
    for folder in (seva, vae, clip):
        folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    with torch.device("cuda"):
        network = Seva(SevaParams()).to(torch.bfloat16)
        save_file({k: v.contiguous() for k, v in network.state_dict().items()}, seva / "modelv1.1.safetensors")
        del network
        save_sd_vae(vae, AutoencoderKL(**SD21_VAE))
        torch.save(open_clip.create_model("ViT-H-14").state_dict(), clip / "open_clip_pytorch_model.bin")
    (seva / "config.yaml").write_text("# the hub repository's layout\n")
    return [seva, vae, clip]


def save_random_vggt(root: Path, model_id: str = "facebook/VGGT-1B") -> Path:
    """VGGT-1B at production size (`VGGT()`: its defaults are the released model's) with random bf16
    weights (but for the field-of-view bias below), saved by its own `save_pretrained`
    (huggingface_hub's `PyTorchModelHubMixin`: `config.json`, `model.safetensors`) as the hub
    repository holds it. Needs VGGT's code (`vggt`, research code: scripts/gpu_tier.py
    --prepare-research); built on the GPU."""
    import torch
    from vggt.models.vggt import VGGT

    path = root / model_id
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = VGGT()
        # One change to the random weights: the camera head's field-of-view outputs start at 0.35 rad
        # a refinement step (about 80 degrees after its four), as a trained VGGT's are. Left at random,
        # the ReLU it predicts them through gives some frames a zero field of view, an infinite focal
        # length, and the adapter drops those frames' points (vggt_adapter.degenerate_frames).
        with torch.no_grad():
            model.camera_head.pose_branch.fc2.bias[7:9] += 0.35
        model.to(torch.bfloat16).save_pretrained(path)
    return path


def save_worldexplorer_models(root: Path) -> Path:
    """The models worldexplorer's built-in scaffold loads by default (FLUX.1-dev, FluxFill, Depth Pro,
    CLIP, the 3DGS evaluation's LPIPS); returns `root`."""
    save_tiny_flux(root)
    save_vistadream_models(root)
    save_tiny_clip(root)
    return root


def save_all(root: Path) -> list[Path]:
    """Every tiny model the built-in model stages can load, under their default model ids, and the tiny
    chat model to serve. reference-object's Qwen Image Edit, SAM and SAM2 need torchvision (and
    segment-anything, sam2): where it is missing they are left out, with one line saying so."""
    import importlib.util

    paths = [save_tiny_sam3(root), save_tiny_depth_anything(root), save_tiny_midas(root), save_tiny_blip(root),
             save_tiny_flux_fill(root), save_tiny_flux(root), save_tiny_depth_pro(root), save_tiny_clip(root),
             save_tiny_difix(root), save_tiny_difix(root, model_id="stabilityai/sd-turbo"), save_tiny_perceptual(root),
             save_tiny_alexnet_lpips(root), save_tiny_chat(root)]
    if all(importlib.util.find_spec(m) for m in ("torchvision", "segment_anything", "sam2")):
        paths += [save_tiny_qwen_image_edit(root), save_tiny_camera_lora(root), save_tiny_sam(root),
                  save_tiny_sam2(root)]
    else:
        print("torchvision, segment-anything or sam2 is missing: reference-object's tiny Qwen Image Edit, SAM and "
              "SAM2 are not written", file=sys.stderr)
    return paths


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, nargs="?", default=Path(DEFAULT_ROOT),
                        help=f"the model location folder to write (default {DEFAULT_ROOT}, where the examples look)")
    for path in save_all(parser.parse_args().root):
        print(path)


ZERO123_COMPONENTS = {"vae": ["diffusers", "AutoencoderKL"], "text_encoder": ["transformers", "CLIPTextModel"],
                      "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
                      "scheduler": ["diffusers", "EulerAncestralDiscreteScheduler"],
                      "vision_encoder": ["transformers", "CLIPVisionModelWithProjection"],
                      "feature_extractor_clip": ["transformers", "CLIPImageProcessor"],
                      "feature_extractor_vae": ["transformers", "CLIPImageProcessor"]}
"""sudo-ai/zero123plus-v1.2's components, as its `model_index.json` names them for `Zero123PlusPipeline`."""


def save_zero123(root: Path, production: bool = False, model_id: str = "sudo-ai/zero123plus-v1.2") -> Path:
    """Zero123++ v1.2's folder (`model_index.json` naming `Zero123PlusPipeline` and its eight
    components, each in its subfolder) with random weights: tiny, or at production size (Stable
    Diffusion 2's UNet and VAE, OpenCLIP ViT-H's text tower, CLIP ViT-H/14's vision tower with its
    projection: 866 M, 84 M, 340 M and 632 M parameters, bf16, built on the GPU). The code that runs
    it is the custom pipeline's folder (`perspectives.zero123Pipeline`), not written here."""
    import torch
    from diffusers import AutoencoderKL, EulerAncestralDiscreteScheduler, UNet2DConditionModel
    from transformers import (
        CLIPImageProcessor,
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTokenizer,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    path = root / model_id
    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    if production:
        tokens, vision_side = 77, 224
        unet = UNet2DConditionModel(sample_size=96, cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20),
                                    use_linear_projection=True, block_out_channels=(320, 640, 1280, 1280))
        vae = AutoencoderKL(**SD21_VAE)
        text = CLIPTextConfig(vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23,
                              num_attention_heads=16, max_position_embeddings=77, hidden_act="gelu",
                              projection_dim=1024, bos_token_id=49406, eos_token_id=49407, pad_token_id=1)
        vision = CLIPVisionConfig(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
                                  num_attention_heads=16, image_size=224, patch_size=14, projection_dim=1024,
                                  hidden_act="gelu")
    else:
        tokens, vision_side = 16, 32
        unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                                    block_out_channels=(8, 16), norm_num_groups=4, cross_attention_dim=32,
                                    attention_head_dim=2, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
        vae = AutoencoderKL(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(4, 4),
                            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                            layers_per_block=1, latent_channels=4, norm_num_groups=1, scaling_factor=0.18215)
        text = CLIPTextConfig(vocab_size=54, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                              num_attention_heads=4, max_position_embeddings=16, bos_token_id=52, eos_token_id=53,
                              pad_token_id=53, projection_dim=32)
        vision = CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                                  image_size=32, patch_size=8, projection_dim=32)
    dtype = torch.bfloat16 if production else torch.float32
    with torch.device("cuda" if production else "cpu"):
        for name, module in (("unet", unet), ("vae", vae), ("text_encoder", CLIPTextModel(text)),
                             ("vision_encoder", CLIPVisionModelWithProjection(vision))):
            module.to(dtype).save_pretrained(path / name)
    clip_vocab(path / "tokenizer")
    CLIPTokenizer(str(path / "tokenizer" / "vocab.json"), str(path / "tokenizer" / "merges.txt"),
                  model_max_length=tokens).save_pretrained(path / "tokenizer")
    EulerAncestralDiscreteScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                    prediction_type="v_prediction", steps_offset=1).save_pretrained(path / "scheduler")
    clip_stats = {"image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]}
    CLIPImageProcessor(size={"shortest_edge": vision_side}, crop_size={"height": vision_side, "width": vision_side},
                       **clip_stats).save_pretrained(path / "feature_extractor_clip")
    side = 320 if production else 32  # the VAE's view of the condition image, in [-1, 1]
    vae_view = CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side},
                                  image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
    vae_view.save_pretrained(path / "feature_extractor_vae")
    (path / "model_index.json").write_text(json.dumps({
        "_class_name": "Zero123PlusPipeline", "_diffusers_version": "0.20.2", **ZERO123_COMPONENTS,
        "safety_checker": [None, None], "ramping_coefficients": [round(0.1 + 0.9 * i / (tokens - 1), 4)
                                                                 for i in range(tokens)]}, indent=2))
    return path

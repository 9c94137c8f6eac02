"""Loading SAM (`segment-anything`) and SAM2 (`sam2`) from the model location, with their own
packages' model code; nothing is fetched from a hub.

- SAM: the folder of `ybelkada/segment-anything` (the original checkpoints, `checkpoints/sam_vit_h_4b8939.pth`,
  `sam_vit_l_0b3195.pth`, `sam_vit_b_01ec64.pth`, or the same names at the folder's top), built by
  `sam_model_registry[samType]`. A folder with `sam_config.json` (`encoder_embed_dim`, `encoder_depth`,
  `encoder_num_heads`, `encoder_global_attn_indexes`, `checkpoint`) is built from those sizes with
  segment-anything's own modules instead: how the tiny random test models are made.
- SAM2: the folder of `facebook/sam2.1-hiera-large` (`sam2.1_hiera_l.yaml` and `sam2.1_hiera_large.pt`;
  `annotation.sam2Config` / `sam2Checkpoint` name other files in it). The YAML's `model` is
  instantiated as `sam2.build_sam.build_sam2` does (with its image post-processing overrides) and the
  checkpoint's `model` weights loaded strictly.

Both folders are the resource's (its model location), so what they hold is read as data, never run:
every checkpoint is loaded with `weights_only=True` (tensors, no unpickled objects), and the SAM2 YAML
is checked before hydra instantiates it (`sam2_config_problem`): every `_target_` must be one of SAM2's
model classes (`sam2.modeling.*`), and an interpolation may name other keys, not a resolver
(`${oc.env:...}`). A config that names anything else (`torch.load`, `builtins.eval`, `os.system`) is
refused in one line before anything of it is imported.
"""

from __future__ import annotations

import json
import re
from functools import partial
from pathlib import Path
from typing import Any

import torch

SAM_CHECKPOINTS = {"vit_h": "sam_vit_h_4b8939.pth", "vit_l": "sam_vit_l_0b3195.pth", "vit_b": "sam_vit_b_01ec64.pth"}
SAM2_CONFIG, SAM2_CHECKPOINT = "sam2.1_hiera_l.yaml", "sam2.1_hiera_large.pt"
SAM2_IMAGE_OVERRIDES = {
    "dynamic_multimask_via_stability": True,
    "dynamic_multimask_stability_delta": 0.05,
    "dynamic_multimask_stability_thresh": 0.98,
}
"""`build_sam2`'s `apply_postprocessing` overrides of the mask decoder (image prediction)."""


def sam_markers(sam_type: str, checkpoint: str | None) -> tuple[str, ...]:
    name = checkpoint or SAM_CHECKPOINTS[sam_type]
    return (f"checkpoints/{name}", name, "sam_config.json")


def _checkpoint(folder: Path, name: str) -> Path:
    for candidate in (folder / "checkpoints" / name, folder / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{folder}: no {name} (nor checkpoints/{name})")


def build_tiny_sam(cfg: dict[str, Any]) -> Any:
    """A SAM of the given encoder sizes (1024 px input, 256-d prompts: segment-anything's fixed parts)."""
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    return Sam(
        image_encoder=ImageEncoderViT(depth=cfg["encoder_depth"], embed_dim=cfg["encoder_embed_dim"], img_size=1024,
                                      mlp_ratio=4, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                                      num_heads=cfg["encoder_num_heads"], patch_size=16, qkv_bias=True,
                                      use_rel_pos=True, global_attn_indexes=cfg["encoder_global_attn_indexes"],
                                      window_size=14, out_chans=256),
        prompt_encoder=PromptEncoder(embed_dim=256, image_embedding_size=(64, 64), input_image_size=(1024, 1024),
                                     mask_in_chans=16),
        mask_decoder=MaskDecoder(num_multimask_outputs=3,
                                 transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
                                 transformer_dim=256, iou_head_depth=3, iou_head_hidden_dim=256),
        pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375])


def load_sam(folder: Path, sam_type: str, checkpoint: str | None, device: torch.device) -> Any:
    """A `SamPredictor` on `device`."""
    from segment_anything import SamPredictor, sam_model_registry

    tiny = folder / "sam_config.json"
    if tiny.is_file():
        cfg = json.loads(tiny.read_text())
        model = build_tiny_sam(cfg)
        model.load_state_dict(torch.load(_checkpoint(folder, cfg["checkpoint"]), map_location="cpu",
                                         weights_only=True))
    else:
        path = _checkpoint(folder, checkpoint or SAM_CHECKPOINTS[sam_type])
        # built without its checkpoint and loaded here: segment-anything's own `torch.load(f)` unpickles
        # whatever the file holds where the installed torch does not default to weights_only
        model = sam_model_registry[sam_type](checkpoint=None)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return SamPredictor(model.to(device).eval())


class UnsafeConfig(ValueError):
    """A model file from the model location asks to run something other than the model's own code."""


SAM2_TARGETS = "sam2.modeling."
"""Where every class a SAM2 config may instantiate lives (its backbone, attention, memory and heads)."""
_RESOLVER = re.compile(r"\$\{[^}]*:")
"""An interpolation that calls a resolver (`${oc.env:AWS_SECRET_ACCESS_KEY}`), not a key reference."""


def sam2_config_problem(node: Any, where: str = "") -> str | None:
    """Why the SAM2 config (unresolved, as plain data) may not be instantiated, or None: a `_target_`
    outside SAM2's model classes, or an interpolation that calls a resolver."""
    if isinstance(node, dict):
        target = node.get("_target_")
        if target is not None and (not isinstance(target, str) or not target.startswith(SAM2_TARGETS)
                                   or not all(part.isidentifier() for part in target.split("."))):
            return (f"{where or 'the root'}._target_ {target!r} is not one of SAM2's model classes "
                    f"({SAM2_TARGETS}*): the config is data from the model location, never code to run")
        items: Any = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        if isinstance(node, str) and _RESOLVER.search(node):
            return f"{where}: {node!r} calls a resolver; a SAM2 config's interpolations name other keys only"
        return None
    for key, value in items:
        found = sam2_config_problem(value, f"{where}.{key}" if where else str(key))
        if found is not None:
            return found
    return None


def load_sam2(folder: Path, config: str | None, checkpoint: str | None, device: torch.device) -> Any:
    """A `SAM2ImagePredictor` on `device`."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    cfg = OmegaConf.load(folder / (config or SAM2_CONFIG))
    problem = sam2_config_problem(OmegaConf.to_container(cfg, resolve=False))
    if problem is not None:
        raise UnsafeConfig(f"SAM2 config {config or SAM2_CONFIG}: {problem}")
    for key, value in SAM2_IMAGE_OVERRIDES.items():
        OmegaConf.update(cfg, f"model.sam_mask_decoder_extra_args.{key}", value, force_add=True)
    OmegaConf.resolve(cfg)
    model = instantiate(cfg.model, _recursive_=True)
    state = torch.load(folder / (checkpoint or SAM2_CHECKPOINT), map_location="cpu", weights_only=True)
    missing, unexpected = model.load_state_dict(state["model"], strict=False)
    if missing or unexpected:
        raise RuntimeError(f"SAM2 checkpoint {checkpoint or SAM2_CHECKPOINT} does not match {config or SAM2_CONFIG}: "
                           f"missing {missing[:3]}, unexpected {unexpected[:3]}")
    return SAM2ImagePredictor(model.to(device).eval())

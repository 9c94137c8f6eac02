"""Stand-in of segment_anything.modeling: the classes `build_sam` assembles (sizes accepted, unused)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


class ImageEncoderViT(torch.nn.Module):
    def __init__(self, img_size: int = 1024, **kwargs: Any) -> None:
        super().__init__()
        self.img_size = img_size
        self.kwargs = kwargs


class PromptEncoder(torch.nn.Module):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__()


class TwoWayTransformer(torch.nn.Module):
    """The attributes PerSAM's hooks attach to (`layers`, `final_attn_token_to_image`); the stand-in
    predictor never runs a decoder, so they hold no blocks."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList()
        self.final_attn_token_to_image = torch.nn.Identity()


class MaskDecoder(torch.nn.Module):
    def __init__(self, transformer: TwoWayTransformer | None = None, **kwargs: Any) -> None:
        super().__init__()
        self.transformer = transformer or TwoWayTransformer()


class Sam(torch.nn.Module):
    mask_threshold = 0.0

    def __init__(self, image_encoder: ImageEncoderViT, prompt_encoder: PromptEncoder, mask_decoder: MaskDecoder,
                 pixel_mean: list[float], pixel_std: list[float]) -> None:
        super().__init__()
        self.image_encoder, self.prompt_encoder, self.mask_decoder = image_encoder, prompt_encoder, mask_decoder
        self.weight = torch.nn.Parameter(torch.ones(1))  # something for a checkpoint to hold

    def postprocess_masks(self, masks: torch.Tensor, input_size: tuple[int, ...], original_size: tuple[int, ...]
                          ) -> torch.Tensor:
        side = self.image_encoder.img_size
        masks = F.interpolate(masks, (side, side), mode="bilinear", align_corners=False)
        masks = masks[..., : input_size[0], : input_size[1]]
        return F.interpolate(masks, tuple(original_size), mode="bilinear", align_corners=False)

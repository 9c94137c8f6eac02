"""Automatic selection of the scaffold's in-between views: CLIP scores each inpainting candidate
against its neighbours' joined prompts (`scaffold_geometry.gap_prompt`) and the best one goes to
`final/`, as WorldExplorer's `automatic` mode does.

The score is torchmetrics' CLIPScore (what WorldExplorer calls): 100 × the cosine of the image and
text embeddings, floored at 0. The model is transformers' `CLIPModel` from the model location
(`scaffold.clipModel`, default openai/clip-vit-base-patch16, WorldExplorer's). Images are resized to
the processor's size on the model's device (`Preprocess`); the scaffold's views are square, so this
equals the processor's shortest-edge resize and centre crop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genfab.stages.models.placement import Placement
from genfab.stages.models.preprocess import Preprocess

CLIP_STATS = ([0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711])
"""OpenAI CLIP's normalisation (used when the folder's preprocessor_config.json gives none)."""
CLIP_SIDE = 224


def clip_scores(image_embeds: np.ndarray, text_embed: np.ndarray) -> np.ndarray:
    """(N,) CLIP scores of N image embeddings against one text embedding: max(100 · cos, 0)."""
    images = np.asarray(image_embeds, dtype=np.float64)
    text = np.asarray(text_embed, dtype=np.float64).reshape(-1)
    norms = np.linalg.norm(images, axis=1) * np.linalg.norm(text)
    cosine = images @ text / np.maximum(norms, 1e-12)
    return np.asarray(np.maximum(100.0 * cosine, 0.0))


@dataclass(frozen=True)
class Choice:
    best: int
    """Index of the chosen candidate (the first of equal scores: candidates are in seed order)."""
    scores: tuple[float, ...]


def choose(scores: Sequence[float]) -> Choice:
    if not scores:
        raise ValueError("no candidates to choose from")
    return Choice(int(np.argmax(np.asarray(scores))), tuple(round(float(s), 4) for s in scores))


class ClipScorer:
    """CLIP image and text embeddings from a model folder in transformers' layout."""

    def __init__(self, path: Path, placement: Placement) -> None:
        from transformers import AutoTokenizer, CLIPModel

        self.device, self.dtype = placement.device, placement.dtype
        self.model: Any = CLIPModel.from_pretrained(path, dtype=self.dtype).to(self.device).eval()
        self.tokenizer: Any = AutoTokenizer.from_pretrained(path)
        self.preprocess = Preprocess.from_model_dir(path, CLIP_SIDE, (list(CLIP_STATS[0]), list(CLIP_STATS[1])))
        self.max_tokens = int(self.model.config.text_config.max_position_embeddings)

    @torch.inference_mode()
    def embed_images(self, images_rgb: Sequence[np.ndarray]) -> np.ndarray:
        pixels = self.preprocess([np.ascontiguousarray(img[..., ::-1]) for img in images_rgb], self.device, self.dtype)
        out = self.model.get_image_features(pixel_values=pixels).pooler_output
        return np.asarray(out.float().cpu().numpy())

    @torch.inference_mode()
    def embed_text(self, text: str) -> np.ndarray:
        tokens = self.tokenizer([text], padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt")
        out = self.model.get_text_features(**{k: v.to(self.device) for k, v in tokens.items()}).pooler_output
        return np.asarray(out[0].float().cpu().numpy())

    def choose(self, candidates_rgb: Sequence[np.ndarray], text: str) -> Choice:
        """The candidate CLIP finds closest to `text`, with every candidate's score."""
        return choose(list(clip_scores(self.embed_images(candidates_rgb), self.embed_text(text))))

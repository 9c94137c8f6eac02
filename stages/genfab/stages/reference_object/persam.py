"""PerSAM's training-free personalisation of SAM (Zhang et al., "Personalize Segment Anything Model
with One Shot", 2023), as pure tensor functions; `annotate.py` feeds them SAM's image features and
mask decoder outputs.

1. Target embedding: the reference image's SAM features under its mask, (max + mean) / 2, unit length.
2. Location prior: cosine similarity of that embedding with every feature of a new image, brought
   to the image's size; its highest point is the positive point prompt, its lowest the negative one.
3. PerSAM-F (optional): the three multimask outputs of the reference's own prompt are mixed by
   weights (two learnt, the third 1 minus their sum) fitted to the reference mask with dice + focal
   loss (AdamW, cosine schedule, `persamLr`, `persamEpochs`, a log line every `persamLogEpoch`).
   The decoder's outputs do not depend on the weights, so they are computed once and only the
   weights train.
4. Cascaded post-refinement: the mask's box (and its logits) prompt the decoder twice more.

Shapes: features (C, h, w); masks and maps (H, W); points (x, y) in image pixels.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger("genfab.stages")


def target_embedding(ref_feat: torch.Tensor, ref_mask: torch.Tensor) -> torch.Tensor:
    """(C,) unit vector of the features under the mask; `ref_mask` (h, w) at the features' size."""
    inside = ref_feat.permute(1, 2, 0)[ref_mask > 0]  # (n, C)
    if inside.shape[0] == 0:
        raise ValueError("the reference mask covers no feature cell (is the mask empty or tiny?)")
    emb = inside.max(dim=0).values / 2 + inside.mean(dim=0) / 2
    return emb / emb.norm().clamp_min(1e-12)


def similarity(target: torch.Tensor, feat: torch.Tensor) -> torch.Tensor:
    """(h, w) cosine similarity of `target` (C,) with every feature of `feat` (C, h, w)."""
    c, h, w = feat.shape
    unit = feat / feat.norm(dim=0, keepdim=True).clamp_min(1e-12)
    return (target.to(unit.dtype) @ unit.reshape(c, h * w)).reshape(h, w)


def upsample(sim: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A low-resolution map brought to (H, W) bilinearly (features cover the whole image here)."""
    return F.interpolate(sim[None, None].float(), size=size, mode="bilinear", align_corners=False)[0, 0]


def select_points(sim: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """((2, 2) points as (x, y), (2,) labels): the most similar pixel (positive, 1) and the least
    similar one (negative, 0)."""
    w = sim.shape[1]
    flat = sim.flatten()
    best, worst = int(flat.argmax()), int(flat.argmin())
    points = np.array([[best % w, best // w], [worst % w, worst // w]], dtype=np.float32)
    return points, np.array([1, 0])


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p = logits.sigmoid().flatten()
    t = target.flatten()
    return 1 - (2 * (p * t).sum() + 1) / (p.sum() + t.sum() + 1)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    a_t = alpha * target + (1 - alpha) * (1 - target)
    return (a_t * ce * (1 - p_t) ** gamma).mean()


def mix(logits: torch.Tensor, learnt: torch.Tensor) -> torch.Tensor:
    """(3, H, W) multimask logits mixed by [1 - sum(learnt), *learnt]."""
    weights = torch.cat([1 - learnt.sum().reshape(1), learnt])
    return (logits * weights[:, None, None]).sum(0)


@dataclass(frozen=True)
class MaskWeights:
    weights: np.ndarray
    """(3,) the mix of SAM's three masks (sums to 1)."""
    losses: list[tuple[int, float]]
    """(epoch, loss) at every log interval."""


def fit_mask_weights(logits: torch.Tensor, mask: torch.Tensor, lr: float, epochs: int, log_every: int,
                     say: Callable[[str], None] = log.info) -> MaskWeights:
    """PerSAM-F: the weights of SAM's three (3, H, W) mask logits that best give `mask` (H, W)."""
    logits = logits.detach().float()
    target = (mask > 0).float()
    learnt = torch.nn.Parameter(torch.full((2,), 1 / 3))
    optimizer = torch.optim.AdamW([learnt], lr=lr, eps=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    losses = []
    for epoch in range(epochs):
        mixed = mix(logits, learnt)
        loss = dice_loss(mixed, target) + focal_loss(mixed, target)
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        schedule.step()
        if epoch % log_every == 0 or epoch == epochs - 1:
            value = float(loss.detach())
            losses.append((epoch, round(value, 6)))
            say(f"PerSAM-F epoch {epoch}/{epochs}: loss {value:.4f}, lr {schedule.get_last_lr()[0]:.6f}")
    weights = torch.cat([1 - learnt.detach().sum().reshape(1), learnt.detach()]).numpy()
    return MaskWeights(weights, losses)


def box_of(mask: np.ndarray) -> np.ndarray | None:
    """(4,) x0, y0, x1, y1 of a mask's pixels, None when it is empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return np.array([xs.min(), ys.min(), xs.max(), ys.max()], dtype=np.float32)

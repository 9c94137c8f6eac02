"""PerSAM (Zhang et al., "Personalize Segment Anything Model with One Shot", 2023; the released
code is ZrrSkywalker/Personalize-SAM) on segment-anything's own SAM, as pure tensor functions and one
context manager; `annotate_stage.py` feeds them SAM's image features and predictions. Two methods, as
the paper's two scripts run them (`annotation.persamTraining` chooses):

Training-free PerSAM (`persam.py`):
1. Target: the reference's SAM features under its mask, their mean; unit length for the location
   prior (`target_embedding(..., "mean")`), as it is for target-semantic prompting (`semantic_prompt`).
2. Location prior: cosine similarity of the target with every feature of a new image, brought to the
   image's size; its highest point is the positive point prompt, its lowest the negative one.
3. Target-guided attention (`attention_guidance`, `personalised`): the prior, standardised, resized
   to the decoder's image grid and squashed by a sigmoid, is added to the token-to-image attention
   of every two-way block after its softmax, and the sum is normalised by a second softmax.
4. Target-semantic prompting (`personalised`): the target is added to the decoder's prompt tokens
   before every two-way block and to the final token-to-image attention's queries.
5. Cascaded post-refinement: the mask's logits prompt again, then its box and logits.

PerSAM-F (`persam_f.py`):
1. Target: (max + mean) / 2 of the features under the mask, unit length; only the positive point.
2. The three multimask outputs are mixed by weights (two learnt, the third 1 minus their sum) fitted
   to the reference mask with dice + focal loss (AdamW, cosine schedule, `persamLr`, `persamEpochs`, a
   log line every `persamLogEpoch`). The decoder's outputs do not depend on the weights, so they are
   computed once and only the weights train.
3. Cascaded post-refinement: box and mixed logits, then box and the best mask's logits.

Shapes: features (C, h, w); masks and maps (H, W); points (x, y) in image pixels.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger("genfab.stages")


Pooling = Literal["mean", "max-mean"]
"""How the features under the reference mask become one target: training-free PerSAM takes their
mean, PerSAM-F (max + mean) / 2."""


def _under_mask(ref_feat: torch.Tensor, ref_mask: torch.Tensor) -> torch.Tensor:
    inside = ref_feat.permute(1, 2, 0)[ref_mask > 0]  # (n, C)
    if inside.shape[0] == 0:
        raise ValueError("the reference mask covers no feature cell (is the mask empty or tiny?)")
    return inside


def target_embedding(ref_feat: torch.Tensor, ref_mask: torch.Tensor, pooling: Pooling = "max-mean") -> torch.Tensor:
    """(C,) unit vector of the features under the mask; `ref_mask` (h, w) at the features' size."""
    inside = _under_mask(ref_feat, ref_mask)
    emb = inside.mean(dim=0) if pooling == "mean" else inside.max(dim=0).values / 2 + inside.mean(dim=0) / 2
    return emb / emb.norm().clamp_min(1e-12)


def semantic_prompt(ref_feat: torch.Tensor, ref_mask: torch.Tensor) -> torch.Tensor:
    """(1, 1, C) the target for target-semantic prompting: the mean of the features under the mask,
    not normalised (PerSAM adds it to the decoder's tokens as it is)."""
    return _under_mask(ref_feat, ref_mask).mean(dim=0)[None, None]


def attention_guidance(sim: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(1, 1, 1, h*w) target-guided attention weights from the location prior `sim` (H, W): the prior
    standardised, resized to the decoder's image grid (SAM's 64 x 64), through a sigmoid."""
    standard = (sim - sim.mean()) / sim.std().clamp_min(1e-12)
    small = F.interpolate(standard[None, None].float(), size=grid, mode="bilinear", align_corners=False)
    return small.sigmoid().flatten(2)[:, None]


def guided_attention(attn: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                     guidance: torch.Tensor | None) -> torch.Tensor:
    """segment-anything's `Attention.forward` with PerSAM's guidance: added to the attention
    probabilities after the softmax, then normalised by a second softmax."""
    q, k, v = attn.q_proj(q), attn.k_proj(k), attn.v_proj(v)
    q, k, v = (attn._separate_heads(x, attn.num_heads) for x in (q, k, v))
    weights = torch.softmax(q @ k.permute(0, 1, 3, 2) / math.sqrt(q.shape[-1]), dim=-1)
    if guidance is not None:
        weights = torch.softmax(weights + guidance.to(weights.dtype), dim=-1)
    return attn.out_proj(attn._recombine_heads(weights @ v))


_ACTIVE = threading.local()
"""The (guidance, target) of the `personalised` block this thread is in; none outside one."""
_INSTALLING = threading.Lock()


def _install(decoder: Any) -> None:
    """PerSAM's hooks on `decoder`'s two-way transformer, once per decoder. Each hook acts only in a
    thread inside `personalised`, with that thread's guidance and target, and passes through
    elsewhere: threads sharing one decoder (the annotation stage's model threads) each run their own
    image's PerSAM, and a thread outside a block runs segment-anything's decoder as it is.

    PerSAM's transformer adds the target to `queries` in place before each block; before the first,
    `queries` is the prompt embedding itself, which the blocks also take as the tokens' positional
    encoding and the final attention adds again. The hooks reproduce that arithmetic: the prompt
    embedding carries the target once throughout, the later blocks' queries get it again, and the
    final attention's queries once more."""
    transformer = decoder.transformer
    with _INSTALLING:
        if getattr(transformer, "_genfab_persam", False):
            return

        def shift_prompt(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
                         ) -> tuple[Any, dict[str, Any]] | None:
            active = getattr(_ACTIVE, "state", None)
            if active is None:
                return None
            names = ("image_embedding", "image_pe", "point_embedding")
            bound = {**dict(zip(names, args, strict=False)), **kwargs}
            bound["point_embedding"] = bound["point_embedding"] + active[1].to(bound["point_embedding"].dtype)
            return (), bound

        def add_to(name: str) -> Callable[[Any, tuple[Any, ...], dict[str, Any]], tuple[Any, dict[str, Any]] | None]:
            def hook(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]] | None:
                active = getattr(_ACTIVE, "state", None)
                if active is None:
                    return None
                return args, {**kwargs, name: kwargs[name] + active[1].to(kwargs[name].dtype)}
            return hook

        transformer.register_forward_pre_hook(shift_prompt, with_kwargs=True)
        for block in list(transformer.layers)[1:]:
            block.register_forward_pre_hook(add_to("queries"), with_kwargs=True)
        transformer.final_attn_token_to_image.register_forward_pre_hook(add_to("q"), with_kwargs=True)
        for block in transformer.layers:
            attn = block.cross_attn_token_to_image
            attn.forward = partial(_token_to_image, attn)
        transformer._genfab_persam = True


def _token_to_image(attn: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    active = getattr(_ACTIVE, "state", None)
    if active is None:  # segment-anything's own attention, untouched
        return type(attn).forward(attn, q, k, v)
    return guided_attention(attn, q, k, v, guidance=active[0])


@contextmanager
def personalised(decoder: Any, guidance: torch.Tensor, target: torch.Tensor) -> Iterator[None]:
    """Within the block, in this thread, segment-anything's `MaskDecoder` runs as training-free
    PerSAM's: target-guided attention in every two-way block's token-to-image attention,
    target-semantic prompting on the tokens (hooks on the real modules, `_install`; the decoder's own
    code runs in between). Other threads, and this one after the block, run the decoder unchanged."""
    _install(decoder)
    outer = getattr(_ACTIVE, "state", None)
    _ACTIVE.state = (guidance, target)
    try:
        yield
    finally:
        _ACTIVE.state = outer


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

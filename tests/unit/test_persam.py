"""PerSAM's pieces on synthetic data. The image encoder is a stand-in (a fixed, seeded random
convolution stack, not SAM): the location prior only needs features that tell the object's texture
from the background's, which is what the test checks with a pasted copy of the reference object."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from genfab.stages.reference_object.persam import (
    attention_guidance,
    box_of,
    fit_mask_weights,
    guided_attention,
    mix,
    personalised,
    select_points,
    semantic_prompt,
    similarity,
    target_embedding,
    upsample,
)

pytestmark = pytest.mark.unit
SIZE = 128


def stand_in_encoder() -> torch.nn.Module:
    """A stand-in for SAM's image encoder: colour and oriented-gradient energy per channel (fixed
    filters), averaged over 8x8 cells."""
    sobel = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    kernels = torch.zeros(9, 3, 3, 3)
    for c in range(3):
        kernels[c, c, 1, 1] = 1.0  # the colour itself
        kernels[3 + c, c] = sobel  # horizontal gradient
        kernels[6 + c, c] = sobel.T  # vertical gradient
    conv = torch.nn.Conv2d(3, 9, 3, padding=1, bias=False)
    conv.weight.data = kernels
    return torch.nn.Sequential(conv, Abs(), torch.nn.AvgPool2d(8)).eval()


class Abs(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.abs()


def features(net: torch.nn.Module, image: np.ndarray) -> torch.Tensor:
    """(C, h, w), normalised over channels at each cell like the LayerNorm2d that ends SAM's neck."""
    with torch.no_grad():
        f = net(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255)[0]
    return (f - f.mean(0, keepdim=True)) / f.std(0, keepdim=True).clamp_min(1e-6)


def reference_object() -> tuple[np.ndarray, np.ndarray]:
    """A striped, colourful disc (the 'product') and its mask, 40 px across."""
    patch = np.zeros((40, 40, 3), np.uint8)
    for i in range(0, 40, 6):
        patch[:, i:i + 3] = (220, 40, 40)
        patch[:, i + 3:i + 6] = (40, 40, 220)
    mask = np.zeros((40, 40), np.uint8)
    cv2.circle(mask, (20, 20), 19, 1, -1)
    return patch, mask


@pytest.mark.parametrize(("x", "y"), [(10, 10), (70, 20), (30, 80), (80, 75)])
def test_location_prior_finds_a_pasted_copy_of_the_reference(x: int, y: int) -> None:
    rng = np.random.default_rng(x * 1000 + y)
    net = stand_in_encoder()
    patch, mask = reference_object()
    ref = np.full((SIZE, SIZE, 3), 255, np.uint8)  # the white-background reference (step 1's output)
    ref_mask = np.zeros((SIZE, SIZE), np.uint8)
    ref[40:80, 44:84][mask > 0] = patch[mask > 0]
    ref_mask[40:80, 44:84] = mask
    # The scene: a smooth, noisy background with the object pasted elsewhere.
    low = rng.random((8, 8, 3)) * 120 + 60
    scene = cv2.resize(low, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
    scene = np.clip(scene + rng.normal(0, 6, scene.shape), 0, 255).astype(np.uint8)
    scene[y:y + 40, x:x + 40][mask > 0] = patch[mask > 0]
    truth = np.zeros((SIZE, SIZE), np.uint8)
    truth[y:y + 40, x:x + 40] = mask

    ref_feat = features(net, ref)
    small_mask = cv2.resize(ref_mask, ref_feat.shape[1:][::-1], interpolation=cv2.INTER_AREA)
    target = target_embedding(ref_feat, torch.from_numpy(small_mask > 0.5))
    sim = upsample(similarity(target, features(net, scene)), (SIZE, SIZE))
    points, labels = select_points(sim)
    (px, py), (nx, ny) = points.astype(int)
    assert labels.tolist() == [1, 0]
    assert truth[py, px] == 1, (px, py)  # the positive point lies on the pasted object
    assert truth[ny, nx] == 0  # the negative point does not
    assert float(sim[truth > 0].mean()) > float(sim[truth == 0].mean())


def test_an_empty_reference_mask_is_refused() -> None:
    with pytest.raises(ValueError, match="covers no feature cell"):
        target_embedding(torch.ones(4, 8, 8), torch.zeros(8, 8, dtype=torch.bool))


def test_persam_f_learns_which_of_sams_masks_fits_the_reference() -> None:
    truth = np.zeros((64, 64), np.uint8)
    cv2.circle(truth, (32, 32), 14, 1, -1)
    grown = cv2.dilate(truth, np.ones((15, 15), np.uint8))
    part = truth.copy()
    part[:, 32:] = 0
    logits = torch.from_numpy(np.stack([m.astype(np.float32) * 16 - 8 for m in (part, truth, grown)]))
    lines: list[str] = []
    fitted = fit_mask_weights(logits, torch.from_numpy(truth), lr=1e-2, epochs=300, log_every=100, say=lines.append)
    assert abs(float(fitted.weights.sum()) - 1.0) < 1e-5
    assert int(np.argmax(fitted.weights)) == 1  # the mask that is the reference's
    mixed = mix(logits, torch.from_numpy(fitted.weights[1:])) > 0
    inter = np.logical_and(mixed.numpy(), truth > 0).sum()
    assert inter / np.logical_or(mixed.numpy(), truth > 0).sum() > 0.95
    assert fitted.losses[-1][1] < fitted.losses[0][1] and len(lines) == 4  # epochs 0, 100, 200 and the last
    assert box_of(truth).tolist() == [18, 18, 46, 46] and box_of(np.zeros((4, 4))) is None


# -- training-free PerSAM's two decoder components, on a stand-in of segment-anything's decoder
# transformer: the same module attributes and call pattern (`TwoWayTransformer.forward` calls every
# block with keywords, then the final token-to-image attention), small sizes, random weights.

class Attention(torch.nn.Module):
    """segment-anything's `Attention` (projections, heads), small."""

    def __init__(self, dim: int = 8, heads: int = 2) -> None:
        super().__init__()
        self.num_heads = heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (torch.nn.Linear(dim, dim) for _ in range(4))

    def _separate_heads(self, x: torch.Tensor, num_heads: int) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, num_heads, c // num_heads).transpose(1, 2)

    def _recombine_heads(self, x: torch.Tensor) -> torch.Tensor:
        b, h, n, c = x.shape
        return x.transpose(1, 2).reshape(b, n, h * c)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return guided_attention(self, q, k, v, None)


class Block(torch.nn.Module):
    """A two-way block reduced to its token-to-image attention (what PerSAM changes)."""

    def __init__(self) -> None:
        super().__init__()
        self.cross_attn_token_to_image = Attention()

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, query_pe: torch.Tensor, key_pe: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.cross_attn_token_to_image(q=queries + query_pe, k=keys + key_pe, v=keys)
        return queries + out, keys + out.mean(1, keepdim=True)


class Transformer(torch.nn.Module):
    def __init__(self, depth: int = 2) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(Block() for _ in range(depth))
        self.final_attn_token_to_image = Attention()

    def forward(self, image_embedding: torch.Tensor, image_pe: torch.Tensor, point_embedding: torch.Tensor
                ) -> torch.Tensor:
        queries, keys = point_embedding, image_embedding
        for layer in self.layers:
            queries, keys = layer(queries=queries, keys=keys, query_pe=point_embedding, key_pe=image_pe)
        return queries + self.final_attn_token_to_image(q=queries + point_embedding, k=keys + image_pe, v=keys)


def persam_released(tf: Transformer, image: torch.Tensor, pe: torch.Tensor, points: torch.Tensor,
                    guidance: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The arithmetic of Personalize-SAM's own modified transformer (per_segment_anything), with its
    in-place `queries += target_embedding`, written out for the stand-in."""
    point_embedding = points.clone()
    queries, keys = point_embedding, image
    for layer in tf.layers:
        queries += target  # in place: before the first block this is point_embedding itself
        out = guided_attention(layer.cross_attn_token_to_image, queries + point_embedding, keys + pe, keys, guidance)
        queries, keys = queries + out, keys + out.mean(1, keepdim=True)
    q = queries + point_embedding
    q += target
    return queries + tf.final_attn_token_to_image(q=q, k=keys + pe, v=keys)


def test_guided_attention_adds_the_guidance_after_softmax_and_normalises_again() -> None:
    torch.manual_seed(0)
    attn = Attention()
    q, k, v = torch.randn(1, 3, 8), torch.randn(1, 16, 8), torch.randn(1, 16, 8)
    split = [attn._separate_heads(p(x), 2) for p, x in ((attn.q_proj, q), (attn.k_proj, k), (attn.v_proj, v))]
    plain = torch.nn.functional.scaled_dot_product_attention(*split)
    assert torch.allclose(guided_attention(attn, q, k, v, None), attn.out_proj(attn._recombine_heads(plain)),
                          atol=1e-6)
    guidance = torch.zeros(1, 1, 1, 16)
    guidance[..., 5] = 1.0
    probs = torch.softmax(split[0] @ split[1].transpose(-1, -2) / 2, dim=-1)
    expected = torch.softmax(probs + guidance, dim=-1) @ split[2]
    assert torch.allclose(guided_attention(attn, q, k, v, guidance), attn.out_proj(attn._recombine_heads(expected)),
                          atol=1e-6)


def test_attention_guidance_is_the_standardised_prior_on_the_decoder_grid() -> None:
    sim = torch.zeros(40, 60)
    sim[10:20, 30:45] = 1.0
    g = attention_guidance(sim, (8, 8))
    assert g.shape == (1, 1, 1, 64) and 0 < float(g.min()) < float(g.max()) < 1
    assert int(g.flatten().argmax()) // 8 in (2, 3, 4) and int(g.flatten().argmax()) % 8 in (4, 5, 6)
    assert torch.allclose(attention_guidance(3 * sim - 2, (8, 8)), g, atol=1e-6)  # only the shape of the prior


def test_semantic_prompt_is_the_raw_mean_under_the_mask() -> None:
    feat = torch.arange(2 * 3 * 3, dtype=torch.float32).reshape(2, 3, 3)
    mask = torch.zeros(3, 3)
    mask[0, 0] = mask[2, 2] = 1
    assert semantic_prompt(feat, mask).tolist() == [[[4.0, 13.0]]]
    assert torch.allclose(target_embedding(feat, mask, "mean"), torch.tensor([4.0, 13.0]) / (4**2 + 13**2) ** 0.5)


def test_personalised_decoder_computes_what_the_released_persam_computes_and_leaves_it_unchanged() -> None:
    torch.manual_seed(1)
    tf = Transformer(depth=3)
    decoder = torch.nn.Module()
    decoder.transformer = tf
    image, pe, points = torch.randn(1, 16, 8), torch.randn(1, 16, 8), torch.randn(1, 5, 8)
    guidance, target = attention_guidance(torch.randn(4, 4), (4, 4)), torch.randn(1, 1, 8)
    plain = tf(image, pe, points)
    with torch.no_grad():
        with personalised(decoder, guidance, target):
            guided = tf(image, pe, points)
        expected = persam_released(tf, image, pe, points, guidance, target)
    assert torch.allclose(guided, expected, atol=1e-5)
    assert not torch.allclose(guided, plain, atol=1e-3)
    assert torch.equal(tf(image, pe, points), plain)  # after the block: segment-anything's decoder
    with personalised(decoder, guidance, torch.zeros(1, 1, 8)):  # no target: only the guidance acts
        only_guided = tf(image, pe, points)
    assert not torch.allclose(only_guided, plain, atol=1e-3)


def test_threads_sharing_one_decoder_each_run_their_own_guidance() -> None:
    """The annotation stage's model threads share SAM's decoder: a thread inside `personalised` gets
    its own image's PerSAM, one outside gets the plain decoder, whatever the others are doing."""
    import threading

    torch.manual_seed(2)
    tf = Transformer(depth=3)
    decoder = torch.nn.Module()
    decoder.transformer = tf
    image, pe, points = torch.randn(1, 16, 8), torch.randn(1, 16, 8), torch.randn(1, 5, 8)
    cases = [(attention_guidance(torch.randn(4, 4), (4, 4)), torch.randn(1, 1, 8)) for _ in range(2)]
    with torch.no_grad():
        plain = tf(image, pe, points)
        expected = [persam_released(tf, image, pe, points, g, t) for g, t in cases]
    inside = threading.Barrier(3)  # all three threads in their forward passes' window together
    results: dict[str, torch.Tensor] = {}

    def run(name: str, case: tuple[torch.Tensor, torch.Tensor] | None) -> None:
        with torch.no_grad():
            for _ in range(20):
                if case is None:
                    inside.wait()
                    results[name] = tf(image, pe, points)
                else:
                    with personalised(decoder, *case):
                        inside.wait()
                        results[name] = tf(image, pe, points)

    threads = [threading.Thread(target=run, args=(name, case))
               for name, case in (("a", cases[0]), ("b", cases[1]), ("plain", None))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert torch.allclose(results["a"], expected[0], atol=1e-5)
    assert torch.allclose(results["b"], expected[1], atol=1e-5)
    assert torch.equal(results["plain"], plain)

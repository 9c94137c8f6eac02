"""PerSAM's pieces on synthetic data. The image encoder is a stand-in (a fixed, seeded random
convolution stack, not SAM): the location prior only needs features that tell the object's texture
from the background's, which is what the test checks with a pasted copy of the reference object."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from genfab.stages.reference_object.persam import (
    box_of,
    fit_mask_weights,
    mix,
    select_points,
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

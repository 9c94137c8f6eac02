"""Step 7's classical augmentations (the lab's reference-object), on albumentations: each one applied on its own with
its probability, in the seed's cascade order, geometry untouched (so labels are copied verbatim).

- black & white (`ToGray`);
- saturation, contrast and brightness as multipliers drawn from their ranges (`ColorJitter` with
  one factor each, 1.0 = unchanged);
- motion blur with a kernel size from its range (`MotionBlur`; albumentations draws odd sizes);
- JPEG compression noise: the image re-encoded a number of times drawn from `compressionIterations`,
  each pass at a quality drawn from `compressionQuality` (`RepeatedJpegCompression`, below).
"""

from __future__ import annotations

from typing import Any

import albumentations as A
import cv2
import numpy as np

from genfab.api.reference_object import CvAugmentationParameters

NAMES = ("bw", "saturation", "contrast", "brightness", "motion_blur", "compression_noise")
"""Summary names of the augmentations, in cascade order (the API's probability fields)."""


class RepeatedJpegCompression(A.ImageOnlyTransform):  # type: ignore[misc]
    """JPEG re-encoding repeated `iterations` times, each at its own quality: the generational loss
    of an image saved and shared again and again."""

    def __init__(self, iterations_range: tuple[int, int], quality_range: tuple[int, int], p: float = 1.0) -> None:
        super().__init__(p=p)
        self.iterations_range = iterations_range
        self.quality_range = quality_range

    def get_params(self) -> dict[str, Any]:
        n = self.py_random.randint(*self.iterations_range)
        return {"qualities": [self.py_random.randint(*self.quality_range) for _ in range(n)]}

    def apply(self, img: np.ndarray, qualities: list[int], **params: Any) -> np.ndarray:
        for q in qualities:
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(q)])
            if not ok:
                raise RuntimeError("OpenCV could not JPEG-encode the image")
            img = np.asarray(cv2.imdecode(buf, cv2.IMREAD_UNCHANGED))
        return img

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("iterations_range", "quality_range")


class Saturation(A.ColorJitter):  # type: ignore[misc]
    """ColorJitter with only its saturation factor (its own class, so the applied list names it)."""


class Contrast(A.ColorJitter):  # type: ignore[misc]
    """ColorJitter with only its contrast factor."""


class Brightness(A.ColorJitter):  # type: ignore[misc]
    """ColorJitter with only its brightness factor."""


SUMMARY_NAMES = {"ToGray": "bw", "Saturation": "saturation", "Contrast": "contrast", "Brightness": "brightness",
                 "MotionBlur": "motion_blur", "RepeatedJpegCompression": "compression_noise"}


def _span(r: Any) -> tuple[float, float]:
    return (float(r.min), float(r.max))


def build_transform(cfg: CvAugmentationParameters) -> A.Compose:
    """The cascade for one config. `save_applied_params` records which augmentations fired."""
    p, r = cfg.probabilities, cfg.ranges
    one = (1.0, 1.0)
    blur = (int(r.motion_blur.min) | 1, max(int(r.motion_blur.max) | 1, int(r.motion_blur.min) | 1))
    return A.Compose([
        A.ToGray(p=p.bw),
        Saturation(brightness=one, contrast=one, saturation=_span(r.saturation), hue=(0.0, 0.0), p=p.saturation),
        Contrast(brightness=one, contrast=_span(r.contrast), saturation=one, hue=(0.0, 0.0), p=p.contrast),
        Brightness(brightness=_span(r.brightness), contrast=one, saturation=one, hue=(0.0, 0.0), p=p.brightness),
        A.MotionBlur(blur_limit=blur, p=p.motion_blur),
        RepeatedJpegCompression((int(r.compression_iterations.min), int(r.compression_iterations.max)),
                                (int(r.compression_quality.min), int(r.compression_quality.max)),
                                p=p.compression_noise),
    ], save_applied_params=True)


def augment(transform: A.Compose, image: np.ndarray, seed: int) -> tuple[np.ndarray, list[str]]:
    """One augmented copy of an RGB uint8 image, reproducible from `seed`; returns the image and the
    names (`NAMES`) of the augmentations applied, in cascade order."""
    transform.set_random_seed(seed)
    out = transform(image=image)
    return out["image"], [SUMMARY_NAMES[name] for name, _ in out["applied_transforms"]]

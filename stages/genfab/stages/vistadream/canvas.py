"""The lab's vistadream `process_image` and `add_border_and_mask`: the working image and the outpainting canvas.

Flux works on latents of 1/8 the image size packed in 2x2 patches, so every image it sees has sides
that are multiples of 32 (`ALIGN`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from genfab.stages.flux import ALIGN
from genfab.stages.scene.frames import Frame
from genfab.stages.scene.geometry import confidence_mask, crop_intrinsics, depth_edges_mask, sanitize_depth


def _aligned(value: float) -> int:
    return max(ALIGN, ALIGN * round(value / ALIGN))


def fit_size(width: int, height: int, max_resolution: int) -> tuple[int, int]:
    """(width, height) with the longer side at most `max_resolution` (never upscaled) and both sides
    multiples of 32, aspect kept as closely as that allows."""
    scale = min(1.0, max_resolution / max(width, height))
    w, h = _aligned(width * scale), _aligned(height * scale)
    while max(w, h) > max_resolution:  # rounding up may cross the limit: step down one block
        w, h = (w - ALIGN, h) if w >= h else (w, h - ALIGN)
    return w, h


def process_image(rgb: np.ndarray, max_resolution: int) -> np.ndarray:
    """The input (H, W, 3 uint8) resized to `fit_size`: area filter when shrinking, cubic when a side
    grows to reach the next multiple of 32."""
    height, width = rgb.shape[:2]
    w, h = fit_size(width, height, max_resolution)
    if (w, h) == (width, height):
        return rgb
    shrinking = w * h < width * height
    return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


@dataclass(frozen=True)
class Canvas:
    """Where the input sits on the outpainting canvas."""

    width: int
    height: int
    left: int
    top: int
    input_width: int
    input_height: int

    @property
    def rows(self) -> slice:
        return slice(self.top, self.top + self.input_height)

    @property
    def cols(self) -> slice:
        return slice(self.left, self.left + self.input_width)

    def crop(self, array: np.ndarray) -> np.ndarray:
        """The input's region of a canvas-sized array (depth, masks, RGB)."""
        return array[self.rows, self.cols]


def border_canvas(width: int, height: int, expansion_percent: float) -> Canvas:
    """The canvas for an input of `width` x `height`: `expansionPercent` of each dimension is added,
    half on each side (seed: `expansion_percent / 2` per side), the total rounded up to a multiple of
    32, and the input centred (the extra pixels of the rounding split between both sides)."""
    canvas_w = ALIGN * -(-(width + 2 * int(width * expansion_percent / 2)) // ALIGN)
    canvas_h = ALIGN * -(-(height + 2 * int(height * expansion_percent / 2)) // ALIGN)
    return Canvas(canvas_w, canvas_h, (canvas_w - width) // 2, (canvas_h - height) // 2, width, height)


def add_border_and_mask(rgb: np.ndarray, expansion_percent: float) -> tuple[np.ndarray, np.ndarray, Canvas]:
    """(canvas RGB with a black border, mask True where Flux must paint, the canvas geometry)."""
    height, width = rgb.shape[:2]
    canvas = border_canvas(width, height, expansion_percent)
    image = np.zeros((canvas.height, canvas.width, 3), dtype=rgb.dtype)
    image[canvas.rows, canvas.cols] = rgb
    mask = np.ones((canvas.height, canvas.width), dtype=bool)
    mask[canvas.rows, canvas.cols] = False
    return image, mask, canvas


def outpaint_frames(canvas_rgb: np.ndarray, border: np.ndarray, canvas: Canvas, depth: np.ndarray, K: np.ndarray,
                    confidence: np.ndarray | None = None) -> list[Frame]:
    """The seed's initialisation: one depth pass on the outpainted canvas gives two frames at the
    origin. The outpaint frame supervises the painted border and adds splats where the depth is off its
    edges and confident; the input frame is the canvas's input region, cropped from the same depth and
    masks (seed "Depth reuse"), with the principal point moved into the crop, every pixel supervised, and
    a splat on every pixel off a depth edge whatever the confidence (the lab's `_initialize`: its input
    frame's `inpaint_wo_edge` is `~edges`, its confidence kept as `dpt_conf_mask` alone)."""
    depth = sanitize_depth(depth)
    conf = confidence_mask(depth, confidence)
    edges = depth_edges_mask(depth)
    outpaint = Frame("outpaint", canvas_rgb, depth, border.copy(), border & ~edges & conf, conf,
                     np.asarray(K, np.float64), np.eye(4))
    crop_conf = canvas.crop(conf)
    inner = Frame("input", canvas.crop(canvas_rgb).copy(), canvas.crop(depth).copy(),
                  np.ones(crop_conf.shape, bool), ~canvas.crop(edges), crop_conf.copy(),
                  crop_intrinsics(K, canvas.left, canvas.top), np.eye(4))
    return [inner, outpaint]

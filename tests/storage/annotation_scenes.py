"""Scenes with a known object for the reference-object annotation stage: a disc mask, a dull scene with
the object painted in, the stage's environment after a `scenes` stage, and PNG bytes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from tests.helpers import stage_contract

SIZE = 160


def disc(center: tuple[int, int], radius: int) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), np.uint8)
    cv2.circle(mask, center, radius, 1, -1)
    return mask


def scene(rng: np.random.Generator, mask: np.ndarray | None) -> np.ndarray:
    low = rng.random((6, 6, 3)) * 90 + 40  # dull greys and greens: never the object's orange
    image = cv2.resize(low, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8)
    if mask is not None:
        image[mask > 0] = (255, 140, 0)
    return image


def annotation_env(tmp_path: Path, models: Path, inputs: Path, config: dict[str, object]) -> dict[str, str]:
    """Shard 0 of the annotation stage after a `scenes` stage (hash s...) under `tmp_path/run`."""
    upstream = [{"name": "scenes", "configHash": "s" * 64, "outputUri": f"file://{tmp_path}/run/04_dataset"}]
    return {**stage_contract(tmp_path, "annotation", pipeline="reference-object", config=config, upstream=upstream,
                             outputUri=f"file://{tmp_path}/run/06_yolo_dataset",
                             inputUris=[f"file://{inputs}/ref.png", f"file://{inputs}/ref_mask.png"]),
            "GENFAB_MODELS": f"file://{models}"}


def png(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()

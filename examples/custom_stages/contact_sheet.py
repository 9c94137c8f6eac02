"""Custom stage example: a review image per sample (input | foreground | mask side by side),
reading the upstream `segment` stage's outputs. Shows a new stage added after a built-in one."""

from __future__ import annotations

import cv2
import numpy as np

from genfab.stages.runtime import Sample, SampleError, SampleStage, given, run


def _decode(data: bytes, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None:
        raise SampleError("DecodeError", "an upstream output is not a readable image")
    return image


def contact_sheet(_: object, sample: Sample) -> None:
    fg = _decode(sample.read_upstream(f"{sample.id}_foreground.png"))
    bg = _decode(sample.read_upstream(f"{sample.id}_background.png"))
    mask = _decode(sample.read_upstream(f"{sample.id}_mask.png"), cv2.IMREAD_GRAYSCALE)
    original = cv2.add(fg, bg)
    sheet = np.hstack([original, fg, cv2.cvtColor(mask, cv2.COLOR_GRAY2BGR)])
    _, png = cv2.imencode(".png", sheet)
    sample.write(f"{sample.id}/sheet.png", png.tobytes())


CONTACT_SHEET = SampleStage("contact-sheet", given, contact_sheet)  # nothing to load

if __name__ == "__main__":
    run(CONTACT_SHEET)

"""Step 2's viewpoints: which views a spec asks for, their file names, and the camera instruction
each multi-camera LoRA was trained on. Pure and torch-free (the executors list units from it).

Two LoRA families are known, by their public model cards:

- `dx8152/Qwen-Edit-2509-Multiple-angles` (Qwen-Image-Edit-2509): bilingual camera instructions,
  one per movement, e.g. "将镜头向左旋转45度 Rotate the camera 45 degrees to the left.",
  "将镜头转为俯视 Turn the camera to a top-down view.", "将镜头转为特写镜头 Turn the camera to a
  close-up.", "将镜头转为广角镜头 Turn the camera to a wide-angle lens.". A view is the rotation
  that brings the camera to its azimuth, then the elevation's and the distance's instruction.
- `*/Qwen-Image-Edit-2511-Multiple-Angles-LoRA` (fal's, Qwen-Image-Edit-2511): one trigger token
  and three fixed phrases, `<sks> [azimuth] [elevation] [distance]`, e.g.
  "<sks> front-left quarter view elevated shot medium shot" (8 azimuths x 4 elevations x 3
  distances, the same grid as the API's enums).
"""

from __future__ import annotations

from dataclasses import dataclass

from genfab.api.reference_object import (
    ZERO123_VIEWS,
    Azimuth,
    Distance,
    Elevation,
    PerspectivesConfig,
    lora_family,
)

AZIMUTH_DEGREES: dict[Azimuth, int] = {
    "front": 0, "front_right": 45, "side_right": 90, "back_right": 135,
    "back": 180, "back_left": 225, "side_left": 270, "front_left": 315,
}
"""Clockwise seen from above, 0 = the reference image's own view (the fal card's convention)."""

# fal's Qwen-Image-Edit-2511 Multiple-Angles LoRA: `<sks> [azimuth] [elevation] [distance]`.
SKS_AZIMUTH: dict[Azimuth, str] = {
    "front": "front view", "front_right": "front-right quarter view", "side_right": "right side view",
    "back_right": "back-right quarter view", "back": "back view", "back_left": "back-left quarter view",
    "side_left": "left side view", "front_left": "front-left quarter view",
}
SKS_ELEVATION: dict[Elevation, str] = {
    "low_angle": "low-angle shot", "eye_level": "eye-level shot", "elevated": "elevated shot",
    "high_angle": "high-angle shot",
}
SKS_DISTANCE: dict[Distance, str] = {"close_up": "close-up", "medium": "medium shot", "wide": "wide shot"}

# dx8152's Qwen-Edit-2509 Multiple-angles LoRA: its card's Chinese instruction with the English one.
ROTATE = "将镜头向{side}旋转{degrees}度 Rotate the camera {degrees} degrees to the {side_en}."
INSTRUCTION_ELEVATION: dict[Elevation, str] = {
    "low_angle": "将镜头转为仰视 Turn the camera to a worm's-eye view.",
    "eye_level": "",
    "elevated": "将镜头向上移动 Move the camera up.",
    "high_angle": "将镜头转为俯视 Turn the camera to a top-down view.",
}
INSTRUCTION_DISTANCE: dict[Distance, str] = {
    "close_up": "将镜头转为特写镜头 Turn the camera to a close-up.",
    "medium": "",
    "wide": "将镜头转为广角镜头 Turn the camera to a wide-angle lens.",
}

ZERO123_POSES: tuple[tuple[int, int], ...] = ((30, 20), (90, -10), (150, 20), (210, -10), (270, 20), (330, -10))
"""Zero123++ v1.2's six fixed views (azimuth, elevation in degrees), in its 3x2 grid order."""
assert len(ZERO123_POSES) == ZERO123_VIEWS


@dataclass(frozen=True)
class View:
    index: int
    azimuth: str
    elevation: str
    distance: str

    @property
    def id(self) -> str:
        """The file stem, as in the lab's reference-object: `perspective_NN_<azimuth>__<elevation>` (plus the distance
        when it is not `medium`, so several distances never share a name)."""
        tail = "" if self.distance in ("medium", "") else f"__{self.distance}"
        return f"perspective_{self.index:02d}_{self.azimuth}__{self.elevation}{tail}"


def views(cfg: PerspectivesConfig) -> list[View]:
    """Every view the config asks for, numbered in order (azimuth, then elevation, then distance)."""
    if cfg.generator == "zero123":
        return [View(i, f"azimuth_{az:03d}", f"elevation_{el}".replace("-", "minus"), "")
                for i, (az, el) in enumerate(ZERO123_POSES)]
    out: list[View] = []
    for az in cfg.azimuths:
        for el in cfg.elevations:
            for dist in cfg.distances:
                out.append(View(len(out), az, el, dist))
    return out


def camera_prompt(view: View, lora: str) -> str:
    """The edit instruction that moves the camera to `view`, in the LoRA's own phrases."""
    az, el, dist = view.azimuth, view.elevation, view.distance
    if az not in AZIMUTH_DEGREES or el not in SKS_ELEVATION or dist not in SKS_DISTANCE:
        raise ValueError(f"view {view.id} is not a multi-camera view (zero123 views have no prompt)")
    if lora_family(lora) == "multiple-angles-2511":
        return f"<sks> {SKS_AZIMUTH[az]} {SKS_ELEVATION[el]} {SKS_DISTANCE[dist]}"
    degrees = AZIMUTH_DEGREES[az]
    parts = []
    if degrees:
        # Rotating the camera to the left orbits it clockwise around the object (the card's examples).
        side, side_en, amount = ("左", "left", degrees) if degrees <= 180 else ("右", "right", 360 - degrees)
        parts.append(ROTATE.format(side=side, degrees=amount, side_en=side_en))
    parts += [INSTRUCTION_ELEVATION[el], INSTRUCTION_DISTANCE[dist]]
    return " ".join(p for p in parts if p) or "保持镜头不变 Keep the camera unchanged."


def white_background_prompt(object_name: str) -> str:
    """Step 1's instruction, word for word from the lab's reference-object document."""
    return f"{object_name} with white background, while maintaining object's features and shape"

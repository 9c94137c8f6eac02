"""A relighting sample's drawn lighting (`data/stage_3/{id}_params.json`, and `lighting` in its
`{id}_metadata.json`): written by the `degrade` stage (genfab.stages.relighting.degradation draws it from
the spec's `degradation` block), read by `degradation.render` to reproduce the image and by the report.
camelCase in the files, snake_case here, like the spec itself."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class ParamsDocument(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def document(self) -> dict[str, Any]:
        """The file's form: camelCase, fields that do not apply to the method left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ShadowPattern(ParamsDocument):
    kind: str
    """`perlin` (soft shading's subtle patterns) or one of `hardShadow.patterns`."""
    seed: int
    cells: float
    """Pattern cells across the image."""
    strength: float
    """How much of the light the pattern takes away where it is darkest (0..1)."""


class LightingParams(ParamsDocument):
    method: str = "?"
    """softShading, specular, hardShadow or ambientOnly (the spec's `degradation.weights` drew it)."""
    seed: int | None = None
    ambient: float | None = None
    """Drawn from `degradation.softShading.ambient` (soft shading, specular, ambient only)."""
    light_direction: list[float] | None = None
    """A unit vector toward the light, in the hemisphere facing the viewer."""
    shadow_pattern: ShadowPattern | None = None
    shininess: float | None = None
    specular_strength: float | None = None
    normals: str | None = None
    """Where the normals came from (a depth model or `classical`), for the methods that shade with them."""


class AlbedoParams(ParamsDocument):
    """A sample's albedo (`{id}_albedo.png`): the method drawn from `albedo.methods`, and how much of the
    original it is blended back with."""

    method: str = "?"
    """retinex, lab or a plug-in backend's name."""
    variant: str | None = None
    """Multi-Scale Retinex's variant (retinex only)."""
    blend: float | None = None
    """The fraction of the original image blended back, drawn from `albedo.blend`."""
    seed: int | None = None


class SegmentParams(ParamsDocument):
    """What the report reads of a sample's segmentation (the segment stage writes these with what its
    backend says of the mask: faces found, compiled, an input resized to `input.maxSide`)."""

    backend: str = "?"
    model: str | None = None
    mask_fraction: float | None = None
    """The share of the frame the person's mask covers."""

"""DatasetJob type `relighting` (the lab's relighting script): segmentation -> albedo -> new lighting ->
recombination."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from genfab.api.base import MODEL, RUN_TIME, GenfabModel, ModelReference, Rule
from genfab.api.common import FloatRange, FractionRange
from genfab.api.quality import RELIGHTING, QualityBound, quality_range_rule, quality_rule
from genfab.api.types import InputUri, Probability, SampleId

SegmentationBackend = Literal["sam3", "sam2", "selfie", "classical"]
AlbedoMethodName = Literal["intrinsic-anything", "retinex", "lab"]

DEFAULT_BACKENDS: tuple[SegmentationBackend, ...] = ("sam3", "sam2")
"""The lab's relighting script's: SAM3 with the text prompt, SAM2 when SAM3 cannot run. The CPU backends
(`selfie`, `classical`) run only when listed."""
ShadowPattern = Literal["perlin", "geometric", "blob"]
DEFAULT_PATTERNS: tuple[ShadowPattern, ...] = ("perlin", "geometric", "blob")


class RelightingInput(GenfabModel):
    """Input portraits: every image (png/jpg/webp) under `uri`, or only `sampleIds`."""

    uri: InputUri
    """Folder (prefix) of input images, e.g. the lab's script's `data/raw/`. `organize` copies each
    input, bytes unchanged, to the output's `data/raw/` (the lab's relighting layout)."""
    sample_ids: list[SampleId] | None = Field(None, min_length=1, max_length=100000)
    """Only these images (file name without extension)."""
    max_side: int = Field(2048, ge=64, le=8192)
    """Working size: an input whose longer side is above this is downscaled to it (aspect kept, area
    filter; JPEGs are decoded at reduced size) before segmentation, and every stage and output of
    the sample is at that size except the original input: `{id}_input.png` stays the original, and
    `{id}_input_working.png` beside it is the input at the working size (the pair's other half). Inputs
    above 100 megapixels are dropped (`TooLarge`) unread."""


def has_fallback(segmentation: SegmentationConfig) -> bool:
    """A backend's models are optional when another backend is listed: the stage runs the first one
    that can, and stops on its own (one line) only when none can."""
    return len(segmentation.backends) > 1


class MaskCleanup(GenfabModel):
    """What is done to every found mask before it is written; each sample's `quality` says what it
    changed (`cleanupFilled`, `cleanupRemoved`)."""

    fill_enclosed: bool = True
    """Fill background regions the mask encloses (a gap between an arm and the torso becomes person and
    is relit). On (as before this setting): SAM's and GrabCut's masks leave pinholes in hair and
    patterned clothes, which relit as background would show as specks. Off: every enclosed region is
    kept as found (`holes` counts them)."""
    min_component_share: Probability = 0.1
    """Drop regions smaller than this share of the largest one (specks of background a backend took for
    person); 0 keeps every region. A second person smaller than this share of the first is dropped
    too: lower it for group photos."""

    def pair(self) -> tuple[bool, float]:
        """(fill_enclosed, min_component_share): what a segment worker is handed with each mask."""
        return self.fill_enclosed, self.min_component_share


class SegmentationConfig(GenfabModel):
    """Stage 1: split each input into `_foreground`, `_background` and `_mask`."""

    rules = (
        Rule(
            "self.backends.all(b, self.backends.exists_one(c, c == b))",
            "`backends` must not repeat a backend",
            "backends",
            lambda m: len(set(m.backends)) == len(m.backends),
        ),
    )

    backends: list[SegmentationBackend] = Field(
        default_factory=lambda: list(DEFAULT_BACKENDS), min_length=1, max_length=4
    )
    """Backends in fallback order: SAM3 with a text prompt, SAM2 prompted by a detector box (the lab's
    relighting script's two, the default), and, only when listed, the CPU paths: `selfie`, a learned person
    model whose weights ship with genfab (MediaPipe Selfie Segmentation run by OpenCV, every person in the
    picture, its outline refined to the picture's edges by GrabCut; the CPU example's), and `classical`
    (OpenCV cascades seeding GrabCut, no learned model). A backend that cannot run is said in the stage's status and in
    each sample's `unavailableBackends`; when none can, the stage stops."""
    fallback_on_empty: bool = False
    """Also hand an image to the next listed backend when one that runs finds nobody in it (per
    image; the backend that made each mask is in the sample's `backend`). Off (the lab's script): the
    fallback is for a backend that cannot run, and an image the first runnable backend finds nobody
    in is dropped with `EmptyMask`."""
    text_prompt: str = Field("person", min_length=1, max_length=256)
    """What to segment (SAM3 text prompt, detector query for SAM2)."""
    sam3_model: Annotated[str, ModelReference(lambda m: "sam3" in m.backends, optional=has_fallback)] = Field(
        "facebook/sam3", max_length=256)
    """SAM3 model id (a folder under the model location)."""
    sam2_model: Annotated[str, ModelReference(lambda m: "sam2" in m.backends, optional=has_fallback)] = Field(
        "facebook/sam2.1-hiera-large", max_length=256)
    """SAM2 model id."""
    detector_model: Annotated[str, ModelReference(lambda m: "sam2" in m.backends, optional=has_fallback)] = Field(
        "IDEA-Research/grounding-dino-tiny", max_length=256)
    """Open-vocabulary detector that prompts SAM2 with a box (Grounding DINO or OWLv2)."""
    box_threshold: Probability = 0.3
    """Detector score threshold."""
    mask_threshold: Probability = 0.5
    """Mask probability threshold for the binary mask."""
    cleanup: MaskCleanup = Field(default_factory=MaskCleanup)
    """What is done to a found mask before it is written (`MaskCleanup`)."""
    compile: Annotated[bool, RUN_TIME] = False
    """torch.compile SAM3's image encoder, DETR encoder and decoder, and mask decoder on CUDA. Their
    shapes never change (every image is resized to 1008², a short last chunk is padded to the
    chunk's size), so they compile once per shard, about a minute at its start, and each chunk then
    runs faster, its masks differing from eager's on a tiny share of pixels (the benchmarks' relighting
    page has the measured figures). Worth it for shards of thousands of images; each sample's
    `compiled` says it. Ignored on the CPU and by SAM2."""


class AlbedoMethod(GenfabModel):
    """One albedo method in the fallback chain."""

    name: AlbedoMethodName
    """intrinsic-anything (needs a checkpoint), retinex (Multi-Scale Retinex) or lab."""
    probability: Probability = 1.0
    """Chance this method is used for a sample; otherwise the next method is tried."""


class AlbedoConfig(GenfabModel):
    """Stage 2: remove the existing lighting from the foreground (intrinsic albedo)."""

    rules = (
        Rule(
            "self.methods[size(self.methods) - 1].probability == 1.0",
            "the last albedo method must have probability 1.0 so every sample gets an albedo",
            "methods",
            lambda m: m.methods[-1].probability == 1.0,
        ),
        Rule(
            "!self.methods.exists(x, x.name == 'intrinsic-anything') || has(self.intrinsicAnythingCheckpoint)",
            "method intrinsic-anything needs `intrinsicAnythingCheckpoint`",
            "intrinsicAnythingCheckpoint",
            lambda m: all(x.name != "intrinsic-anything" for x in m.methods)
            or m.intrinsic_anything_checkpoint is not None,
        ),
    )

    methods: list[AlbedoMethod] = Field(
        default_factory=lambda: [
            AlbedoMethod(name="retinex", probability=0.8),
            AlbedoMethod(name="lab", probability=1.0),
        ],
        min_length=1,
        max_length=3,
    )
    """Methods in order: each is used with its probability, else the next is tried.
    Seed default: Retinex (80%), then LAB (always); IntrinsicAnything disabled."""
    retinex_scales: list[Annotated[float, Field(gt=0.0, le=10000.0)]] = Field(
        default_factory=lambda: [15.0, 80.0, 250.0], min_length=1, max_length=8
    )
    """Gaussian sigmas of Multi-Scale Retinex."""
    blend: FractionRange = Field(default_factory=lambda: FractionRange(min=0.15, max=0.25))
    """Fraction of the original image blended back in (reduces over-brightening)."""
    intrinsic_anything_checkpoint: InputUri | None = None
    """IntrinsicAnything checkpoint (used by a custom `albedo` stage image)."""


class DegradationWeights(GenfabModel):
    """Relative weights of the degradation methods, as the lab's relighting script gives them: each pair's method is
    drawn with probability weight / sum of weights. The lab's script's soft shading 80 %, hard shadow 0 %,
    specular 0 % make every pair soft shading."""

    rules = (
        Rule(
            "self.softShading + self.hardShadow + self.specular + self.ambientOnly > 0.0",
            "at least one degradation weight must be above 0",
            "softShading",
            lambda m: m.total() > 0.0,
        ),
    )

    soft_shading: Probability = 0.8
    """Lambertian soft shading (the lab's script's primary method, 80 %)."""
    hard_shadow: Probability = 0.0
    """Procedural hard shadows (Perlin noise, geometric, blob); disabled in the lab's script."""
    specular: Probability = 0.0
    """Soft shading plus Phong highlights; disabled in the lab's script."""
    ambient_only: Probability = 0.0
    """The albedo under ambient light only (no directional shading): not one of the lab's script's methods,
    off unless set."""

    def total(self) -> float:
        return self.soft_shading + self.hard_shadow + self.specular + self.ambient_only


class SoftShadingConfig(GenfabModel):
    """`I = albedo x (ambient + (1 - ambient) x max(0, N·L))`, light from the upper hemisphere."""

    ambient: FractionRange = Field(default_factory=lambda: FractionRange(min=0.6, max=0.85))
    """Ambient light range; high ambient = subtle shadows (seed: 0.6-0.85)."""
    shadow_patterns: bool = True
    """Add subtle shadow patterns."""
    normals: Literal["midas", "depth-anything", "dpt", "auto", "classical"] = "midas"
    """Where the normals come from. `midas` (the lab's relighting script's): MiDaS's relative depth (`midasModel`, a DPT
    checkpoint through transformers) on the GPU; `depth-anything` or `dpt`: the depth model
    `depthModel`; `classical`: the silhouette inflated on the CPU, no model. A named model that is not
    in the model location stops the stage. `auto` runs MiDaS when its weights are there and classical
    normals otherwise, and every sample's params say which ran."""
    midas_model: Annotated[str, ModelReference(lambda m: m.normals in ("midas", "auto"),
                                               optional=lambda m: m.normals == "auto")] = Field(
        "Intel/dpt-hybrid-midas", max_length=256)
    """MiDaS checkpoint (DPT) for `midas` and `auto` normals."""
    depth_model: Annotated[str, ModelReference(lambda m: m.normals in ("depth-anything", "dpt"))] = Field(
        "depth-anything/Depth-Anything-V2-Small-hf", max_length=256)
    """Depth model id for `depth-anything` and `dpt` normals."""

    def normals_model(self) -> str | None:
        """The depth model the normals come from (None: classical)."""
        if self.normals == "classical":
            return None
        return self.midas_model if self.normals in ("midas", "auto") else self.depth_model


class HardShadowConfig(GenfabModel):
    """Procedural hard shadows."""

    patterns: list[ShadowPattern] = Field(default_factory=lambda: list(DEFAULT_PATTERNS), min_length=1, max_length=3)
    """Shadow generators to draw from."""
    strength: FractionRange = Field(default_factory=lambda: FractionRange(min=0.3, max=0.7))
    """Darkening inside the shadow."""


class SpecularConfig(GenfabModel):
    """Soft shading plus Phong highlights `(R·V)^shininess`."""

    shininess: FloatRange = Field(default_factory=lambda: FloatRange(min=8.0, max=64.0))
    """Phong exponent."""
    strength: FractionRange = Field(default_factory=lambda: FractionRange(min=0.1, max=0.4))
    """Highlight intensity."""


class DegradationConfig(GenfabModel):
    """Stage 3: new illumination on the albedo (not noise)."""

    weights: DegradationWeights = Field(default_factory=DegradationWeights)
    """Method probabilities."""
    soft_shading: SoftShadingConfig = Field(default_factory=SoftShadingConfig)
    """Soft shading parameters."""
    hard_shadow: HardShadowConfig = Field(default_factory=HardShadowConfig)
    """Hard shadow parameters."""
    specular: SpecularConfig = Field(default_factory=SpecularConfig)
    """Specular parameters."""


class CaptioningParameters(GenfabModel):
    """What the caption stage reads when it runs."""

    backend: str = Field("transformers", pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")
    """`transformers` (an image-to-text model from the model location), or the name of a plug-in
    registered under the Python entry-point group `genfab.caption_backends` in the stage image."""
    model: Annotated[str, MODEL] = Field("Salesforce/blip-image-captioning-base", max_length=256)
    """Captioning model id under the model location (or use a custom `caption` stage)."""


class CaptioningConfig(CaptioningParameters):
    """Stage 4 (disabled in the lab's script): captions for the pairs."""

    enabled: bool = False
    """Run the caption stage."""


class RelightingConfig(GenfabModel):
    """The lab's relighting script's `mvp_config.yaml` as a typed block."""

    rules = (quality_rule(RELIGHTING), quality_range_rule(RELIGHTING))

    input: RelightingInput
    """Input portraits."""
    num_samples: int | None = Field(None, ge=1, le=10_000_000)
    """Process at most this many inputs, in sorted order (seed `--num-samples`); unset = all."""
    segmentation: SegmentationConfig = Field(default_factory=SegmentationConfig)
    """Stage 1."""
    albedo: AlbedoConfig = Field(default_factory=AlbedoConfig)
    """Stage 2."""
    degradation: DegradationConfig = Field(default_factory=DegradationConfig)
    """Stage 3."""
    composite: Literal["binary", "soft"] = "binary"
    """Stage 3.5: how the relit person goes back onto the original background. `binary` is the lab's
    relighting script's `degraded × mask + background × (1 − mask)` with stage 1's binary `_mask.png`; `soft` blends
    with the feathered alpha of `_foreground.png` (no hard edge at the outline)."""
    captioning: CaptioningConfig = Field(default_factory=CaptioningConfig)
    """Stage 4."""
    seed: int = Field(0, ge=0)
    """Base seed; each sample's seed derives from it and the sample id (reproducible outputs)."""
    quality: dict[str, QualityBound] = Field(default_factory=dict, max_length=32)
    """Bounds on the samples' quality figures (`maskArea`, `straightRunPx`, ...: the figures and what
    each measures are in the relighting pipeline's docs), by figure name. The final `organize` stage
    drops a sample outside a bound with `QualityOutOfRange` (figure, value, bound); only its config
    covers the bounds, so changing them re-filters without generating again. Figures it does not name
    keep their default bound (the figures table's "default" column: what a careful person keeps, under
    which the bundled portraits all pass); naming a figure with neither `min` nor `max` lifts its default."""

"""Quality figures: what genfab measures of each sample it makes, declared once.

Each figure has a name (the key in a sample's `quality` record), the stage that computes it, its unit
and range, how it is computed and what a bad value looks like. The stages compute them where the sample
is made (`genfab.stages.*`), the docs list them from here, and a spec's thresholds name them.
"""

from __future__ import annotations

import bisect
import difflib
import json
import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from pydantic import Field

from genfab.api.base import GenfabModel, Rule


@dataclass(frozen=True)
class Figure:
    name: str
    stage: str
    unit: str
    low: float
    high: float | None
    """The range (None: unbounded above)."""
    formula: str
    bad: str
    worse: str = "high"
    """Which way is worse: `high`, `low`, or `both` (far from the middle of the values): the report's
    worst-first galleries sort by it."""
    keep: tuple[float | None, float | None] | None = None
    """The bound (min, max; None: that side open) a spec's `quality` block has for this figure unless it
    names the figure itself; None: no default bound."""

    @property
    def integral(self) -> bool:
        """Whether its values are whole numbers (a count)."""
        return self.unit == "count"

    @property
    def edges(self) -> tuple[float, ...]:
        """The histogram's bin edges: 20 equal bins over a bounded range; 0, 1, 2, 4 ... 4096 (the last bin
        open) for counts and lengths."""
        if self.high is not None:
            return tuple(self.low + (self.high - self.low) * i / BINS for i in range(BINS + 1))
        return (0.0, *(float(2**i) for i in range(13)))

    def bin(self, value: float) -> int:
        """The bin `value` falls in (values outside the range go to the first or the last)."""
        return min(max(bisect.bisect_right(self.edges, value) - 1, 0), len(self.edges) - 2)


BINS = 20
"""Bins of a bounded figure's histogram."""


def figure_items(sample: str, measured: object) -> list[tuple[str, Mapping[str, object]]]:
    """A committed unit's figures as (item, figures) pairs: its own (`{figure: value}`), or one per item
    when the unit makes many samples (`{item: {figure: value}}`: difix's scene export, a triplet each)."""
    if not isinstance(measured, Mapping) or not measured:
        return []
    if all(isinstance(v, Mapping) for v in measured.values()):
        return [(str(k), v) for k, v in measured.items()]
    return [(sample, measured)]


def declared_values(measured: Mapping[str, object] | None) -> dict[str, float]:
    """The figures genfab declares among a sample's `quality` record, as finite numbers (anything else a
    stage or a tenant put there is left out)."""
    return {name: float(value) for name, value in (measured or {}).items()
            if name in FIGURES and isinstance(value, int | float) and math.isfinite(value)}


def percentile(figure: Figure, counts: Sequence[int], q: float, span: Sequence[float] = ()) -> float | None:
    """The `q` quantile (0-1) estimated from a histogram: linear within its bin, kept within the values'
    `span` ([least, greatest] seen) when known, a whole number for a count; None when empty."""
    total = sum(counts)
    if not total:
        return None
    edges, target, seen = figure.edges, q * total, 0
    value = edges[-1]
    for i, n in enumerate(counts):
        if n and seen + n >= target:
            low, high = edges[i], edges[min(i + 1, len(edges) - 1)]
            value = low + (high - low) * ((target - seen) / n)
            break
        seen += n
    if len(span) == 2:
        value = min(max(value, span[0]), span[1])
    return float(int(value)) if figure.integral else value


def figures_summary(histograms: Mapping[str, Sequence[int]], spans: Mapping[str, Sequence[float]]
                    ) -> dict[str, dict[str, object]]:
    """The summary's `quality` of a stage: per figure its sample count, least and greatest value,
    p5/p50/p95 (estimated from the histogram: within a bin's width, 1/20 of a bounded range) and the
    histogram itself."""
    out: dict[str, dict[str, object]] = {}
    for name, counts in sorted(histograms.items()):
        figure = FIGURES.get(name)
        if figure is None or len(counts) != len(figure.edges) - 1:
            continue
        span = spans.get(name) or ()
        out[name] = {"count": sum(counts), "min": _round(span[0]) if len(span) == 2 else None,
                     "max": _round(span[1]) if len(span) == 2 else None,
                     **{f"p{round(q * 100)}": _round(percentile(figure, counts, q, span)) for q in (0.05, 0.5, 0.95)},
                     "edges": [round(e, 6) for e in figure.edges], "counts": list(counts)}
    return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


EDGE_TOLERANCE_PX = 2
"""A boundary pixel this close to an image edge lies on it."""
CANNY_THRESHOLDS = (50, 150)
"""Image edges: Canny's hysteresis thresholds on the grayscale image blurred with sigma 1."""
ORIENTATIONS = 8
"""Edge directions told apart (bins of 22.5 degrees): an edge runs along the boundary when its gradient
is within one bin of the boundary's normal."""
STRAIGHT_EPSILON_PX = 1.5
"""Boundary segments are those of the contour simplified to within this distance (Douglas-Peucker)."""
OFF_EDGE_SHARE = 0.8
"""A straight boundary segment with at least this share of its length off image edges is a cut."""
FACE_SIDE_PX = 384
"""`facesOutside` looks for faces in the input scaled to at most this many pixels a side."""
MIN_HOLE_SHARE = 0.0005
"""Enclosed background regions smaller than this share of the frame are specks, not holes."""

RELIGHTING_MASK = (
    Figure("maskArea", "segment", "share of the frame", 0.0, 1.0,
           "mask pixels / frame pixels",
           "near 0: nobody found; near 1: the frame, not a person", worse="both", keep=(0.02, 0.95)),
    Figure("boundaryOnEdge", "segment", "share of the boundary", 0.0, 1.0,
           f"boundary pixels (not on the frame) within {EDGE_TOLERANCE_PX} px of an image edge running along the "
           f"boundary (Canny {CANNY_THRESHOLDS[0]}/{CANNY_THRESHOLDS[1]} on the blurred grayscale image, its "
           "gradient within about 34 degrees of the boundary's normal) / boundary pixels",
           "low: the outline runs through flat background or through the person, not along their outline",
           worse="low", keep=(0.6, None)),
    Figure("straightRunPx", "segment", "px (working size)", 0.0, None,
           f"the longest straight boundary segment (the contour simplified to {STRAIGHT_EPSILON_PX} px), not on "
           "the frame, whether or not an image edge runs along it (a curve of radius r gives segments of "
           "about 2·sqrt(3r) px: 27 px at r = 60)",
           "a large share of the image's height or width: a mask that follows a pole, a door frame or a box "
           "edge instead of the person (people's outlines are curved; a prop held in front of them, such as "
           "a helmet, gives a true straight stretch too, so there is no default bound)"),
    Figure("straightCutPx", "segment", "px (working size)", 0.0, None,
           f"the longest straight boundary segment (the contour simplified to {STRAIGHT_EPSILON_PX} px) with "
           f"at least {OFF_EDGE_SHARE:.0%} of its length where no image edge runs along it, not on the frame",
           "tens of px: a straight line cut into the background or the person (a box edge, a flag strip)"),
    Figure("straightCutShare", "segment", "share of the boundary", 0.0, 1.0,
           "straightCutPx / the boundary's length (not on the frame)",
           "above a few percent: a visible straight cut (a tenth: a tenth of the outline is one straight line "
           "through background)", keep=(None, 0.1)),
    Figure("holes", "segment", "count", 0.0, None,
           f"background regions enclosed by the mask, each at least {MIN_HOLE_SHARE:.2%} of the frame",
           "above 0 with cleanup.fillEnclosed on: cannot happen; off: a hole in a badge, between arm and torso"),
    Figure("components", "segment", "count", 0.0, None,
           "8-connected regions of the mask",
           "more than the people in the picture: specks of background kept"),
    Figure("frameTouch", "segment", "share of the boundary", 0.0, 1.0,
           "boundary pixels on the frame's outermost rows and columns / boundary pixels",
           "high: the person is cut off by the frame (a portrait's shoulders at the bottom are normal)"),
    Figure("cleanupFilled", "segment", "share of the mask", 0.0, 1.0,
           "pixels the cleanup added (enclosed background filled) / the final mask's pixels",
           "high: background the person encloses (between an arm and the torso) became person"),
    Figure("cleanupRemoved", "segment", "share of the found mask", 0.0, 1.0,
           "pixels the cleanup removed (regions below cleanup.minComponentShare) / the found mask's pixels",
           "high: a second person or a large part was dropped as a speck", keep=(None, 0.25)),
    Figure("facesOutside", "segment", "count", 0.0, None,
           "faces found in the input whose centre lies outside the mask: OpenCV's bundled frontal and profile "
           f"Haar cascades on the input at most {FACE_SIDE_PX} px a side, histogram-equalised (scale step 1.1, "
           "5 neighbours, at least a tenth of the short side); the classical backend's own search is that one "
           "(turned when no upright face is found), so its every face is counted, smaller ones included",
           "1 or more: a person in the picture is not in the mask (one of a group left out), or a face-like "
           "patch of the background was found", keep=(None, 0.0)),
)
"""The relighting mask's figures (segment stage), in each sample's `quality`."""

DARK_PERCENTILE = 5
"""`darkLift` compares the person's dark level: this percentile of L* inside the mask."""
BLOCK_PX = 8
"""`blockiness` looks for steps on this grid (JPEG's 8×8 blocks)."""
LIT_LIGHTNESS = 20.0
"""`saturationRatio` reads the pixels whose input L* is at least this: below it a pixel's a*, b* are JPEG
chroma and sensor noise (the albedo keeps them as they are there), and its colour is `darkLift`'s."""
COLOUR_SAMPLES = 4096
"""The pair's colour figures read the mask's pixels on a regular grid of at most about this many."""
_INSIDE = (f"inside the person mask (on a regular grid of at most about {COLOUR_SAMPLES:,} of its pixels), CIELAB "
           "(D65) of the input and the relit output (`{id}_composite.png`)")

RELIGHTING_PAIR = (
    Figure("lightingChange", "recombine", "L* (0-100)", 0.0, 100.0,
           f"mean |L*(output) − L*(input)| {_INSIDE}",
           "near 0: the pair shows no change of lighting (it teaches nothing); tens: the person is blown out "
           "or blacked out", worse="both", keep=(0.5, 40.0)),
    Figure("saturationRatio", "recombine", "ratio", 0.0, 2.0,
           f"saturation (ΣC*ab / ΣL*) of the output / of the input over the pixels whose input L* is at least "
           f"{LIT_LIGHTNESS:g}, {_INSIDE}; 1 where no pixel is that light. Saturation, not chroma: a relit person "
           "lit more dimly (the drawn ambient goes down to 0.6) loses chroma with lightness, and keeps its colour",
           "below 0.8: the relit person lost colour (greyed, washed out); above 1.25: colours pushed",
           worse="both", keep=(0.8, None)),
    Figure("deltaE00", "recombine", "ΔE00", 0.0, 100.0,
           f"mean CIEDE2000 colour difference (scikit-image, kL = kC = kH = 1) {_INSIDE}",
           "how far the pair's colours are apart (lighting included): near 0 as lightingChange; well above "
           "it, a colour shift the lighting does not explain"),
    Figure("darkLift", "recombine", "L* (0-100)", -100.0, 100.0,
           f"the {DARK_PERCENTILE}th percentile of L* of the output − of the input, {_INSIDE}",
           "above a few units: blacks lifted to grey (a dark suit turned charcoal); far below 0: shadows "
           "crushed to black", worse="both", keep=(-15.0, 8.0)),
    Figure("blockiness", "recombine", "ratio", 0.0, 4.0,
           f"mean luminance step across the {BLOCK_PX}-px grid's lines / across the blocks' middles, inside the "
           "mask, of the output over the same of the input",
           f"above 1: {BLOCK_PX}×{BLOCK_PX} blocks (an input's JPEG blocks) show more in the output than in "
           "the input", keep=(None, 1.5)),
)
"""The relighting pair's figures (recombine stage), in each sample's `quality`."""

RELIGHTING = RELIGHTING_MASK + RELIGHTING_PAIR
"""Every relighting figure: the mask's, then the pair's."""

TRIPLET_SIDE_PX = 128
"""difix's triplet figures read every k-th pixel in each direction, k the least that leaves at most this
many pixels a side."""
DARK_LEVEL = 8
"""`renderDark` counts render pixels at most this bright (8-bit luminance)."""
PSNR_CAP_DB = 100.0
"""The PSNR of identical images (infinite) is recorded as this."""

DIFIX_TRIPLET = (
    Figure("renderPsnr", "export", "dB", 0.0, PSNR_CAP_DB,
           f"PSNR of the render (`image.png`) against the target, 8-bit RGB, on every k-th pixel of both (at most "
           f"{TRIPLET_SIDE_PX} px a side; identical: {PSNR_CAP_DB:g})",
           "how hard the triplet is: high (above about 40) the render is already the target (nothing for DiFix to "
           "fix); very low (under about 8) a render of another view or a broken one", worse="both",
           keep=(5.0, 60.0)),
    Figure("renderSsim", "export", "SSIM", -1.0, 1.0,
           f"SSIM (scikit-image, 7 px window) of the render's and the target's luminance, on every k-th pixel of "
           f"both (at most {TRIPLET_SIDE_PX} px a side)",
           "near 1: nothing to fix; near 0 or below: the render shares no structure with the target", worse="both"),
    Figure("renderDark", "export", "share of the render", 0.0, 1.0,
           f"render pixels whose 8-bit luminance is at most {DARK_LEVEL} / all, on every k-th pixel (at most "
           f"{TRIPLET_SIDE_PX} px a side)",
           "near 1: an empty or black render (a camera outside the scene, a failed render)", keep=(None, 0.95)),
    Figure("refAngleDeg", "export", "degrees", 0.0, 180.0,
           "angle between the target's and the reference's viewing directions (from the scene's cameras)",
           "large (tens of degrees): the reference sees little of what the target sees (it overlaps little)"),
)
"""difix's triplet figures (export stage), in each sample's `meta.json` `quality`."""

_HELD_OUT = ("the trained 3DGS scene rendered at the held-out views (every `testEvery`-th; the training views when "
             "there are none: `metrics.json`'s `evaluated_on` says which) against their images, averaged")
GAUSSIANS = Figure("gaussians", "gaussians", "count", 0.0, 5_000_000.0,
                   "Gaussians in the scene's PLY",
                   "far below the stage's usual count: densification failed (a blurry scene); at `maxGaussians`: "
                   "capped", worse="low")
SCENE_3DGS = (
    Figure("scenePsnr", "gaussians", "dB", 0.0, 60.0, f"PSNR of {_HELD_OUT}",
           "low (under about 20): the scene does not reproduce its views (bad cameras, inconsistent generated "
           "views, too few steps)", worse="low"),
    Figure("sceneSsim", "gaussians", "SSIM", 0.0, 1.0, f"SSIM (11 px Gaussian window) of {_HELD_OUT}",
           "low: structure lost (floaters, blur)", worse="low"),
    Figure("sceneLpips", "gaussians", "LPIPS", 0.0, 1.0,
           f"LPIPS (AlexNet, v0.1; only where the `lpipsModel` is in the model location) of {_HELD_OUT}",
           "high: the renders look unlike the views"),
    GAUSSIANS,
)
"""worldexplorer's trained scene (its gaussians stage), in the stage's `metrics.json` and `quality`."""
WORLDEXPLORER_SCAFFOLD = (
    Figure("scaffoldHoleShare", "scaffold", "share of the view", 0.0, 1.0,
           "the in-between views' share of pixels their two neighbours' reprojection (by depth) leaves empty, "
           "averaged over the four views (`scaffold.json`'s `holeFraction`): what the inpainting had to invent",
           "high (above about 0.6): the neighbours barely overlap (depth or field of view off) and the "
           "in-between view is mostly invented"),
    Figure("scaffoldClipMin", "scaffold", "CLIP score", 0.0, 100.0,
           "the lowest CLIP score (100 × cosine of image and prompt embeddings, floored at 0) among the "
           "in-between views `selection: automatic` chose; not measured with `fast` or `manual`",
           "low (under about 20): a chosen view does not show what its neighbours' prompts describe",
           worse="low"),
)
"""worldexplorer's scaffold (its in-between views), in the stage's `quality`."""
WORLDEXPLORER = WORLDEXPLORER_SCAFFOLD + SCENE_3DGS
VISTADREAM_INIT = (
    Figure("inputViewPsnr", "gaussians", "dB", 0.0, 60.0,
           "PSNR of the initial 3DGS scene rendered at the input view against the input image",
           "low: the scene built from the image's depth does not reproduce the image itself", worse="low"),
    GAUSSIANS,
)
"""vistadream's initial scene (its gaussians stage)."""
VISTADREAM_COARSE = (
    Figure("coarseFrames", "coarse", "count", 0.0, None,
           "views coarse expansion added to the scene (`coarse_summary.json`'s `selected_extra_frames`, of "
           "`nFrames` attempts)",
           "0: no candidate view was in the inpainting band, the scene is the input view's alone "
           "(`coarse_summary.json`'s `diagnosis` says which setting to change); below `nFrames`: it stopped early",
           worse="low"),
)
"""vistadream's coarse expansion."""
VISTADREAM = VISTADREAM_INIT + VISTADREAM_COARSE

DUPLICATE_RADIUS = 8
"""The Hamming distance up to which `duplicateDistance` is exact (beyond it: "farther", one more): the
search for the nearest earlier scene is then multi-index hashing, not every pair (O(n^2): 1.5 hours at
a million scenes), and 8 bits is past the about 6 where scenes stop looking alike."""

REFERENCE_IMAGE = (
    Figure("objectArea", "annotation", "share of the image", 0.0, 1.0,
           "mask pixels (SAM2's, the label's) / image pixels",
           "near 0: a speck, not the object; near 1: the whole image taken for the object", worse="both",
           keep=(None, 0.9)),
    Figure("objects", "annotation", "count", 0.0, None,
           "connected regions of the mask (8-connected)",
           "above 1: the object in pieces (occluded, or a second thing taken with it); YOLO's one polygon then "
           "joins them with seams"),
    Figure("maskAgreement", "annotation", "IoU", 0.0, 1.0,
           "intersection over union of PerSAM's mask (after its cascade) and SAM2's refined mask",
           "low: the two models disagree on what the object is: one of them took the background or a part",
           worse="low", keep=(0.3, None)),
    Figure("polygonCoverage", "annotation", "IoU", 0.0, 1.0,
           "intersection over union of the label's polygon, filled, and the mask it was traced from",
           "low: the YOLO label does not describe the mask (a polygon that lost a region, or self-crossing)",
           worse="low", keep=(0.5, None)),
    Figure("sharpness", "annotation", "variance", 0.0, None,
           "variance of the Laplacian (3×3) of the image's 8-bit luminance",
           "low (tens): a blurred or flat generated image", worse="low"),
    Figure("duplicateDistance", "annotation", "bits", 0.0, DUPLICATE_RADIUS + 1.0,
           "a generated scene's (step 4) Hamming distance between its 64-bit perceptual hash (DCT pHash of the "
           f"32×32 luminance) and the nearest scene before it in id order among the execution's scenes, exact up "
           f"to {DUPLICATE_RADIUS}; {DUPLICATE_RADIUS + 1} where no earlier scene is that near (the first scene "
           "too); `04_dataset/metadata.json` names the nearest (`duplicateOf`). Not measured for step 5's "
           "variants",
           "0: the same picture as an earlier scene (the edit ignored its prompt or seed); under about 6: a "
           "near-duplicate. Only the later of two is low, so a `min` bound keeps one of each", worse="low",
           keep=(1.0, None)),
)
"""reference-object's per-image figures (annotation stage), in each image's marker params and `quality`."""

FIGURES = {f.name: f for f in RELIGHTING + DIFIX_TRIPLET + WORLDEXPLORER + VISTADREAM + REFERENCE_IMAGE}
"""Every figure by name."""


class QualityBound(GenfabModel):
    """Keep a sample only while the figure is within these bounds (either may be left out). A sample
    outside is dropped with `QualityOutOfRange`, naming the figure, its value and the bound; one whose
    figure was not measured is dropped too, saying so. A bound that would drop every sample (a `min` above
    its figure's range, a `max` below it) is refused."""

    rules = (Rule("!has(self.min) || !has(self.max) || self.min <= self.max", "`min` must not exceed `max`", "min",
                  lambda m: m.min is None or m.max is None or m.min <= m.max),)

    min: float | None = Field(None, ge=-1e12, le=1e12)
    """The least value kept (unset: no lower bound)."""
    max: float | None = Field(None, ge=-1e12, le=1e12)
    """The greatest value kept (unset: no upper bound)."""


def quality_rule(figures: Sequence[Figure]) -> Rule:
    """A pipeline block's rule: its `quality` names only its own figures (a near miss is suggested)."""
    names = [f.name for f in figures]

    def detail(block: object) -> str:
        unknown = [k for k in getattr(block, "quality", {}) if k not in names]
        near = difflib.get_close_matches(unknown[0], names, n=1) if unknown else []
        return (f"unknown figure {unknown[0]!r}" + (f" (did you mean {near[0]!r}?)" if near else "")
                + f"; allowed: {', '.join(names)}") if unknown else ""

    return Rule(f"self.quality.all(k, k in {json.dumps(names)})",
                f"`quality` names this pipeline's figures only: {', '.join(names)}", "quality",
                lambda m: all(k in names for k in m.quality), detail)


def quality_range_rule(figures: Sequence[Figure]) -> Rule:
    """A pipeline block's rule: a bound of a figure with a bounded range keeps some of that range (a
    `min` above it or a `max` below it would drop every sample, and a capped figure's `min` past its
    cap would silently keep what it was meant to drop)."""
    high = {f.name: f.high for f in figures if f.high is not None}
    low = {f.name: f.low for f in figures if f.high is not None}

    def outside(block: object) -> list[str]:
        out = []
        for name, bound in getattr(block, "quality", {}).items():
            if name not in high:
                continue
            span = f"the figure's range ({low[name]:g} to {high[name]:g}): it would drop every sample"
            if bound.min is not None and bound.min > high[name]:
                out.append(f"quality.{name}.min: {bound.min:g} is above {span}")
            if bound.max is not None and bound.max < low[name]:
                out.append(f"quality.{name}.max: {bound.max:g} is below {span}")
        return out

    def detail(block: object) -> str:
        found = outside(block)
        return found[0] if found else ""

    his, los = json.dumps({k: float(v) for k, v in high.items()}), json.dumps({k: float(v) for k, v in low.items()})
    return Rule(f"self.quality.all(k, !(k in {his}) || ((!has(self.quality[k].min) || self.quality[k].min <= {his}[k])"
                f" && (!has(self.quality[k].max) || self.quality[k].max >= {los}[k])))",
                "a `quality` bound must keep part of its figure's range", "quality",
                lambda m: not outside(m), detail)


def with_defaults(figures: Sequence[Figure], given: Mapping[str, QualityBound]) -> dict[str, QualityBound]:
    """The bounds a pipeline's samples are held to: each figure's default (`Figure.keep`) unless `given`
    names the figure (a bound with neither `min` nor `max` lifts the default), and what `given` adds."""
    out = {f.name: QualityBound(min=f.keep[0], max=f.keep[1]) for f in figures if f.keep is not None}
    out.update(given)
    return {name: bound for name, bound in sorted(out.items()) if bound.min is not None or bound.max is not None}


class QualityGate(GenfabModel):
    """The one keep-or-drop decision on quality bounds, as the plan fixes it for the stage that checks it
    (relighting's `organize`, reference-object's `annotation`, difix's `adapter`): every figure's default
    bound unless the spec's `quality` names the figure, so the defaults are in the plan and its hash."""

    bounds: dict[str, QualityBound] = Field(default_factory=dict)
    """The bounds a sample's figures must keep: the spec's `quality` over the figures' defaults
    (`with_defaults`). Only the checking stage's settings hold them: changing them re-runs that stage alone."""
    named: list[str] = Field(default_factory=list)
    """The figures the spec's `quality` names itself: a sample without one of those is dropped (one without
    a figure only a default bounds is kept: a sample made before genfab measured it)."""

    @classmethod
    def of(cls, figures: Sequence[Figure], given: Mapping[str, QualityBound]) -> QualityGate:
        return cls(bounds=with_defaults(figures, given), named=sorted(given))

    def missed(self, measured: Mapping[str, float]) -> str | None:
        """The first bound `measured` misses, in one line (the drop's detail, reason
        `genfab.api.reasons.QUALITY_OUT_OF_RANGE`); None: the sample is kept."""
        return out_of_range(measured, self.bounds, self.named)


@dataclass(frozen=True)
class Miss:
    """A `QualityOutOfRange` drop's detail read back: the figure, its value and the bound it missed."""

    figure: str
    value: str
    bound: str
    """`min 0.8`, `max 60`, or `not measured`."""


_MISS = re.compile(r"(?P<figure>\w+) (?P<value>\S+) (?:below|above) (?P<bound>(?:min|max) \S+)")


def read_miss(detail: str) -> Miss | None:
    """The detail `out_of_range` wrote, read back (None: not one of its lines)."""
    if detail.endswith(" not measured (a bound is set on it)"):
        return Miss(detail.split(" ", 1)[0], "not measured", "a bound is set on it")
    m = _MISS.fullmatch(detail.strip())
    return Miss(m["figure"], m["value"], m["bound"]) if m else None


def out_of_range(measured: Mapping[str, float], bounds: Mapping[str, QualityBound],
                 required: Collection[str] | None = None) -> str | None:
    """The first bound a sample misses, said in one line (`straightRunPx 84.02 above max 60`); None when
    every bounded figure is within its bounds. A figure the sample lacks misses its bound when it is
    `required` (a spec named it; None: every bounded figure), else it is not held to it (a default
    bound on a sample made before genfab measured that figure)."""
    for name, bound in sorted(bounds.items()):
        value = measured.get(name)
        if value is None:
            if required is not None and name not in required:
                continue
            return f"{name} not measured (a bound is set on it)"
        if bound.min is not None and value < bound.min:
            return f"{name} {value:g} below min {bound.min:g}"
        if bound.max is not None and value > bound.max:
            return f"{name} {value:g} above max {bound.max:g}"
    return None

"""Quality figures: what genfab measures of each sample it makes, declared once.

Each figure has a name (the key in a sample's `quality` record), the stage that computes it, its unit
and range, how it is computed and what a bad value looks like. The stages compute them where the sample
is made (`genfab.stages.*`), the docs list them from here, and a spec's thresholds name them.
"""

from __future__ import annotations

from dataclasses import dataclass


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
MIN_HOLE_SHARE = 0.0005
"""Enclosed background regions smaller than this share of the frame are specks, not holes."""

RELIGHTING_MASK = (
    Figure("maskArea", "segment", "share of the frame", 0.0, 1.0,
           "mask pixels / frame pixels",
           "near 0: nobody found; near 1: the frame, not a person"),
    Figure("boundaryOnEdge", "segment", "share of the boundary", 0.0, 1.0,
           f"boundary pixels (not on the frame) within {EDGE_TOLERANCE_PX} px of an image edge running along the "
           f"boundary (Canny {CANNY_THRESHOLDS[0]}/{CANNY_THRESHOLDS[1]} on the blurred grayscale image, its "
           "gradient within about 34 degrees of the boundary's normal) / boundary pixels",
           "low: the outline runs through flat background or through the person, not along their outline"),
    Figure("straightRunPx", "segment", "px (working size)", 0.0, None,
           f"the longest straight boundary segment (the contour simplified to {STRAIGHT_EPSILON_PX} px), not on "
           "the frame, whether or not an image edge runs along it (a curve of radius r gives segments of "
           "about 2·sqrt(3r) px: 27 px at r = 60)",
           "a large share of the image's height or width: a mask that follows a pole, a door frame or a box "
           "edge instead of the person (people's outlines are curved)"),
    Figure("straightCutPx", "segment", "px (working size)", 0.0, None,
           f"the longest straight boundary segment (the contour simplified to {STRAIGHT_EPSILON_PX} px) with "
           f"at least {OFF_EDGE_SHARE:.0%} of its length where no image edge runs along it, not on the frame",
           "tens of px: a straight line cut into the background or the person (a box edge, a flag strip)"),
    Figure("straightCutShare", "segment", "share of the boundary", 0.0, 1.0,
           "straightCutPx / the boundary's length (not on the frame)",
           "above a few percent: a visible straight cut"),
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
           "high: a second person or a large part was dropped as a speck"),
)
"""The relighting mask's figures (segment stage), in each sample's `quality`."""

FIGURES = {f.name: f for f in RELIGHTING_MASK}
"""Every figure by name."""

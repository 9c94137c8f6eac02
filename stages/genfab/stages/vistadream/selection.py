"""Coarse expansion's pose selection (the lab's vistadream `_next_frame`) and its diagnostics, pure.

Each candidate pose of the dense trajectory has an inpaint ratio: the fraction of its render that
the scene does not cover yet. The policy keeps candidates with ratio <= `coarseMaxInpaintRatio`,
outside ±`coarseAdjacentExclusion` of poses already selected, and >= `coarseMinInpaintRatio`, and
takes the largest ratio. With `coarseFallbackMode: closest` and nothing in band, it takes the
(non-adjacent) candidate closest to the band instead. When nothing is selected, `Diagnosis` says why
in the seed's `[COARSE][DIAG]` terms, and `hint` turns it into the one line a user tunes from.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

TOP_K = 5


@dataclass(frozen=True)
class Policy:
    min_ratio: float = 0.05
    max_ratio: float = 0.25
    adjacent_exclusion: int = 1
    fallback: Literal["none", "closest"] = "none"


@dataclass(frozen=True)
class Diagnosis:
    """Why no candidate was selected (seed `[COARSE][DIAG]`)."""

    valid: int
    ratio_min: float
    ratio_mean: float
    ratio_max: float
    below_min: int
    in_range: int
    above_max: int
    in_range_without_adj: int
    top: tuple[tuple[int, float], ...]
    """The largest ratios as (dense pose index, ratio)."""

    def to_dict(self) -> dict[str, Any]:
        return {"valid": self.valid, "ratio": {"min": self.ratio_min, "mean": self.ratio_mean, "max": self.ratio_max},
                "below_min": self.below_min, "in_range": self.in_range, "above_max": self.above_max,
                "in_range_without_adj": self.in_range_without_adj,
                "top_k": [{"dense_pose_index": i, "inpaint_ratio": r} for i, r in self.top]}


@dataclass(frozen=True)
class Choice:
    index: int | None
    """The selected dense pose index, or None."""
    ratio: float | None = None
    fallback: bool = False
    """Chosen by `coarseFallbackMode: closest` with a ratio outside the band."""
    diagnosis: Diagnosis | None = None


def _adjacent(index: int, selected: Collection[int], exclusion: int) -> bool:
    return any(abs(index - s) <= exclusion for s in selected)


def _distance_to_band(ratio: float, policy: Policy) -> float:
    return max(policy.min_ratio - ratio, ratio - policy.max_ratio, 0.0)


def select_next(ratios: Sequence[float], selected: Collection[int], policy: Policy) -> Choice:
    """The next pose for coarse expansion. `ratios[i]` is candidate i's inpaint ratio (NaN: its
    render failed; such candidates are never chosen)."""
    valid = [(i, r) for i, r in enumerate(ratios) if math.isfinite(r)]
    free = [(i, r) for i, r in valid if not _adjacent(i, selected, policy.adjacent_exclusion)]
    in_band = [(i, r) for i, r in free if policy.min_ratio <= r <= policy.max_ratio]
    if in_band:
        index, ratio = max(in_band, key=lambda c: (c[1], -c[0]))
        return Choice(index, ratio)
    diagnosis = diagnose(valid, selected, policy)
    if policy.fallback == "closest" and free:
        index, ratio = min(free, key=lambda c: (_distance_to_band(c[1], policy), -c[1], c[0]))
        return Choice(index, ratio, fallback=True, diagnosis=diagnosis)
    return Choice(None, diagnosis=diagnosis)


def diagnose(valid: Sequence[tuple[int, float]], selected: Collection[int], policy: Policy) -> Diagnosis:
    values = [r for _, r in valid]
    band = [(i, r) for i, r in valid if policy.min_ratio <= r <= policy.max_ratio]
    top = tuple(sorted(valid, key=lambda c: (-c[1], c[0]))[:TOP_K])
    return Diagnosis(
        valid=len(values),
        ratio_min=min(values, default=math.nan), ratio_mean=sum(values) / len(values) if values else math.nan,
        ratio_max=max(values, default=math.nan),
        below_min=sum(r < policy.min_ratio for r in values), above_max=sum(r > policy.max_ratio for r in values),
        in_range=sum(not _adjacent(i, selected, policy.adjacent_exclusion) for i, _ in band),
        in_range_without_adj=len(band), top=top)


def hint(d: Diagnosis, policy: Policy) -> str:
    """Why nothing was selected, in the terms of the knobs that change it (seed's tuning guide)."""
    if d.valid == 0:
        return "no candidate pose could be rendered"
    if d.ratio_max < policy.min_ratio:
        return (f"holes too small (max {d.ratio_max:.3f} < min {policy.min_ratio:.3f}): move the camera more "
                "(trajForwardRatio, trajBackwardRatio, trajMaxPercentage), raise coarseMargin or lower "
                "coarseMinInpaintRatio")
    if d.ratio_min > policy.max_ratio:
        return (f"holes too large (min {d.ratio_min:.3f} > max {policy.max_ratio:.3f}): raise "
                "coarseMaxInpaintRatio or move the camera less")
    if d.in_range == 0 and d.in_range_without_adj > 0:
        return (f"blocked by adjacency exclusion ({d.in_range_without_adj} in range within "
                f"±{policy.adjacent_exclusion} of selected poses): lower coarseAdjacentExclusion or raise "
                "coarseDenseMultiplier")
    return (f"no candidate in [{policy.min_ratio:.3f}, {policy.max_ratio:.3f}] ({d.below_min} below, "
            f"{d.above_max} above): widen the band or set coarseFallbackMode: closest")


def diagnostic_lines(d: Diagnosis) -> list[str]:
    """The seed's `[COARSE][DIAG]` log lines."""
    top = ", ".join(f"{i}:{r:.3f}" for i, r in d.top)
    return [f"[COARSE][DIAG] inpaint_ratio(valid) stats: min={d.ratio_min:.4f} mean={d.ratio_mean:.4f} "
            f"max={d.ratio_max:.4f}",
            f"[COARSE][DIAG] counts(valid): below_min={d.below_min} in_range={d.in_range} above_max={d.above_max} "
            f"(in_range_without_adj={d.in_range_without_adj})",
            f"[COARSE][DIAG] topK(idx:ratio)={top}"]


@dataclass(frozen=True)
class AddedFrame:
    dense_pose_index: int
    inpaint_ratio: float
    inpaint_pixels: int
    inpaint_wo_edge_pixels: int
    added_splats: int
    fallback: bool = False


@dataclass
class CoarseSummary:
    """`coarse_summary.json`: what coarse expansion added (seed `[COARSE] Summary`)."""

    attempts: int
    frames: list[AddedFrame] = field(default_factory=list)
    scene_frames: int = 0
    gaussian_frames: int = 0
    total_splats: int = 0
    diagnosis: Diagnosis | None = None
    """Why the last attempt selected nothing (None when every attempt selected a frame)."""
    hint: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "selected_extra_frames": len(self.frames), "attempts": self.attempts,
            "frames": [vars(f) for f in self.frames],
            "scene_frames": self.scene_frames, "gaussian_frames": self.gaussian_frames,
            "total_splats": self.total_splats}
        if self.diagnosis is not None:
            out["diagnosis"] = {**self.diagnosis.to_dict(), "hint": self.hint}
        return out

    def lines(self) -> list[str]:
        """The seed's `[COARSE] Summary` log lines (and `[COARSE][DIAG]` when selection stopped)."""
        out = [f"[COARSE] Summary: selected_extra_frames={len(self.frames)}/{self.attempts}"]
        out += [f"[COARSE]   frame {k}: dense_pose_index={f.dense_pose_index} inpaint_ratio={f.inpaint_ratio:.4f} "
                f"inpaint_pixels={f.inpaint_pixels} inpaint_wo_edge_pixels={f.inpaint_wo_edge_pixels} "
                f"added_splats={f.added_splats}" + (" (fallback_mode=closest)" if f.fallback else "")
                for k, f in enumerate(self.frames)]
        out.append(f"[COARSE]   scene_frames={self.scene_frames} gaussian_frames={self.gaussian_frames} "
                   f"total_splats={self.total_splats}")
        if self.diagnosis is not None:
            out += diagnostic_lines(self.diagnosis)
        return out

    def status(self) -> str:
        """One line for the resource's status message."""
        head = f"selected {len(self.frames)}/{self.attempts} extra frames"
        if not self.frames and self.hint:
            return f"{head}: {self.hint}"
        stopped = f"; then stopped: {self.hint}" if self.hint else ""
        return f"{head}, {sum(f.added_splats for f in self.frames)} splats added{stopped}"

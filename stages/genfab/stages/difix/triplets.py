"""Which triplets a scene gives, pure: targets (cameras x every `frameStride`-th frame), the reference
view per `referenceView`, and why a candidate is dropped before any file is opened (skipped frame,
missing ground truth, render or reference). What needs the pixels (unreadable files, masks, sizes)
is decided by the export while it copies."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass

from genfab.stages.difix.layouts import FrameKey, frame_order

REASONS = ("skipped_frame", "missing_ground_truth", "missing_render", "missing_reference", "missing_mask",
           "masks_below_threshold", "size_mismatch", "unreadable", "empty", "too_large")
"""Every reason `meta/dropped_samples.csv` can give."""
Strategy = str  # "fixed-camera" | "nearest-camera" | "random-camera"


@dataclass(frozen=True)
class Triplet:
    target_cam: int
    frame: str
    reference_cam: int
    reference_frame: str


@dataclass(frozen=True)
class Drop:
    target_cam: int
    frame: str
    reference_cam: int | None
    reference_frame: str | None
    reason: str
    detail: str


def frame_value(frame: str) -> str:
    """Numeric frame ids compare by value (`5` = `000005`)."""
    return str(int(frame)) if frame.isdigit() else frame


def skip_set(entries: Iterable[str], scene_name: str, source_name: str, csv_text: str | None) -> set[str]:
    """The scene's skipped frames (by `frame_value`): `skipFrames` entries for every scene or this one
    (`<scene>:<frame>`, the scene as in sample ids or without the source prefix), plus the scene's own
    `skip_frames.csv` (the lab's format: frame indices, comma separated)."""
    out: set[str] = set()
    names = {scene_name, scene_name.removeprefix(f"{source_name}_")}
    for entry in entries:
        scene, sep, frame = entry.rpartition(":")
        if not sep or scene in names:
            out.add(frame_value(frame))
    if csv_text:
        out.update(frame_value(v.strip()) for line in csv_text.splitlines() for v in line.split(",") if v.strip())
    return out


def offset_frame(frame: str, offset: int, frames: Sequence[str]) -> str:
    """The frame `offset` after `frame`: numeric ids by value (the scene's own spelling when it has that
    frame, else zero-padded like `frame`), others by position in the scene's frame order."""
    if offset == 0:
        return frame
    if frame.isdigit():
        value = int(frame) + offset
        known = {int(f): f for f in frames if f.isdigit()}
        return known.get(value, str(value).zfill(len(frame)) if value >= 0 else str(value))
    at = list(frames).index(frame) + offset
    return frames[at] if 0 <= at < len(frames) else f"{frame}{offset:+d}"


def nearest_camera(target: int, cameras: Collection[int], distance: Callable[[int, int], tuple[float, float]]
                   ) -> int | None:
    """The other camera nearest by pose: centre distance, then viewing angle, then id."""
    others = sorted(c for c in cameras if c != target)
    return min(others, key=lambda c: (*distance(target, c), c)) if others else None


def random_camera(target: int, cameras: Collection[int], seed: int, scene: str, frame: str) -> int | None:
    """A random other camera, fixed by (seed, scene, target camera, frame): the same in every run."""
    others = sorted(c for c in cameras if c != target)
    if not others:
        return None
    digest = hashlib.sha256(f"{seed}:{scene}:{target}:{frame}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "little")).choice(others)


@dataclass(frozen=True)
class Selection:
    """What picks the triplets of one scene (the source's and `referenceView`'s settings)."""

    target_cameras: Sequence[int] | None
    frame_stride: int
    strategy: Strategy
    reference_cam: int | None
    frame_offset: int
    seed: int


def plan_scene(scene: str, cameras: Collection[int], ground_truth: Collection[FrameKey],
               has_render: Callable[[int, str], bool], skipped: Collection[str], sel: Selection,
               distance: Callable[[int, int], tuple[float, float]]) -> tuple[list[Triplet], list[Drop]]:
    """Every candidate (target camera, frame) of the scene, in (frame, camera) order: a triplet or a drop."""
    gt = set(ground_truth)
    frames = sorted({f for _, f in gt}, key=frame_order)
    picked = frames[::sel.frame_stride]
    targets = sorted(sel.target_cameras) if sel.target_cameras is not None else sorted(cameras)
    if sel.strategy == "fixed-camera":
        targets = [c for c in targets if c != sel.reference_cam]  # its own ground truth is no reference
    triplets: list[Triplet] = []
    drops: list[Drop] = []
    for frame in picked:
        for cam in targets:
            if frame_value(frame) in skipped:
                drops.append(Drop(cam, frame, None, None, "skipped_frame", f"frame {frame} is in the skip list"))
                continue
            if (cam, frame) not in gt:
                drops.append(Drop(cam, frame, None, None, "missing_ground_truth",
                                  f"no ground-truth image of camera {cam} at frame {frame}"))
                continue
            if not has_render(cam, frame):
                drops.append(Drop(cam, frame, None, None, "missing_render",
                                  f"no render of camera {cam} at frame {frame}"))
                continue
            if sel.strategy == "fixed-camera":
                ref = sel.reference_cam
            elif sel.strategy == "nearest-camera":
                ref = nearest_camera(cam, cameras, distance)
            else:
                ref = random_camera(cam, cameras, sel.seed, scene, frame)
            if ref is None:
                drops.append(Drop(cam, frame, None, None, "missing_reference", "the scene has no other camera"))
                continue
            ref_frame = offset_frame(frame, sel.frame_offset, frames)
            if frame_value(ref_frame) in skipped:
                drops.append(Drop(cam, frame, ref, ref_frame, "skipped_frame",
                                  f"reference frame {ref_frame} is in the skip list"))
                continue
            if (ref, ref_frame) not in gt:
                drops.append(Drop(cam, frame, ref, ref_frame, "missing_reference",
                                  f"no ground-truth image of camera {ref} at frame {ref_frame}"))
                continue
            triplets.append(Triplet(cam, frame, ref, ref_frame))
    return triplets, drops

"""The relighting mask's quality figures as a classifier: how many poor masks the default bounds drop and how
many good ones they keep, per segmentation backend, on a labelled set of person photos.

A labelled set is a JSON file (`benchmarks/data/mask_labels.json` by default): its `rule` says when a mask is
good, and per photo the points read off the picture that lie on a person (`person`) and off everyone
(`background`). A mask is good when every person point is on it and every background point off it, poor
otherwise. Each photo is segmented by each backend as the segment stage does it (the backend, the cleanup,
`split_and_encode`'s figures), labelled by the rule, and held to the default bounds of the mask's figures
(`QualityGate.of(RELIGHTING_MASK, {})`, the bounds `organize` applies to them). The same process runs every
backend on every photo, so the rows compare the backends on the same pictures.

    python benchmarks/mask_quality.py                          # prints the tables
    python benchmarks/mask_quality.py --write                  # also writes benchmarks/results/mask_quality.md
    python benchmarks/mask_quality.py --labels my_labels.json --backends selfie
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from genfab.api.quality import RELIGHTING_MASK, QualityGate
from genfab.api.relighting import MaskCleanup, RelightingInput
from genfab.stages.relighting.images import decode_color
from genfab.stages.relighting.person_model import SelfieBackend
from genfab.stages.relighting.segment_stage import MIN_AREA, SplitJob, classical_mask, split_and_encode

REPO = Path(__file__).resolve().parents[1]
LABELS = REPO / "benchmarks" / "data" / "mask_labels.json"
RESULTS = REPO / "benchmarks" / "results" / "mask_quality.md"
BACKENDS = ("selfie", "classical")


@dataclass(frozen=True)
class Judged:
    photo: str
    backend: str
    good: bool
    wrong: str
    """Which probe points the mask got wrong (empty for a good mask)."""
    missed: str | None
    """The bound the default gate drops it for (None: kept)."""
    seconds: float


def segment(backend: str, image: np.ndarray, selfie: SelfieBackend | None) -> tuple[np.ndarray | None, dict[str, Any]]:
    """The mask and figures the segment stage writes for `image` (None: nobody found, `EmptyMask`)."""
    cleanup = MaskCleanup().pair()
    if backend == "selfie":
        assert selfie is not None
        found, refine = selfie.probability(image), True
    else:
        found, refine = classical_mask({"image": image, "seed": 0})["mask"], False
    if float(np.asarray(found, np.float32).mean()) < MIN_AREA:
        return None, {}
    done = split_and_encode(SplitJob(id="x", image=image, mask=found, backend=backend, info={}, cleanup=cleanup,
                                     refine=refine))
    mask = cv2.imdecode(np.frombuffer(done["files"]["x_mask.png"], np.uint8), cv2.IMREAD_GRAYSCALE) > 127
    return mask, done["params"]["quality"]


def judge(labels: dict[str, Any], backends: tuple[str, ...]) -> list[Judged]:
    gate = QualityGate.of(RELIGHTING_MASK, {})
    selfie = SelfieBackend() if "selfie" in backends else None
    out = []
    for path, photo in labels["photos"].items():
        raw = (REPO / path).read_bytes()
        image = decode_color(raw, RelightingInput.model_fields["max_side"].default)
        for backend in backends:
            started = time.perf_counter()
            mask, figures = segment(backend, image, selfie)
            seconds = time.perf_counter() - started
            if mask is None:
                out.append(Judged(path, backend, False, "nobody found", "EmptyMask", seconds))
                continue
            wrong = [f"person {tuple(p)}" for p in photo["person"] if not mask[p[1], p[0]]]
            wrong += [f"background {tuple(p)}" for p in photo["background"] if mask[p[1], p[0]]]
            out.append(Judged(path, backend, not wrong, ", ".join(wrong), gate.missed(figures), seconds))
    return out


def tables(judged: list[Judged], backends: tuple[str, ...]) -> list[str]:
    lines = ["| backend | masks | good | poor | poor dropped | good kept | s / photo |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for backend in backends:
        rows = [j for j in judged if j.backend == backend]
        good = [j for j in rows if j.good]
        poor = [j for j in rows if not j.good]
        dropped = sum(1 for j in poor if j.missed)
        kept = sum(1 for j in good if not j.missed)
        lines.append(f"| {backend} | {len(rows)} | {len(good)} | {len(poor)} | {dropped} of {len(poor)} | "
                     f"{kept} of {len(good)} | {np.mean([j.seconds for j in rows]):.2f} |")
    lines += ["", "| photo | backend | mask (by the rule) | what it got wrong | the default bounds |",
              "| --- | --- | --- | --- | --- |"]
    for j in judged:
        lines.append(f"| {Path(j.photo).name} | {j.backend} | {'good' if j.good else 'poor'} | {j.wrong or '-'} | "
                     f"{'dropped: ' + j.missed if j.missed else 'kept'} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, default=LABELS)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    backends = tuple(b for b in args.backends.split(",") if b)
    labels = json.loads(args.labels.read_text())
    judged = judge(labels, backends)
    body = tables(judged, backends)
    print("\n".join(body))
    if args.write:
        head = [
            "# Mask quality figures as a classifier", "",
            f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, OpenCV "
            f"{version('opencv-python-headless')}; `python benchmarks/mask_quality.py --write` "
            f"(labels: `{args.labels.relative_to(REPO) if args.labels.is_relative_to(REPO) else args.labels}`, "
            f"{len(labels['photos'])} photo(s)).", "",
            f"The rule: {labels['rule']}", "",
            "What this set can and cannot show: its photos are the four public-domain portraits genfab ships "
            "(one person each, plain backgrounds). The other person photos with a public-domain or CC0 licence "
            "found in packages of the registries these machines reach (PyPI, Debian, npm) are more portraits of "
            "the same two presidents (face_recognition's test images) and scikit-image's grayscale cameraman. "
            "A classifier's rates need a set "
            "of at least 30 with hard cases (two or more people, dark clothes on a dark background, raised "
            "arms, children, busy backgrounds); `--labels` runs one, labelled by the same rule. On these four "
            "the classical backend's two poor masks (Hopper's flag strip, Obama's ear) pass every default "
            "bound: no figure measures a part of a person left out, and the strip's straight edge runs along "
            "the pole's own edge.", "",
            "Default bounds: " + ", ".join(f"`{n}` {b.model_dump(exclude_none=True)}"
                                           for n, b in QualityGate.of(RELIGHTING_MASK, {}).bounds.items()) + ".", ""]
        RESULTS.write_text("\n".join(head + body) + "\n")
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()

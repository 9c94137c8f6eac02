"""worldexplorer's manual selection gate as seen in an output's listing (pure): which samples still
lack final views, and for each such in-between view its candidates and the two views beside it."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from genfab.api.pipelines.worldexplorer import GAP_VIEWS, SCAFFOLD_DIR, candidate_key, final_key
from genfab.inventory.gates import lacking

CANDIDATE = re.compile(rf"(.+)/{re.escape(SCAFFOLD_DIR)}candidates/(\d{{3}})_(\d+)\.png")
FINAL = re.compile(rf"(.+)/{re.escape(SCAFFOLD_DIR)}final/(\d{{3}})\.png")


@dataclass(frozen=True)
class GapChoice:
    view: str
    candidates: tuple[int, ...]
    chosen: bool
    """Its final view is there already (chosen earlier, or by hand)."""
    neighbours: tuple[str, str]
    """The views beside it (left, right): what the candidate must join."""


@dataclass(frozen=True)
class Waiting:
    sample: str
    gaps: tuple[GapChoice, ...]


def folder_of(sample: str) -> str:
    """A sample's scaffold folder, relative to the gated stage's output (the output's root)."""
    return f"{sample}/{SCAFFOLD_DIR}"


def neighbours(view: str) -> tuple[str, str]:
    v = int(view)
    return f"{(v - 1) % 8:03d}", f"{(v + 1) % 8:03d}"


def waiting_samples(keys: Iterable[str]) -> list[Waiting]:
    """Samples with candidates whose final views are not all there, in sample order."""
    candidates: dict[str, dict[str, set[int]]] = {}
    finals: dict[str, set[str]] = {}
    for key in keys:
        if m := CANDIDATE.fullmatch(key):
            candidates.setdefault(m.group(1), {}).setdefault(m.group(2), set()).add(int(m.group(3)))
        elif m := FINAL.fullmatch(key):
            finals.setdefault(m.group(1), set()).add(m.group(2))
    out = []
    for sample in sorted(candidates):
        have = finals.get(sample, set())
        if not lacking(GAP_VIEWS, have):
            continue
        out.append(Waiting(sample, tuple(GapChoice(g, tuple(sorted(candidates[sample].get(g, ()))), g in have,
                                                   neighbours(g)) for g in GAP_VIEWS)))
    return out


def shown_keys(waiting: Iterable[Waiting]) -> set[str]:
    """The keys the review page may show: the waiting samples' candidates and final views."""
    keys: set[str] = set()
    for w in waiting:
        folder = folder_of(w.sample)
        for gap in w.gaps:
            keys.update(folder + candidate_key(gap.view, k) for k in gap.candidates)
            keys.update(folder + final_key(v) for v in (gap.view, *gap.neighbours))
    return keys

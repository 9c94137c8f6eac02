"""The scaffold's quality figures (`genfab.api.quality.WORLDEXPLORER_SCAFFOLD`) from its per-gap record
(`scaffold.json`'s `gaps`): how much of the in-between views was invented, and how well the chosen
candidates match their prompts where CLIP chose them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from genfab.api.quality import WORLDEXPLORER_SCAFFOLD


def scaffold_figures(gaps: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """`scaffoldHoleShare` (the gaps' mean hole fraction) and, where every gap has CLIP scores and a
    chosen candidate, `scaffoldClipMin`."""
    figures: dict[str, float] = {}
    holes = [float(g["holeFraction"]) for g in gaps.values()]
    if holes:
        figures["scaffoldHoleShare"] = round(sum(holes) / len(holes), 4)
    chosen = [float(g["scores"][g["chosen"]]) for g in gaps.values()
              if g.get("scores") and isinstance(g.get("chosen"), int)]
    if chosen and len(chosen) == len(gaps):
        figures["scaffoldClipMin"] = round(min(chosen), 4)
    assert set(figures) <= {f.name for f in WORLDEXPLORER_SCAFFOLD}  # one declaration: only declared names
    return figures

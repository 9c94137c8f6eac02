"""The run report (`genfab report`, written by `genfab run` at the end of every run): a self-contained
HTML report in `{output}/_genfab/report/` of what a run made, per pipeline what a person checks, and
the review page of worldexplorer's manual selection (`genfab review`).

Needs Pillow (the thumbnails; `report_unavailable()` says so in one line) and matplotlib for the charts
(without it the report says in place of each chart, and the run's line says, that none was drawn);
both are the `report` extra."""

from __future__ import annotations

import importlib.util

EXTRA_HINT = "pip install 'genfab[report]'"


def report_unavailable() -> str | None:
    """One line when Pillow is missing, else None."""
    if importlib.util.find_spec("PIL") is None:
        return f"the report needs Pillow ({EXTRA_HINT})"
    return None


def charts_unavailable() -> str | None:
    """One line when matplotlib is missing (the report is written without its charts), else None."""
    if importlib.util.find_spec("matplotlib") is None:
        return f"charts not drawn: matplotlib is not installed ({EXTRA_HINT})"
    return None

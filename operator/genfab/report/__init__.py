"""The run report (`genfab report`, written by `genfab run` at the end of every run): a self-contained
HTML report in `{output}/_genfab/report/` of what a run made, per pipeline what a person checks, and
the review page of worldexplorer's manual selection (`genfab review`).

Needs Pillow and matplotlib (the `report` extra); `report_unavailable()` says so in one line."""

from __future__ import annotations

import importlib.util

EXTRA_HINT = "pip install 'genfab[report]'"


def report_unavailable() -> str | None:
    """One line when Pillow or matplotlib is missing, else None."""
    missing = [name for module, name in (("PIL", "Pillow"), ("matplotlib", "matplotlib"))
               if importlib.util.find_spec(module) is None]
    if not missing:
        return None
    return f"the report needs {' and '.join(missing)} ({EXTRA_HINT})"

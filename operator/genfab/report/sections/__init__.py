"""Each pipeline's sections of the run report, from the output's listing (pure: the listing's `read`
is the only way to the data)."""

from __future__ import annotations

from collections.abc import Callable

from genfab.report.model import Listing, Section
from genfab.report.sections.datasets import difix, reference_object, relighting
from genfab.report.sections.run import run_section
from genfab.report.sections.scenes import vistadream, worldexplorer
from genfab.report.sections.tuning import tuning

PIPELINES: dict[str, Callable[[Listing], Section | tuple[Section, ...]]] = {
    "relighting": relighting, "difix": difix, "reference-object": reference_object,
    "worldexplorer": worldexplorer, "vistadream": vistadream, "tuning-difix": tuning,
}
"""The summary's `pipeline` -> its section; another pipeline (a custom one) gets the run section only."""


def sections(listing: Listing) -> list[Section]:
    build = PIPELINES.get(str(listing.summary.pipeline))
    built = build(listing) if build else ()
    return [*(built if isinstance(built, tuple) else (built,)), run_section(listing)]  # the pictures first

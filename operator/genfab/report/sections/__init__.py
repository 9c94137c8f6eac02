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
    built = _guarded(listing.summary.pipeline or "run", lambda: build(listing)) if build else ()
    run = _guarded("run", lambda: run_section(listing))
    return [*(built if isinstance(built, tuple) else (built,)), *(run if isinstance(run, tuple) else (run,))]


def _guarded(name: str, build: Callable[[], Section | tuple[Section, ...]]) -> Section | tuple[Section, ...]:
    """A section, or one saying why it is missing: a document of the output with a value genfab never
    writes (a tenant's, a broken disk's) costs its section, not the report."""
    try:
        return build()
    except Exception as exc:  # any of the output's documents: the report goes on
        return Section(f"{name}: not shown", notes=(
            f"this section could not be built from the output's documents ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:200]})",))

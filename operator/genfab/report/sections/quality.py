"""The report's view of the samples' quality figures (genfab.api.quality): a histogram per figure from
the run's summary, and a worst-first gallery per figure from the stages' quality tables (one JSON per
shard, `{sample: {figure: value}}`), read once and kept to the worst few per figure while read."""

from __future__ import annotations

import bisect
import heapq
import json
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from genfab.api.quality import FIGURES, Figure
from genfab.api.summary import StageRow
from genfab.contract.names import quality_prefix
from genfab.report.model import Facts, Gallery, Listing, Plot, Row, Section, Series, Table

WORST = 8
"""Samples a worst-first gallery shows."""


def _stages_with_figures(listing: Listing) -> list[StageRow]:
    return [s for s in listing.summary.stages if s.figures]


def quality_plots(listing: Listing) -> tuple[Plot, ...]:
    """A histogram per figure of every stage that measured some (the summary's bins and counts)."""
    plots = []
    for stage in _stages_with_figures(listing):
        for name, hist in sorted((stage.figures or {}).items()):
            figure = FIGURES.get(name)
            edges, counts = hist.get("edges") or [], hist.get("counts") or []
            if figure is None or len(edges) != len(counts) + 1:
                continue
            labels = tuple(f"{edges[i]:.3g}" for i in range(len(counts)))
            plots.append(Plot(f"quality-{stage.name}-{name}", f"{name}: {percentiles(hist)}", "bar",
                              (Series("samples", (), tuple(float(c) for c in counts)),),
                              xlabel=f"{figure.unit} (each bar: from its lower edge)", ylabel="samples",
                              names=labels))
    return tuple(plots)


def percentiles(hist: Mapping[str, Any]) -> str:
    """p5 / p50 / p95 as what they are: read off the summary's histogram (interpolated within a bin), so
    about, not exact, and never said to be past the least or greatest value."""
    return (f"p5 ≈ {hist.get('p5')} · p50 ≈ {hist.get('p50')} · p95 ≈ {hist.get('p95')} "
            f"(from a {len(hist.get('counts') or [])}-bin histogram)")


def badness(figure: Figure, value: float, middle: float) -> float:
    """How bad a value is, larger worse (`Figure.worse`)."""
    return -value if figure.worse == "low" else abs(value - middle) if figure.worse == "both" else value


CACHED_TABLES = 4
"""Quality tables `FigureColumns` keeps decoded (samples.csv asks for samples in order: one at a time)."""
OVERLAP_SCAN = 8
"""Tables before the bisected one `FigureColumns` also looks in (shards' id ranges seldom overlap)."""


def _table(listing: Listing, key: str) -> dict[str, Any]:
    try:
        table = json.loads(listing.read(key) or b"{}")
    except (ValueError, RecursionError):
        return {}
    return table if isinstance(table, dict) else {}


class FigureColumns:
    """A stage's quality figures as columns of `samples.csv` (`model.SampleColumns`): each sample's values
    are looked up in the one quality table whose id range holds it (the ranges are noted while the
    worst-first pass reads every table once), a few decoded tables kept: memory stays a few shards' worth
    at a million samples."""

    def __init__(self, listing: Listing, names: tuple[str, ...]) -> None:
        self.listing, self.names = listing, names
        self._ranges: list[tuple[str, str, str]] = []  # (first id, last id, table key), sorted after `seal`
        self._firsts: list[str] = []
        self._cache: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def note(self, key: str, table: Mapping[str, Any]) -> None:
        if table:
            self._ranges.append((min(table), max(table), key))

    def seal(self) -> FigureColumns:
        self._ranges.sort()
        self._firsts = [first for first, _, _ in self._ranges]
        return self

    def _decoded(self, key: str) -> dict[str, Any]:
        if key in self._cache:
            self._cache.move_to_end(key)
        else:
            self._cache[key] = _table(self.listing, key)
            if len(self._cache) > CACHED_TABLES:
                self._cache.popitem(last=False)
        return self._cache[key]

    def values(self, sample: str) -> tuple[str, ...]:
        """The sample's figures in `names` order (a blank for one it lacks)."""
        at = bisect.bisect_right(self._firsts, sample) - 1
        for first, last, key in reversed(self._ranges[max(0, at - OVERLAP_SCAN):at + 1]):
            if first <= sample <= last and isinstance(measured := self._decoded(key).get(sample), dict):
                return tuple(_cell(measured.get(name)) for name in self.names)
        return ("",) * len(self.names)


def _cell(value: object) -> str:
    return f"{value:.6g}" if isinstance(value, int | float) and not isinstance(value, bool) else ""


def worst_samples(listing: Listing, stage: StageRow, columns: FigureColumns | None = None
                  ) -> dict[str, list[tuple[float, str]]]:
    """Per figure, its worst `WORST` (value, sample) of the stage's quality tables, worst first; each
    table's id range noted in `columns` as it is read."""
    prefix = quality_prefix(stage.name, stage.config_hash or "")
    middles = {name: float(h.get("p50") or 0.0) for name, h in (stage.figures or {}).items()}
    heaps: dict[str, list[tuple[float, float, str]]] = {}
    for key in listing.under(prefix):
        table = _table(listing, key)
        if columns is not None:
            columns.note(key, table)
        for sample, measured in table.items():
            for name, value in (measured.items() if isinstance(measured, dict) else ()):
                figure = FIGURES.get(name)
                if figure is None or not isinstance(value, int | float):
                    continue
                item = (badness(figure, float(value), middles.get(name, 0.0)), float(value), str(sample))
                heap = heaps.setdefault(name, [])
                (heapq.heappush if len(heap) < WORST else heapq.heappushpop)(heap, item)
    return {name: [(v, s) for _, v, s in sorted(heap, reverse=True)] for name, heap in heaps.items()}


def quality_galleries(listing: Listing, row: Callable[[str], Row], columns: tuple[str, ...],
                      describe: Callable[[Mapping[str, Any]], Facts] | None
                      ) -> tuple[tuple[Gallery, ...], tuple[FigureColumns, ...]]:
    """A worst-first gallery per figure: the samples the figure says are worst, its value shown first;
    and each stage's figures as `samples.csv` columns."""
    galleries, tables = [], []
    for stage in _stages_with_figures(listing):
        names = tuple(name for name in FIGURES if name in (stage.figures or {}))
        lookup = FigureColumns(listing, names)
        worst = worst_samples(listing, stage, lookup)
        tables.append(lookup.seal())
        if _counted(stage) <= WORST:  # every sample is in the section's own gallery: a table says it all
            continue
        for name, worst_of in sorted(worst.items()):
            figure = FIGURES[name]
            rows = []
            for value, sample in worst_of:
                made = row(sample)
                rows.append(Row(made.sample, made.pictures, ((name, f"{value:.4g}"), *made.facts), made.facts_key))
            direction = {"low": "lowest", "high": "highest", "both": "farthest from the median"}[figure.worse]
            galleries.append(Gallery(f"Worst first: {name}", columns, tuple(rows), describe,
                                     f"the {len(rows)} sample(s) with the {direction} {name} ({figure.bad})",
                                     counted=False))
    return tuple(galleries), tuple(tables)


def _counted(stage: StageRow) -> int:
    return max((int(h.get("count") or 0) for h in (stage.figures or {}).values()), default=0)


def figures_tables(listing: Listing, figure_columns: tuple[FigureColumns, ...]) -> tuple[Table, ...]:
    """For a stage of at most `WORST` samples, its figures by sample: a row per figure, a column per sample
    (so it stays narrow), in place of a worst-first gallery per figure, which would show every sample once
    per figure."""
    tables = []
    for stage, lookup in zip(_stages_with_figures(listing), figure_columns, strict=True):
        if _counted(stage) > WORST or not lookup.names:
            continue
        samples = sorted({s for key in listing.under(quality_prefix(stage.name, stage.config_hash or ""))
                          for s in _table(listing, key)})
        values = [lookup.values(s) for s in samples]
        tables.append(Table(f"Figures of each sample: {stage.name}", ("figure", *samples),
                            tuple((name, *(v[i] for v in values)) for i, name in enumerate(lookup.names)),
                            "a stage of more samples shows each figure's worst ones instead"))
    return tuple(tables)


def quality_section(listing: Listing, row: Callable[[str], Row], columns: tuple[str, ...],
                    describe: Callable[[Mapping[str, Any]], Facts] | None) -> Section | None:
    """The samples' quality figures: a histogram each, then each figure's worst samples; None when no
    stage of the run measured any."""
    stages = _stages_with_figures(listing)
    if not stages:
        return None
    counts = ", ".join(f"{s.name}: {next(iter((s.figures or {}).values())).get('count')} samples" for s in stages)
    galleries, figure_columns = quality_galleries(listing, row, columns, describe)
    return Section("Quality figures", figures_tables(listing, figure_columns), plots=quality_plots(listing),
                   galleries=galleries, columns=figure_columns,
                   notes=(f"Measured where each sample was made ({counts}); what each figure means, its range and "
                          "what a bad value looks like are in the pipeline's docs. A spec's `quality` bounds drop "
                          "the samples outside them (QualityOutOfRange).",))

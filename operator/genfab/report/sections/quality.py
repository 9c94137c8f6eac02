"""The report's view of the samples' quality figures (genfab.api.quality): a histogram per figure from
the run's summary, and a worst-first gallery per figure from the stages' quality tables (one JSON per
shard, `{sample: {figure: value}}`), read once and kept to the worst few per figure while read."""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable, Mapping
from typing import Any

from genfab.api.quality import FIGURES, Figure
from genfab.contract.names import quality_prefix
from genfab.report.model import Facts, Gallery, Listing, Plot, Row, Section, Series

WORST = 8
"""Samples a worst-first gallery shows."""


def _stages_with_figures(listing: Listing) -> list[Mapping[str, Any]]:
    return [s for s in listing.summary.get("stages") or [] if s.get("quality")]


def quality_plots(listing: Listing) -> tuple[Plot, ...]:
    """A histogram per figure of every stage that measured some (the summary's bins and counts)."""
    plots = []
    for stage in _stages_with_figures(listing):
        for name, hist in sorted(stage["quality"].items()):
            figure = FIGURES.get(name)
            edges, counts = hist.get("edges") or [], hist.get("counts") or []
            if figure is None or len(edges) != len(counts) + 1:
                continue
            labels = tuple(f"{edges[i]:.3g}" for i in range(len(counts)))
            plots.append(Plot(f"quality-{stage['name']}-{name}", f"{name}: p5 {hist.get('p5')} · p50 "
                              f"{hist.get('p50')} · p95 {hist.get('p95')}", "bar",
                              (Series("samples", (), tuple(float(c) for c in counts)),),
                              xlabel=f"{figure.unit} (each bar: from its lower edge)", ylabel="samples",
                              names=labels))
    return tuple(plots)


def badness(figure: Figure, value: float, middle: float) -> float:
    """How bad a value is, larger worse (`Figure.worse`)."""
    return -value if figure.worse == "low" else abs(value - middle) if figure.worse == "both" else value


def worst_samples(listing: Listing, stage: Mapping[str, Any]) -> dict[str, list[tuple[float, str]]]:
    """Per figure, its worst `WORST` (value, sample) of the stage's quality tables, worst first."""
    prefix = quality_prefix(str(stage.get("name")), str(stage.get("configHash") or ""))
    middles = {name: float(h.get("p50") or 0.0) for name, h in (stage.get("quality") or {}).items()}
    heaps: dict[str, list[tuple[float, float, str]]] = {}
    for key in listing.under(prefix):
        try:
            table = json.loads(listing.read(key) or b"{}")
        except ValueError:
            continue
        for sample, measured in (table.items() if isinstance(table, dict) else ()):
            for name, value in (measured.items() if isinstance(measured, dict) else ()):
                figure = FIGURES.get(name)
                if figure is None or not isinstance(value, int | float):
                    continue
                item = (badness(figure, float(value), middles.get(name, 0.0)), float(value), str(sample))
                heap = heaps.setdefault(name, [])
                (heapq.heappush if len(heap) < WORST else heapq.heappushpop)(heap, item)
    return {name: [(v, s) for _, v, s in sorted(heap, reverse=True)] for name, heap in heaps.items()}


def quality_galleries(listing: Listing, row: Callable[[str], Row], columns: tuple[str, ...],
                      describe: Callable[[Mapping[str, Any]], Facts] | None) -> tuple[Gallery, ...]:
    """A worst-first gallery per figure: the samples the figure says are worst, its value shown first."""
    galleries = []
    for stage in _stages_with_figures(listing):
        for name, worst in sorted(worst_samples(listing, stage).items()):
            figure = FIGURES[name]
            rows = []
            for value, sample in worst:
                made = row(sample)
                rows.append(Row(made.sample, made.pictures, ((name, f"{value:.4g}"), *made.facts), made.facts_key))
            direction = {"low": "lowest", "high": "highest", "both": "farthest from the median"}[figure.worse]
            galleries.append(Gallery(f"Worst first: {name}", columns, tuple(rows), describe,
                                     f"the {len(rows)} sample(s) with the {direction} {name} ({figure.bad})",
                                     counted=False))
    return tuple(galleries)


def quality_section(listing: Listing, row: Callable[[str], Row], columns: tuple[str, ...],
                    describe: Callable[[Mapping[str, Any]], Facts] | None) -> Section | None:
    """The samples' quality figures: a histogram each, then each figure's worst samples; None when no
    stage of the run measured any."""
    stages = _stages_with_figures(listing)
    if not stages:
        return None
    counts = ", ".join(f"{s['name']}: {next(iter(s['quality'].values())).get('count')} samples" for s in stages)
    return Section("Quality figures", plots=quality_plots(listing),
                   galleries=quality_galleries(listing, row, columns, describe),
                   notes=(f"Measured where each sample was made ({counts}); what each figure means, its range and "
                          "what a bad value looks like are in the pipeline's docs. A spec's `quality` bounds drop "
                          "the samples outside them (QualityOutOfRange).",))

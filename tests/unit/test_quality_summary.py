"""Quality figures from samples to the summary: binned per shard, folded into the stage's tally (bounded:
only declared figures with their own bins), percentiles estimated from the histogram within the values'
span, whole numbers for counts; a bound names only declared figures."""

from __future__ import annotations

import pytest

from genfab.api.quality import FIGURES, QualityBound, figures_summary, out_of_range, percentile
from genfab.api.summary import RunSummary, StageRow
from genfab.inventory import ShardReport
from genfab.status import tally


@pytest.mark.parametrize(("name", "values", "q", "expected"), [
    ("maskArea", [0.5] * 10, 0.5, 0.5),                     # one value: the span holds it exactly
    ("maskArea", [0.1, 0.3, 0.5, 0.7, 0.9], 0.5, 0.525),    # the middle value's bin [0.5, 0.55), linear
    ("holes", [0, 0, 0, 1], 0.5, 0.0),                       # counts are whole numbers
    ("components", [1, 1, 2, 2, 3], 0.95, 3.0),
    ("straightRunPx", [20.0, 31.0, 84.0], 0.05, 20.0),       # kept within the span
])
def test_percentiles_from_a_histogram(name: str, values: list[float], q: float, expected: float) -> None:
    figure = FIGURES[name]
    counts = [0] * (len(figure.edges) - 1)
    for v in values:
        counts[figure.bin(v)] += 1
    assert percentile(figure, counts, q, (min(values), max(values))) == pytest.approx(expected)
    assert percentile(figure, [0] * len(counts), q) is None


def report(index: int, **figures: list[float]) -> ShardReport:
    r = ShardReport("segment", "h" * 64, index, 3, state="succeeded")
    for name, values in figures.items():
        f = FIGURES[name]
        r.figures[name] = [0] * (len(f.edges) - 1)
        for v in values:
            r.figures[name][f.bin(v)] += 1
        r.figure_spans[name] = [min(values), max(values)]
    return r


def test_the_tally_adds_declared_figures_only_and_the_summary_reads_it() -> None:
    hostile = report(2, maskArea=[0.9])
    hostile.figures["madeUp"] = [5]  # not a figure genfab declares
    hostile.figures["holes"] = [1, 2]  # not its bins
    hostile.figure_spans["holes"] = [0.0, 1e300]
    t = tally.of_reports({0: report(0, maskArea=[0.2, 0.4]), 1: report(1, maskArea=[0.6]), 2: hostile})
    assert set(t.figures) == {"maskArea"} and sum(t.figures["maskArea"]) == 4
    assert t.figure_spans == {"maskArea": [0.2, 0.9]}
    summary = figures_summary(t.figures, t.figure_spans)
    assert summary["maskArea"]["count"] == 4 and (summary["maskArea"]["min"], summary["maskArea"]["max"]) == (0.2, 0.9)
    assert summary["maskArea"]["counts"] == t.figures["maskArea"] and len(summary["maskArea"]["edges"]) == 21


@pytest.mark.parametrize(("measured", "bounds", "said"), [
    ({"maskArea": 0.5}, {"maskArea": QualityBound(min=0.1, max=0.9)}, None),
    ({"maskArea": 0.05}, {"maskArea": QualityBound(min=0.1)}, "maskArea 0.05 below min 0.1"),
    ({"straightRunPx": 84.0238}, {"straightRunPx": QualityBound(max=60)}, "straightRunPx 84.0238 above max 60"),
    ({}, {"holes": QualityBound(max=0)}, "holes not measured (a bound is set on it)"),
    ({"holes": 0, "maskArea": 1.0}, {"holes": QualityBound(max=0), "maskArea": QualityBound(max=0.9)},
     "maskArea 1 above max 0.9"),
])
def test_out_of_range(measured: dict[str, float], bounds: dict[str, QualityBound], said: str | None) -> None:
    assert out_of_range(measured, bounds) == said


def test_min_above_max_is_refused() -> None:
    from genfab.api import parse_resource

    doc = {"apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob", "metadata": {"name": "d"},
           "spec": {"type": "relighting", "output": "s3://b/o", "relighting": {
               "input": {"uri": "s3://b/in"}, "quality": {"maskArea": {"min": 0.9, "max": 0.1}}}}}
    with pytest.raises(Exception, match="must not exceed"):
        parse_resource(doc)


def test_genfab_status_prints_a_line_per_figure() -> None:
    from genfab.cli.follow import quality_lines

    t = tally.of_reports({0: report(0, maskArea=[0.2, 0.4, 0.6], holes=[0, 0, 1])})
    quality = figures_summary(t.figures, t.figure_spans)
    quality["\x1b]0;owned\x07"] = {"count": 3}  # a name the output's own summary.json could hold: not printed
    summary = RunSummary.model_validate({"stages": [{"name": "segment", "quality": quality}, {"name": "organize"}]})
    assert quality_lines(summary) == [
        "quality (segment, 3 samples; min  p5 / p50 / p95 (read off a histogram: about)  max):",
        "  holes              0  0 / 0 / 1  1",
        "  maskArea           0.2  0.2075 / 0.425 / 0.6  0.6"]  # within the bin, linear


def test_the_reports_worst_first_keeps_the_worst_few_by_each_figures_direction() -> None:
    import json

    from genfab.contract.names import quality_key
    from genfab.report.model import Listing
    from genfab.report.sections import quality as section

    tables = {quality_key("segment", "h" * 64, i): json.dumps({
        f"s{i}{j}": {"straightRunPx": float(10 * i + j), "boundaryOnEdge": 1.0 - (10 * i + j) / 100,
                     "maskArea": 0.5 + (-1) ** j * (10 * i + j) / 100, "madeUp": 1} for j in range(10)}).encode()
        for i in range(3)}
    tables[quality_key("segment", "h" * 64, 3)] = b"not json"
    summary = RunSummary.model_validate({"stages": [{"name": "segment", "configHash": "h" * 64, "figures": {
        "maskArea": {"p50": 0.5}, "straightRunPx": {}, "boundaryOnEdge": {}}}]})
    listing = Listing({k: len(v) for k, v in tables.items()}, summary, read=tables.get)
    worst = section.worst_samples(listing, summary.stages[0])
    assert set(worst) == {"straightRunPx", "boundaryOnEdge", "maskArea"}
    assert [s for _, s in worst["straightRunPx"]] == [f"s2{j}" for j in range(9, 1, -1)]  # highest first
    assert [s for _, s in worst["boundaryOnEdge"]][:2] == ["s29", "s28"]  # lowest first
    assert [s for _, s in worst["maskArea"]][:2] == ["s29", "s28"]  # farthest from the median
    assert len(worst["maskArea"]) == section.WORST


def test_only_declared_finite_figures_are_taken() -> None:
    from genfab.api.quality import declared_values

    assert declared_values({"maskArea": 0.5, "holes": 2, "madeUp": 1.0, "components": float("nan"),
                            "frameTouch": "0.3", "straightRunPx": float("inf")}) == {"maskArea": 0.5, "holes": 2.0}
    assert declared_values(None) == {}


def test_samples_csv_figure_columns_read_each_shard_table_once_for_samples_in_order() -> None:
    import json

    from genfab.contract.names import quality_key
    from genfab.report.model import Listing
    from genfab.report.sections import quality as section

    tables = {quality_key("segment", "h" * 64, i): json.dumps({
        f"s{i:03d}{j}": {"maskArea": (10 * i + j) / 1000, "holes": j} for j in range(10)}).encode()
        for i in range(50)}
    reads: list[str] = []
    listing = Listing({k: len(v) for k, v in tables.items()},
                      RunSummary.model_validate({"stages": [{"name": "segment", "configHash": "h" * 64}]}),
                      read=lambda key: reads.append(key) or tables.get(key))
    columns = section.FigureColumns(listing, ("maskArea", "holes", "facesOutside"))
    section.worst_samples(listing, StageRow(name="segment", config_hash="h" * 64, figures={}), columns)
    columns.seal()
    reads.clear()
    rows = [columns.values(f"s{i:03d}{j}") for i in range(50) for j in range(10)]
    assert rows[0] == ("0", "0", "") and rows[123] == ("0.123", "3", "")  # a figure not measured: blank
    assert len(reads) == 50  # in order: each table decoded once, a few kept
    assert columns.values("s0123") == ("0.123", "3", "") and columns.values("nobody") == ("", "", "")
    assert len(columns._cache) <= section.CACHED_TABLES


def test_a_trained_scene_s_figures_are_those_its_metrics_measured() -> None:
    from genfab.api.quality import SCENE_3DGS
    from genfab.stages.gaussians.stage import scene_figures

    metrics = {"psnr": 27.123456, "ssim": 0.91, "lpips": None, "num_gaussians": 120_000, "evaluated_on": "test"}
    assert scene_figures(metrics) == {"scenePsnr": 27.1235, "sceneSsim": 0.91, "gaussians": 120000.0}
    assert set(scene_figures({"psnr": 1, "ssim": 1, "lpips": 1, "num_gaussians": 1})) == {f.name for f in SCENE_3DGS}


def test_a_stage_row_names_its_figures_figures_and_reads_a_summary_that_called_them_quality() -> None:
    """The summary's per-stage figures are `figures`, as in the status; `quality` is the spec's bounds (and a
    sample's own figures in its metadata). A summary written before the rename is read the same."""
    figures = {"maskArea": {"p50": 0.5, "count": 3}}
    row = StageRow.model_validate({"name": "segment", "figures": figures})
    old = StageRow.model_validate({"name": "segment", "quality": figures})
    assert row.figures == old.figures == figures
    assert row.document()["figures"] == figures and "quality" not in row.document()
    assert "figures" not in StageRow(name="segment").document()  # none measured: left out, not null

"""Every metric the dashboard and the alerts query exists in the code (prometheus-client registries)."""

from __future__ import annotations

import json
import re
from typing import Any

import promql_parser
import pytest
from prometheus_client import CollectorRegistry

from genfab.api.quality import FIGURES
from genfab.operator.metrics import OperatorMetrics
from genfab.stages.runtime.metrics import StageMetrics
from tests.chart.conftest import CHART

# Grafana's variables, replaced by what Grafana substitutes before the query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "6h", "$kind": ".*", "$stage": ".*",
                     "${figure}": "genfab_stage_quality_mask_area_bucket"}
METRIC_NAMES = re.compile(r"^metrics\((.+)\)$")
"""A variable whose values are the metric names a regex matches (Grafana's `metrics()`)."""
# DCGM exporter fields the GPU panels join to stage Pods (dcgm-exporter's default counters).
DCGM_FIELDS = {"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED"}
METRIC = re.compile(r"\b(genfab_[a-z0-9_]+|DCGM_[A-Z0-9_]+)\b")
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
            "gauge": ("",), "summary": ("_sum", "_count", "_created")}


def exported_series() -> set[str]:
    """Series names the code exports, from the registries' metric families and their types."""
    names: set[str] = set()
    for registry in (OperatorMetrics(CollectorRegistry()).registry, StageMetrics("x").registry):
        for family in registry.collect():
            names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def panel_exprs() -> list[str]:
    dashboard = json.loads((CHART / "dashboards" / "genfab.json").read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def variable_queries() -> list[str]:
    dashboard = json.loads((CHART / "dashboards" / "genfab.json").read_text())
    return [v["query"]["query"] for v in dashboard["templating"]["list"] if isinstance(v.get("query"), dict)]


def dashboard_exprs() -> list[str]:
    """Every query naming metrics: the panels' and the `label_values()` variables' (a `metrics()`
    variable names a pattern, checked by `test_metric_name_variables_match_exported_series`)."""
    return panel_exprs() + [q for q in variable_queries() if not METRIC_NAMES.match(q)]


def alert_exprs(rendered: dict[str, list[dict[str, Any]]]) -> list[str]:
    rules = [d for d in rendered["everything"] if d["kind"] == "PrometheusRule"]
    return [r["expr"] for g in rules[0]["spec"]["groups"] for r in g["rules"]]


def test_the_registry_view_is_not_empty() -> None:
    series = exported_series()
    assert {"genfab_samples_total", "genfab_stage_sample_seconds_bucket", "genfab_gpus_held"} <= series


def test_dashboard_metrics_exist() -> None:
    used = {m for e in dashboard_exprs() for m in METRIC.findall(e)}
    assert len(used) >= 15
    assert used - DCGM_FIELDS <= exported_series(), sorted(used - DCGM_FIELDS - exported_series())
    assert used & DCGM_FIELDS == DCGM_FIELDS


def test_alert_metrics_exist(rendered: dict[str, list[dict[str, Any]]]) -> None:
    exprs = alert_exprs(rendered)
    assert len(exprs) == 4
    used = {m for e in exprs for m in METRIC.findall(e)}
    assert used and used <= exported_series(), sorted(used - exported_series())


def test_dashboard_has_the_panels_a_lab_asks_for() -> None:
    dashboard = json.loads((CHART / "dashboards" / "genfab.json").read_text())
    titles = {p["title"] for p in dashboard["panels"] if p["type"] != "row"}
    for wanted in ("Samples/s per stage and kind", "Stage duration p50 / p95", "Resources by phase",
                   "Failed samples by reason", "Pending shards (queue depth)", "Model load time",
                   "Per-sample latency p50 / p95", "GPU utilisation by stage", "GPU memory by stage",
                   "GPUs held without progress"):
        assert wanted in titles
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_metric_name_variables_match_exported_series() -> None:
    """The quality-figure variable lists every figure's histogram (one panel each), and nothing else."""
    patterns = [m.group(1) for q in variable_queries() if (m := METRIC_NAMES.match(q))]
    assert patterns
    for pattern in patterns:
        matched = {s for s in exported_series() if re.fullmatch(pattern, s)}
        assert len(matched) == len(FIGURES), sorted(matched)


@pytest.mark.parametrize("bad", ["genfab_samples_totals", "genfab_stage_sample_seconds"])
def test_the_cross_check_catches_a_misspelt_metric(bad: str) -> None:
    assert bad not in exported_series()  # a histogram's base name is not a series


def test_every_expression_is_valid_promql(rendered: dict[str, list[dict[str, Any]]]) -> None:
    exprs = panel_exprs() + alert_exprs(rendered)
    for expr in exprs:
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        promql_parser.parse(expr)  # raises with the position of a syntax error
    with pytest.raises(ValueError):
        promql_parser.parse("sum by (stage) (rate(genfab_samples_total[5m])")

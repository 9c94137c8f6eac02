"""The generated reference (`genfab docs`): every field of every kind appears with its facts, run-time
options are marked (their children too), the in-page links land on headings, and the committed pages
are current."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from genfab.api.crd import build_crd
from genfab.api.reference import RUN_TIME_NOTE, anchor, kind_page
from genfab.api.resources import KINDS
from genfab.cli.main import cli


def fields(node: dict[str, Any], path: str) -> list[str]:
    out = []
    for name, prop in (node.get("properties") or {}).items():
        out.append(f"{path}.{name}")
        target = prop.get("items", prop) if prop.get("type") == "array" else prop
        out += fields(target, f"{path}.{name}{'[]' if prop.get('type') == 'array' else ''}")
    return out


def entry(page: str, section: str, name: str) -> str:
    """The list item of field `name` in the section of object `section`."""
    body = page.split(f"## `{section}`\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(rf"^- \*\*`{re.escape(name)}`\*\*.*?(?=^- |\Z)", body, re.M | re.S)
    assert found, f"{section}.{name} not in the page"
    return found.group(0)


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_field_is_listed_under_its_object(kind: str) -> None:
    page = kind_page(kind)
    schema = build_crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    for root in ("spec", "status"):
        for path in fields(schema[root], root):
            section, name = path.rsplit(".", 1)
            entry(page, section, name)
    headings = {anchor(h) for h in re.findall(r"^## `([^`]+)`$", page, re.M)}
    for target in re.findall(r"\]\(#([^)]+)\)", page):
        assert target in headings, target


@pytest.mark.parametrize(("kind", "section", "name", "run_time"), [
    ("SceneJob", "spec.gaussians", "packed", True),
    ("SceneJob", "spec.gaussians", "steps", False),
    ("SceneJob", "spec.worldexplorer.seva", "runtime", True),
    ("SceneJob", "spec.worldexplorer.seva.runtime", "compile", True),  # inherited from its object
    ("SceneJob", "spec.worldexplorer.seva", "steps", False),
    ("SceneJob", "spec", "retries", False),
    ("DatasetJob", "spec.referenceObject.scenes", "editRuntime", True),
    ("DatasetJob", "spec.referenceObject.scenes.editRuntime", "compile", True),  # inherited from its object
    ("TuningRun", "spec.hyperparameters", "dataloaderWorkers", True),
])
def test_run_time_options_are_marked(kind: str, section: str, name: str, run_time: bool) -> None:
    assert (RUN_TIME_NOTE in entry(kind_page(kind), section, name)) is run_time


def test_a_field_shows_type_bounds_default_and_rules() -> None:
    text = entry(kind_page("SceneJob"), "spec", "retries")
    assert "integer · optional · ≥ 0 · ≤ 20 · default `2`" in text
    assert "Rule: must not contain '.' or '..' segments" in entry(kind_page("SceneJob"), "spec", "output")


def test_the_committed_reference_is_current() -> None:
    out = Path(__file__).resolve().parents[2] / "docs" / "reference"
    result = CliRunner().invoke(cli, ["docs", "--check", "--out", str(out)])
    assert result.exit_code == 0, result.output


def test_the_metrics_page_lists_every_metric_and_explains_every_label() -> None:
    from genfab.cli.metrics_reference import metrics_page, unexplained_labels
    from genfab.operator.metrics import OperatorMetrics

    assert unexplained_labels() == set()
    page = metrics_page()
    for collector in OperatorMetrics().registry._collector_to_names.values():
        assert any(f"`{name}`" in page for name in collector), collector
    assert "`genfab_stage_samples_total` | counter | `stage`, `outcome`" in page

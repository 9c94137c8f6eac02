"""Each pipeline next to the lab's code (`genfab.api.fidelity`, one `LabComparison` a pipeline, the page's
generated table): every setting of a pipeline's block has a row, so a setting or a changed default
cannot exist without one; a row about a setting states the lab's value and its verdict is worked out
against the API model's default, so a default that leaves the lab's value reads `different` and must
say why; every "same" row about an output, a name or a behaviour states a literal that the pipeline's
declared output layouts or its code contain; and each page includes its table."""

from __future__ import annotations

import dataclasses
import re

import pytest

from genfab.api.fidelity import DIFFERENT, NO_LAB_VALUE, SAME, LabComparison, uncovered, unexplained, verdict
from genfab.api.pipeline import pipelines
from tests.helpers import ROOT
from tests.unit.test_stage_docs import PAGES


def comparison(name: str) -> LabComparison:
    found = pipelines()[name].lab
    assert found is not None, f"{name}: no comparison with the lab's code"
    return found


@pytest.mark.parametrize("name", sorted(PAGES))
def test_every_setting_has_a_row_and_every_difference_its_reason(name: str) -> None:
    c = comparison(name)
    assert uncovered(c) == [], f"{name}: settings without a row in genfab/api/lab/"
    assert unexplained(c) == []
    assert any(r.lab_value is not NO_LAB_VALUE for r in c.rows)  # the lab's values, not verdicts alone


@pytest.mark.parametrize("name", sorted(PAGES))
def test_each_page_includes_its_generated_table(name: str) -> None:
    page = (ROOT / "docs" / "pipelines" / PAGES[name]).read_text()
    assert f'--8<-- "docs/pipelines/stages/{name}-lab.md"' in page and "\n| stage | field |" not in page


def test_a_default_that_leaves_the_labs_value_reads_different_and_needs_its_reason() -> None:
    c = comparison("vistadream")
    row = next(r for r in c.rows if r.field == "expansionPercent")
    defaults = c.defaults()
    assert verdict(row, defaults) == SAME
    moved = dataclasses.replace(row, lab_value=0.2, why="")  # as if the default were not the lab's
    assert verdict(moved, defaults) == DIFFERENT
    edited = dataclasses.replace(c, rows=tuple(moved if r is row else r for r in c.rows))
    assert unexplained(edited) == ["outpaint expansionPercent: different, and no reason given"]
    dropped = dataclasses.replace(c, rows=tuple(r for r in c.rows if r is not row))
    assert uncovered(dropped) == ["expansionPercent"]


CODE = {  # pipeline -> the files and folders that implement it
    "relighting": ("operator/genfab/api/relighting.py", "stages/genfab/stages/relighting"),
    "difix": ("operator/genfab/api/difix.py", "stages/genfab/stages/difix", "operator/genfab/api/tuningrun.py"),
    "tuning-difix": ("operator/genfab/api/tuningrun.py", "stages/genfab/stages/tuning", "stages/genfab/stages/models"),
    "reference-object": ("operator/genfab/api/reference_object.py", "stages/genfab/stages/reference_object"),
    "vistadream": ("operator/genfab/api/scenejob.py", "stages/genfab/stages/vistadream"),
    "worldexplorer": ("operator/genfab/api/scenejob.py", "operator/genfab/api/common.py",
                      "stages/genfab/stages/worldexplorer", "operator/genfab/sequencing"),
}


def expand(pattern: str) -> list[str]:
    """Brace alternations expanded (`a/{x,y}.png` -> `a/x.png`, `a/y.png`, nested too); a brace group
    without a comma is a placeholder (`{id}`) and stays."""
    for i, ch in enumerate(pattern):
        if ch != "{":
            continue
        depth, start, parts = 0, i + 1, []
        for j in range(i, len(pattern)):
            c = pattern[j]
            depth += (c == "{") - (c == "}")
            if c == "," and depth == 1:
                parts.append(pattern[start:j].strip())
                start = j + 1
            if depth == 0:
                break
        if parts:
            parts.append(pattern[start:j].strip())
            return [e for part in parts for e in expand(pattern[:i] + part + pattern[j + 1:])]
    return [pattern]


def declared_layouts(pipeline: str) -> list[str]:
    """Every concrete place the pipeline's stages declare they write (`StageDecl.output`)."""
    out = []
    for stage in pipelines()[pipeline].stages:
        depth, start = 0, 0
        for j, c in enumerate(stage.output + ","):
            depth += (c == "{") - (c == "}")
            if c == "," and depth == 0:
                out += expand(stage.output[start:j].strip())
                start = j + 1
    return out


def code_text(paths: tuple[str, ...], pipeline: str) -> str:
    files = [ROOT / "operator" / "genfab" / "api" / "pipelines" / f"{pipeline.replace('-', '_')}.py"]
    for p in paths:
        files += sorted((ROOT / p).rglob("*.py")) if (ROOT / p).is_dir() else [ROOT / p]
    return "\n".join(f.read_text() for f in files if f.is_file())


def unfound(literal: str, layouts: list[str], code: str) -> list[str]:
    """The parts of a table's literal that neither the declared layouts nor the code contain."""
    if "{" in literal:  # a layout: what a stage declares it writes (the code's docstrings do not count)
        return [e for e in expand(literal) if not any(d.startswith(e) for d in layouts)]
    if "/" in literal:
        return [] if any(d.startswith(literal) for d in layouts) or literal in code else [literal]
    return [] if literal in code else [literal]


@pytest.mark.parametrize("name", sorted(CODE))
def test_every_same_row_about_outputs_and_names_states_what_the_code_does(name: str) -> None:
    paths = CODE[name]
    layouts, code = declared_layouts(name), code_text(paths, name)
    checked = 0
    for row in comparison(name).rows:
        if row.field is not None or row.verdict != SAME:
            continue
        literals = re.findall(r"`([^`]+)`", row.genfab)
        assert literals, f"{name}: {row.stage} row marked same states no `literal` in the genfab column: {row.genfab}"
        for literal in literals:
            missing = unfound(literal, layouts, code)
            assert not missing, f"{name}: {row.stage} row says `{literal}`; not in the layouts or the code: {missing}"
            checked += 1
    assert checked >= 1


def test_the_layout_check_sees_a_wrong_name() -> None:
    layouts, code = declared_layouts("relighting"), code_text(CODE["relighting"], "relighting")
    assert not unfound("data/outputs/{id}_{input.png,output.png}", layouts, code)
    assert unfound("outputs/{id}_{input.png,output.png}", layouts, code) == [  # the old layout, beside data/
        "outputs/{id}_input.png", "outputs/{id}_output.png"]
    assert unfound("data/stage_9/{id}_{mask.png,output.png}", layouts, code) == [
        "data/stage_9/{id}_mask.png", "data/stage_9/{id}_output.png"]
    assert expand("data/{raw/{source},outputs/{id}_{a.png,b.png}}") == [
        "data/raw/{source}", "data/outputs/{id}_a.png", "data/outputs/{id}_b.png"]

"""The fidelity tables (each pipeline page's section against the lab's script, docs/pipelines/) state
genfab's defaults; these tests hold them to the API models, so a changed default changes its table (and
its verdict) in the same commit, and hold every "same" row to the code: a row about a parameter states
the model's default, and a row about an output, a name or a behaviour (field `—`) states a literal
that the pipeline's declared output layouts or its code contain."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from genfab.api.difix import DifixConfig
from genfab.api.pipeline import pipelines
from genfab.api.reference_object import ReferenceObjectConfig
from genfab.api.relighting import RelightingConfig
from genfab.api.scenejob import VistaDreamConfig, WorldExplorerConfig
from genfab.api.tuningrun import DifixHyperparameters
from tests.helpers import ROOT

TABLES = {"relighting.md": RelightingConfig(input={"uri": "file:///inputs"}),
          "difix-trainer.md": DifixHyperparameters(),
          "difix-data.md": DifixConfig(sources=[{"name": "s", "dataset": "generic", "uri": "file:///src"}]),
          "reference-object.md": ReferenceObjectConfig(input_image="file:///object.png", input_mask="file:///mask.png",
                                                       object_name="mug"),
          "vistadream.md": VistaDreamConfig(), "worldexplorer.md": WorldExplorerConfig()}
"""Each table and the block whose defaults it states (required fields given placeholders)."""


def rows(page: Path) -> list[list[str]]:
    """The rows of the page's one table whose header starts `| stage | field |`."""
    text = page.read_text()
    start = text.index("\n| stage | field |") + 1
    table = text[start:text.find("\n\n", start)].splitlines()
    assert all(line.startswith("| ") for line in table), "the fidelity table ends at a blank line"
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in table[2:]]


def default_at(block: dict[str, Any], path: str) -> Any:
    value: Any = block
    for key in path.split("."):
        assert isinstance(value, dict) and key in value, f"{path}: no such field ({key})"
        value = value[key]
    return value


@pytest.mark.parametrize("name", sorted(TABLES))
def test_every_default_in_a_fidelity_table_is_the_api_models(name: str) -> None:
    block = TABLES[name].model_dump(by_alias=True, mode="json")
    checked = 0
    for stage, field, _, stated, verdict, _ in rows(ROOT / "docs" / "pipelines" / name):
        assert verdict, f"{stage} {field}: no verdict"
        if field == "—":
            continue
        path = field.strip("`")
        literal = re.match(r"`([^`]*)`", stated)
        assert literal, f"{path}: the genfab default column holds no `value`"
        assert yaml.safe_load(literal[1]) == default_at(block, path), f"{path}: the table says {literal[1]}"
        checked += 1
    assert checked >= 5


def test_the_check_sees_a_wrong_default() -> None:
    block = TABLES["relighting.md"].model_dump(by_alias=True, mode="json")
    assert yaml.safe_load("[sam3, sam2]") == default_at(block, "segmentation.backends")
    assert yaml.safe_load("0.2") != default_at(block, "degradation.weights.ambientOnly")


CODE = {  # page -> (pipeline, the files and folders that implement it)
    "relighting.md": ("relighting", ("operator/genfab/api/relighting.py", "stages/genfab/stages/relighting")),
    "difix-data.md": ("difix", ("operator/genfab/api/difix.py", "stages/genfab/stages/difix",
                                "operator/genfab/api/tuningrun.py")),
    "difix-trainer.md": ("tuning-difix", ("operator/genfab/api/tuningrun.py", "stages/genfab/stages/tuning",
                                           "stages/genfab/stages/models")),
    "reference-object.md": ("reference-object", ("operator/genfab/api/reference_object.py",
                                                 "stages/genfab/stages/reference_object")),
    "vistadream.md": ("vistadream", ("operator/genfab/api/scenejob.py", "stages/genfab/stages/vistadream")),
    "worldexplorer.md": ("worldexplorer", ("operator/genfab/api/scenejob.py", "operator/genfab/api/common.py",
                                           "stages/genfab/stages/worldexplorer", "operator/genfab/sequencing")),
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
    pipeline, paths = CODE[name]
    layouts, code = declared_layouts(pipeline), code_text(paths, pipeline)
    checked = 0
    for stage, field, _, stated, verdict, _ in rows(ROOT / "docs" / "pipelines" / name):
        if verdict != "same" or field != "—":
            continue
        literals = re.findall(r"`([^`]+)`", stated)
        assert literals, f"{name}: {stage} row marked same states no `literal` in the genfab column: {stated}"
        for literal in literals:
            missing = unfound(literal, layouts, code)
            assert not missing, f"{name}: {stage} row says `{literal}`; not in the layouts or the code: {missing}"
            checked += 1
    assert checked >= 1


def test_the_layout_check_sees_a_wrong_name() -> None:
    layouts, code = declared_layouts("relighting"), code_text(CODE["relighting.md"][1], "relighting")
    assert not unfound("data/outputs/{id}_{input.png,output.png}", layouts, code)
    assert unfound("outputs/{id}_{input.png,output.png}", layouts, code) == [  # the old layout, beside data/
        "outputs/{id}_input.png", "outputs/{id}_output.png"]
    assert unfound("data/stage_9/{id}_{mask.png,output.png}", layouts, code) == [
        "data/stage_9/{id}_mask.png", "data/stage_9/{id}_output.png"]
    assert expand("data/{raw/{source},outputs/{id}_{a.png,b.png}}") == [
        "data/raw/{source}", "data/outputs/{id}_a.png", "data/outputs/{id}_b.png"]

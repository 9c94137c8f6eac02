"""The fidelity tables (each pipeline page's section against the lab's script, docs/pipelines/) state
genfab's defaults; these tests hold them to the API
models, so a changed default changes its table (and its verdict) in the same commit."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from genfab.api.reference_object import ReferenceObjectConfig
from genfab.api.relighting import RelightingConfig
from genfab.api.scenejob import VistaDreamConfig, WorldExplorerConfig
from genfab.api.tuningrun import DifixHyperparameters
from tests.helpers import ROOT

TABLES = {"relighting.md": RelightingConfig(input={"uri": "file:///inputs"}),
          "difix-trainer.md": DifixHyperparameters(),
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
    assert checked >= 10


def test_the_check_sees_a_wrong_default() -> None:
    block = TABLES["relighting.md"].model_dump(by_alias=True, mode="json")
    assert yaml.safe_load("[sam3, sam2]") == default_at(block, "segmentation.backends")
    assert yaml.safe_load("0.2") != default_at(block, "degradation.weights.ambientOnly")

"""The development page's module map (docs/extend/development.md) cannot go stale: every package of
both source roots is on it, every path it names exists, and its layer order is the import contract's
(pyproject.toml, kept by lint-imports)."""

from __future__ import annotations

import re
import tomllib

import pytest

from tests.helpers import ROOT

PAGE = ROOT / "docs" / "extend" / "development.md"


def the_map() -> str:
    return PAGE.read_text().split("```\n", 2)[1]


def mapped_paths() -> list[str]:
    """The first word of every map line that starts in the first column (a path)."""
    return [line.split()[0] for line in the_map().splitlines() if line and not line[0].isspace()]


def packages() -> list[str]:
    """Every top-level package of genfab, in both source roots (`operator/genfab/x`, `stages/genfab/x`)."""
    return sorted(str(init.parent.relative_to(ROOT)) for root in ("operator", "stages")
                  for init in (ROOT / root / "genfab").glob("*/__init__.py"))


@pytest.mark.parametrize("package", packages())
def test_every_package_is_on_the_map(package: str) -> None:
    assert package in mapped_paths(), f"{package} is missing from the module map in {PAGE.name}"


@pytest.mark.parametrize("path", mapped_paths())
def test_every_path_on_the_map_exists(path: str) -> None:
    assert (ROOT / path.rstrip("/")).exists(), f"{PAGE.name} names {path}, which is not in the repository"


def layer_sentence(layers: list[str], prefix: str) -> str:
    """`a` > `b` | `c` > ...: the contract's layers as the page writes them."""
    return " > ".join(" | ".join(f"`{name.strip().removeprefix(prefix)}`" for name in layer.split("|"))
                      for layer in layers)


@pytest.mark.parametrize("container", ["", "genfab.stages"], ids=["packages", "inside the stages"])
def test_the_pages_layer_order_is_the_import_contracts(container: str) -> None:
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layered = next(c for c in contracts if c["type"] == "layers" and c.get("containers", [""]) == [container])
    wanted = layer_sentence(layered["layers"], "genfab.")
    text = re.sub(r"\s+", " ", PAGE.read_text())
    assert wanted in text, f"{PAGE.name} does not give the layers as pyproject.toml's contract does: {wanted}"

"""The generated CRDs: structural, valid CustomResourceDefinitions, documented, and not stale."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from genfab.api import KINDS
from genfab.api.crd import ALLOWED_KEYWORDS, build_crd, crd_filename, render_crds
from genfab.cli.main import cli
from tests.helpers import ROOT


def _nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for key, sub in schema.get("properties", {}).items():
        yield from _nodes(sub, f"{path}.{key}")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _nodes(schema["additionalProperties"], f"{path}.*")
    if "items" in schema:
        yield from _nodes(schema["items"], f"{path}[]")


@pytest.fixture(params=list(KINDS), ids=str)
def crd(request: pytest.FixtureRequest) -> dict[str, Any]:
    return build_crd(request.param)


def _schema(crd: dict[str, Any]) -> dict[str, Any]:
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_structural_every_node_typed_and_only_supported_keywords(crd) -> None:
    for path, node in _nodes(_schema(crd)):
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields") or node.get(
            "x-kubernetes-int-or-string"
        ), f"{path} has no type"
        unsupported = set(node) - ALLOWED_KEYWORDS
        assert not unsupported, f"{path} uses {unsupported}"
        assert not ("properties" in node and "additionalProperties" in node), path
        for key in ("exclusiveMinimum", "exclusiveMaximum"):
            assert isinstance(node.get(key, True), bool), f"{path}: {key} must be boolean in OpenAPI v3"


def test_every_spec_and_status_field_is_documented(crd) -> None:
    schema = _schema(crd)
    for root in ("spec", "status"):
        for path, node in _nodes(schema["properties"][root], root):
            if path.endswith(("*", "[]")) and node.get("type") != "object":
                continue  # values of maps and lists of scalars are described by their parent
            assert node.get("description"), f"{path} has no description"


def test_defaults_validate_against_their_own_schema(crd) -> None:
    from tests import crd_validator

    for path, node in _nodes(_schema(crd)):
        if "default" in node:
            assert crd_validator.errors(node, crd_validator.apply_defaults(node, node["default"])) == [], path


def test_is_a_valid_custom_resource_definition(crd) -> None:
    kubernetes_validate.validate(crd, "1.35", strict=True)


def test_names_columns_status_subresource(crd) -> None:
    spec = crd["spec"]
    assert spec["group"] == "genfab.dev" and spec["scope"] == "Namespaced"
    assert spec["names"]["categories"] == ["genfab"] and spec["names"]["shortNames"]
    version = spec["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Phase"] == ".status.phase"
    assert columns["Stage"] == ".status.currentStage"
    assert columns["Progress"] == ".status.progress"
    assert columns["Age"] == ".metadata.creationTimestamp"
    status = _schema(crd)["properties"]["status"]["properties"]
    assert status["conditions"]["x-kubernetes-list-map-keys"] == ["type"]
    assert {"phase", "observedGeneration", "conditions", "stages", "progress"} <= set(status)


def test_cross_field_rules_are_cel(crd) -> None:
    rules = [r for _, node in _nodes(_schema(crd)) for r in node.get("x-kubernetes-validations", [])]
    assert rules and all({"rule", "message"} <= set(r) for r in rules)


@pytest.mark.parametrize("folder", ["crds", "charts/genfab/crds"])
def test_checked_in_crds_and_the_charts_copy_are_not_stale(folder: str) -> None:
    for name, text in render_crds().items():
        path = ROOT / folder / name
        assert path.exists(), f"{path} missing: run `genfab crds`"
        assert path.read_text() == text, f"{path} is stale: run `genfab crds` and commit"


def test_crds_check_command_detects_staleness(tmp_path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["crds", "--out", str(tmp_path)]).exit_code == 0
    assert runner.invoke(cli, ["crds", "--out", str(tmp_path), "--check"]).exit_code == 0
    target = tmp_path / crd_filename("SceneJob")
    target.write_text(target.read_text().replace("coarseMinInpaintRatio", "coarseMinRatio", 1))
    result = runner.invoke(cli, ["crds", "--out", str(tmp_path), "--check"])
    assert result.exit_code == 1 and "stale" in result.output


def test_generation_is_deterministic() -> None:
    assert render_crds() == render_crds()
    for text in render_crds().values():
        assert yaml.safe_load(text)["kind"] == "CustomResourceDefinition"

"""Bad specs are rejected with a message naming the field, by genfab AND by the generated CRD.

Each case mutates a valid example. genfab's error must name `path` and contain `message`; the
CRD (schema + CEL, see tests/crd_validator.py) must reject the same document, so `kubectl apply`
and `genfab validate` agree.
"""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from genfab.api import UnknownKindError, parse_resource
from genfab.api.crd import build_crd
from genfab.api.errors import field_errors
from genfab.cli.main import cli
from tests import crd_validator
from tests.bad_input_cases import CASES, VD, WE, Case, Doc
from tests.helpers import load_example


def _genfab_errors(doc: Doc) -> list[str]:
    try:
        parse_resource(doc)
    except ValidationError as exc:
        return [str(e) for e in field_errors(exc)]
    except UnknownKindError as exc:
        return [str(exc)]
    return []


def test_at_least_fifteen_distinct_cases() -> None:
    assert len({c.id for c in CASES}) == len(CASES) >= 15


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_rejected_with_field_and_reason(case: Case) -> None:
    doc = load_example(case.example)
    case.mutate(doc)
    errors = _genfab_errors(doc)
    assert errors, "genfab accepted a bad spec"
    matching = [e for e in errors if e.startswith(f"{case.path}: ") and case.message in e]
    assert matching, f"no error for {case.path} containing {case.message!r}; got {errors}"
    assert all(e.count("(got ") <= 1 and e.count(", got ") + e.count("(got ") <= 1 for e in matching), matching


@pytest.mark.parametrize("case", [c for c in CASES if c.crd], ids=lambda c: c.id)
def test_crd_rejects_the_same(case: Case) -> None:
    doc = load_example(case.example)
    case.mutate(doc)
    errors = crd_validator.validate(build_crd(doc["kind"]), doc)
    assert errors, "the CRD would accept a spec genfab rejects"


def test_unknown_kind_and_api_version() -> None:
    assert "allowed: SceneJob, DatasetJob, TuningRun" in _genfab_errors({"kind": "Scene", "apiVersion": "x"})[0]
    doc = load_example(VD) | {"apiVersion": "genfab.dev/v1"}
    assert "allowed: 'genfab.dev/v1alpha1'" in _genfab_errors(doc)[0]


def test_cli_validate_prints_every_error_and_exits_1(tmp_path) -> None:
    doc = load_example(VD)
    doc["spec"]["output"] = "s3://genfab-out/../x"
    doc["spec"]["vistadream"]["coarseMaxInpaintRatio"] = 2
    path = tmp_path / "bad.yaml"
    import yaml

    path.write_text(yaml.safe_dump(doc))
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 1
    assert (f"{path}: spec.output: S3 key prefix must not contain '.' or '..' path segments "
            "(got 's3://genfab-out/../x')") in (
        result.output
    )
    assert "spec.vistadream.coarseMaxInpaintRatio: Input should be less than or equal to 1 (got 2)" in result.output


def test_cli_validate_reports_yaml_syntax_errors(tmp_path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("kind: SceneJob\nspec: [unclosed\n")
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 1
    assert "(yaml)" in result.output and "line" in result.output


def test_cli_reads_a_resource_from_stdin() -> None:
    """`-` is standard input (as for `kubectl apply -f -`): validated, planned, named `(stdin)`."""
    import yaml

    text = yaml.safe_dump(load_example(VD))
    valid = CliRunner().invoke(cli, ["validate", "-"], input=text)
    assert valid.exit_code == 0 and valid.output.startswith("(stdin): SceneJob/"), valid.output
    assert CliRunner().invoke(cli, ["plan", "-"], input=text).exit_code == 0
    bad = CliRunner().invoke(cli, ["validate", "-"], input=text.replace("output:", "outptu:"))
    assert bad.exit_code == 1 and "(stdin): spec.outptu: unknown field (did you mean output?)" in bad.output
    two = CliRunner().invoke(cli, ["plan", "-"], input=text + "---\n" + text)
    assert two.exit_code == 1
    assert "(stdin): (file): 2 documents; this command takes a file with one resource" in two.output


def test_deep_values_are_one_error_not_a_crash() -> None:
    """A value nested far deeper than any spec needs (a few KB of brackets) is an error naming its field,
    never a RecursionError: in a curated sample's own keys, a custom stage's config, or `kind`."""
    deep: dict[str, Any] = {"x": 1}
    for _ in range(600):
        deep = {"a": deep}
    doc = load_example(WE)
    doc["spec"]["input"] = {"samples": [{"index": 0, "photorealistic": {"path": "a.png"}, "notes": deep}],
                            "datasetUri": "s3://genfab-data/set"}
    assert any(e.startswith("spec.input.samples[0]: ") and "levels deep" in e for e in _genfab_errors(doc))
    doc = load_example(WE)
    doc["spec"]["customStages"] = [{"name": "extra", "image": "lab/x:1", "config": deep}]
    assert any(e.startswith("spec.customStages[0].config: ") and "at most 32" in e for e in _genfab_errors(doc))
    for _ in range(3000):  # past what repr() can show
        deep = {"a": deep}
    assert "nested too deep to show" in _genfab_errors({"kind": deep, "apiVersion": "genfab.dev/v1alpha1"})[0]

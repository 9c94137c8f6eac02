"""What closed the CRD/genfab disagreements the fuzz found (tests/realserver/test_fuzz_agreement.py
holds the two to it on Kubernetes' own server): nulls read as the server stores them, 64-bit integers,
no NaN in a custom stage's config, a DNS-label name."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from genfab.api import parse_resource
from genfab.api.crd import as_stored
from tests.helpers import load_example


def test_null_in_a_field_that_is_not_nullable_reads_as_unset_or_the_default() -> None:
    doc = load_example("tuningrun-difix.yaml")
    doc["spec"]["hyperparameters"]["learningRate"] = None  # has a default: the server stores it
    doc["spec"]["retries"] = None
    stored = as_stored(doc)
    assert "retries" not in stored["spec"] or stored["spec"]["retries"] is not None
    parsed = parse_resource(stored)
    assert parsed.spec.hyperparameters.learning_rate == parse_resource(
        {**load_example("tuningrun-difix.yaml"), "spec": {**load_example("tuningrun-difix.yaml")["spec"],
                                                           "hyperparameters": {}}}).spec.hyperparameters.learning_rate
    assert as_stored("not a document") == "not a document"


@pytest.mark.parametrize("value", [1e300, 2**63, -(2**63) - 1])
def test_an_integer_is_64_bits(value: Any) -> None:
    doc = load_example("tuningrun-difix.yaml")
    doc["spec"]["retries"] = value
    with pytest.raises(ValidationError, match="integer"):
        parse_resource(doc)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_custom_stage_config_holds_no_nan(value: float) -> None:
    doc = load_example("datasetjob-custom-stage.yaml")
    doc["spec"]["customStages"][0]["config"] = {"margin": value}
    with pytest.raises(ValidationError, match="NaN or an infinity"):
        parse_resource(doc)

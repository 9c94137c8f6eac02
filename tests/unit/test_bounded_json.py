"""The operator's bounded JSON decoding: nothing deeper than MAX_DEPTH reaches kopf, however deep the
document, and ordinary documents come back unchanged."""

from __future__ import annotations

import json

import pytest

from genfab.api.base import json_depth
from genfab.operator import bounded_json as bj


def deep_text(levels: int, inner: str = "1") -> str:
    return '{"a": ' * levels + inner + "}" * levels


@pytest.mark.parametrize("levels", [5, bj.MAX_DEPTH, bj.MAX_DEPTH + 1, 600, 5000])
def test_no_document_comes_back_deeper_than_the_bound(levels: int) -> None:
    value = bj.loads(deep_text(levels))
    assert json_depth(value) == min(levels, bj.MAX_DEPTH)
    if levels > bj.MAX_DEPTH:
        node = value
        for _ in range(bj.MAX_DEPTH - 1):
            node = node["a"]
        assert node["a"] == bj.TOO_DEEP


def test_strings_with_brackets_and_escapes_survive_the_text_cut() -> None:
    text = '{"s": "a{[\\"]}", "deep": ' + deep_text(3000, '"x]}"') + ', "t": [1, {"u": "}"}]}'
    value = bj.loads(text.encode())
    assert value["s"] == 'a{["]}' and value["t"] == [1, {"u": "}"}]
    assert json_depth(value) == bj.MAX_DEPTH


def test_ordinary_documents_are_unchanged() -> None:
    doc = {"kind": "SceneJob", "spec": {"customStages": [{"config": {"x": [1, {"y": None}]}}]}}
    assert bj.loads(json.dumps(doc)) == doc


def test_kopf_decodes_with_it_once_installed() -> None:
    """kopf's private decoder moves between releases: this fails loudly when it does."""
    import aiohttp
    from kopf._cogs.clients import api

    bj.install()
    bj.install()  # idempotent
    assert api.json.loads is bj.loads
    assert aiohttp.ClientResponse.json.__name__ == "bounded"

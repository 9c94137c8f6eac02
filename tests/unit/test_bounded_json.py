"""The operator's bounded JSON decoding: nothing deeper than MAX_DEPTH reaches kopf, however deep the
document, and ordinary documents come back unchanged."""

from __future__ import annotations

import json
import random

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


@pytest.mark.parametrize(("value", "levels"), [
    (1, 0), ("x", 0), (None, 0), ({}, 1), ([], 1), ({"a": 1, "b": "c"}, 1), ([[]], 2), ({"a": [1, {"b": {}}]}, 4),
    ([{"a": 1}, [[[]]], {"b": {"c": {"d": []}}}], 5),  # the deepest branch counts, not the first or the last
    ({"a": [[], {"b": [{}]}], "z": 0}, 5),
])
def test_json_depth_counts_the_deepest_branch(value: object, levels: int) -> None:
    assert json_depth(value) == levels


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


def _random(rng: random.Random, depth: int) -> object:
    r = rng.random()
    if depth > 0 and r < 0.4:
        return {f'k{i}"[{{': _random(rng, depth - rng.randint(0, 3)) for i in range(rng.randint(0, 3))}
    if depth > 0 and r < 0.7:
        return [_random(rng, depth - rng.randint(0, 3)) for _ in range(rng.randint(0, 3))]
    return rng.choice(['a]\\"}', 1, None, "x\\\\", True, 2.5])


def _nested(levels: int) -> object:
    node: object = {"leaf": "]}"}
    for i in range(levels):
        node = {"a": node} if i % 2 else [node, 1]
    return node


@pytest.mark.parametrize("seed", range(16))
def test_a_list_holding_deep_objects_is_cut_exactly_where_the_whole_document_would_be(seed: int) -> None:
    """L4: a document too deep for the decoder is decoded part by part (a list response item by item,
    only the deep item's text scanned). The result is the whole document decoded, then cut at MAX_DEPTH."""
    import sys

    rng = random.Random(seed)
    items = [_random(rng, rng.randint(1, 12)) for _ in range(rng.randint(0, 6))]
    for _ in range(rng.randint(1, 3)):
        items.insert(rng.randint(0, len(items)), {"spec": {"config": _nested(rng.choice([60, 150, 1500, 2500]))}})
    doc = {"apiVersion": "v1", "items": items, "kind": "List"} if seed % 3 else {"type": "ADDED", "object": items[0]}
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(20000)  # the reference: decoded whole, then cut
    try:
        text = json.dumps(doc, indent=1 if seed % 2 else None)
        expected = bj._cut(json.loads(text), bj.MAX_DEPTH)
    finally:
        sys.setrecursionlimit(before)
    assert bj.loads(text) == expected
    assert json_depth(bj.loads(text)) <= bj.MAX_DEPTH


@pytest.mark.parametrize("text", ['{"a": [1, 2}', '{"a": 1} x', '[' * 3000 + ']' * 2999])
def test_malformed_deep_documents_are_json_errors(text: str) -> None:
    with pytest.raises(ValueError):
        bj.loads(text)

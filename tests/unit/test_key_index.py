"""The report's compact listing: the same answers as a sorted dict of keys, at any block boundary."""

from __future__ import annotations

import random

import pytest

from genfab.report.keyindex import BLOCK, KeyIndex, UnsortedKeys, _shared


def keys(n: int, seed: int = 0) -> dict[str, int]:
    rnd = random.Random(seed)
    out = {}
    for i in range(n):
        stem = f"data/{rnd.choice(['outputs', 'stage_1', 'stage_1-x', 'stage_10'])}/{i:06d}"
        out[f"{stem}_{rnd.choice(['input.png', 'mask.png', 'é.json', 'a:b'])}"] = rnd.randrange(1 << 40)
    return out


@pytest.mark.parametrize("n", [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 5 * BLOCK + 3, 3000])
def test_it_answers_as_the_mapping_does(n: int) -> None:
    plain = keys(n)
    index = KeyIndex.of(plain.items())
    assert len(index) == len(plain) and list(index) == sorted(plain)
    for key, size in plain.items():
        assert key in index and index[key] == size
    for missing in ("", "data/", "data/outputs/000000", "zzz", "data/outputs/000001_input.pngx", 3):
        assert missing not in index
    with pytest.raises(KeyError):
        index["nope"]
    for prefix in ("", "data/", "data/stage_1", "data/stage_1/", "data/stage_1-x/", "data/outputs/0001", "q"):
        expected = sorted(k for k in plain if k.startswith(prefix))
        assert index.under(prefix) == expected and list(index.each(prefix)) == expected


def test_keys_out_of_order_or_with_nul_are_refused() -> None:
    index = KeyIndex()
    index.add("b", 1)
    with pytest.raises(UnsortedKeys, match="out of order"):
        index.add("a", 1)
    with pytest.raises(UnsortedKeys, match="out of order"):
        index.add("b", 1)
    with pytest.raises(UnsortedKeys, match="NUL"):
        index.add("c\0", 1)


@pytest.mark.parametrize(("a", "b", "n"), [("", "", 0), ("abc", "abd", 2), ("abc", "abc", 3), ("ab", "abc", 2),
                                           ("x", "y", 0), ("é/1", "é/2", 2)])
def test_shared_prefix(a: str, b: str, n: int) -> None:
    assert _shared(a, b) == n

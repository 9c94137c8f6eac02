"""Sharding the operator's work by resource UID (genfab.operator.sharding, handlers.watch_selectors)."""

from __future__ import annotations

import uuid

import pytest

from genfab.operator.handlers import watch_selectors
from genfab.operator.sharding import BUCKETS, LABEL_BUCKET, Shard, bucket_label, bucket_of, fnv1a64
from tests.emulator.cluster import in_shard, parse_shard_selector


@pytest.mark.parametrize(("text", "expected"), [
    # The FNV-1a 64 reference vectors (Fowler, Noll, Vo; the same as Go's hash/fnv New64a).
    ("", 0xCBF29CE484222325),
    ("a", 0xAF63DC4C8601EC8C),
    ("foobar", 0x85944171F73967E8),
])
def test_fnv1a64_matches_the_reference_vectors(text: str, expected: int) -> None:
    assert fnv1a64(text) == expected


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 7, 8, 16, 64])
def test_the_shards_cover_every_bucket_exactly_once(count: int) -> None:
    owned = [b for i in range(count) for b in Shard(i, count).buckets]
    assert owned == list(range(BUCKETS))
    sizes = {len(Shard(i, count).buckets) for i in range(count)}
    assert max(sizes) - min(sizes) <= 1


def test_uids_spread_evenly_over_four_shards() -> None:
    uids = [str(uuid.UUID(int=i * 0x9E3779B97F4A7C15 % (1 << 128), version=4)) for i in range(4000)]
    counts = [sum(Shard(i, 4).owns(u) for u in uids) for i in range(4)]
    assert sum(counts) == len(uids)
    assert min(counts) > 0.8 * len(uids) / 4, counts


@pytest.mark.parametrize(("shard", "selector"), [
    (Shard(0, 1), "shardRange(object.metadata.uid, '0x0000000000000000', '0x10000000000000000')"),
    (Shard(0, 2), "shardRange(object.metadata.uid, '0x0000000000000000', '0x8000000000000000')"),
    (Shard(1, 2), "shardRange(object.metadata.uid, '0x8000000000000000', '0x10000000000000000')"),
    (Shard(1, 3), "shardRange(object.metadata.uid, '0x5500000000000000', '0xaa00000000000000')"),
])
def test_shard_selectors_are_what_the_api_server_parses(shard: Shard, selector: str) -> None:
    assert shard.shard_selector() == selector


@pytest.mark.parametrize("count", [2, 3, 4])
def test_the_selector_the_api_server_applies_agrees_with_owns(count: int) -> None:
    """The emulator's shardSelector (the API server's rule, written from its documentation) against
    the operator's own `owns`; tests/realserver checks both against Kubernetes' own server."""
    uids = [str(uuid.uuid4()) for _ in range(300)]
    for i in range(count):
        shard = Shard(i, count)
        ranges = parse_shard_selector(shard.shard_selector())
        for uid in uids:
            assert in_shard({"metadata": {"uid": uid}}, ranges) == shard.owns(uid)


def test_a_jobs_bucket_label_is_in_exactly_one_shards_label_selector() -> None:
    uid = "0b7e1f4e-5a38-4c4e-9d2c-3f1c2b8a9e77"
    label = bucket_label(uid)
    assert label == f"{bucket_of(uid):02x}" and len(label) == 2
    holders = [i for i in range(4) if label in Shard(i, 4).label_selector().split("(")[1].rstrip(")").split(",")]
    assert holders == [i for i in range(4) if Shard(i, 4).owns(uid)]
    assert Shard(0, 4).label_selector().startswith(f"{LABEL_BUCKET} in (00,01,")


@pytest.mark.parametrize(("text", "expected"), [
    ("0/1", Shard(0, 1)), ("3/4", Shard(3, 4)), (" 1 / 2 ", Shard(1, 2)),
])
def test_parse(text: str, expected: Shard) -> None:
    assert Shard.parse(text) == expected
    assert str(expected) == text.replace(" ", "")


@pytest.mark.parametrize(("text", "why"), [
    ("4/4", "0 <= I < N"), ("0/0", "1 <= N <= 64"), ("0/65", "1 <= N <= 64"), ("a/b", "expected I/N"),
    ("1", "expected I/N"), ("-1/2", "expected I/N"),
])
def test_parse_refuses_with_what_is_allowed(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        Shard.parse(text)


def test_watch_selectors_unsharded_only_genfabs_own_jobs_and_pods() -> None:
    found = {(s.setting, s.resource): s.value for s in watch_selectors(None)}
    assert found == {("label_selectors", ("batch", "jobs")): "app.kubernetes.io/managed-by=genfab",
                     ("label_selectors", ("", "pods")): "app.kubernetes.io/managed-by=genfab"}


def test_watch_selectors_of_a_shard() -> None:
    shard = Shard(1, 4)
    found = {(s.setting, s.resource): s.value for s in watch_selectors(shard)}
    children = f"app.kubernetes.io/managed-by=genfab,{shard.label_selector()}"
    assert found == {
        ("label_selectors", ("batch", "jobs")): children, ("label_selectors", ("", "pods")): children,
        **{("shard_selectors", ("genfab.dev", plural)): shard.shard_selector()
           for plural in ("scenejobs", "datasetjobs", "tuningruns")}}

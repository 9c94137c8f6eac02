"""The lab's difix names and leak-free split (pure): sample ids, group ids, meta.json keys, and a property
test of the split over many seeds, ratios and group layouts."""

from __future__ import annotations

import random

import pytest

from genfab.stages.difix.ids import REQUIRED_META, GroupError, group_id, meta, sample_id
from genfab.stages.difix.split import split_by_group


def test_sample_id_and_meta_follow_the_seed() -> None:
    assert sample_id("hi4d_pair00_dance", 16, 4, "000123", "000123") == \
        "hi4d_pair00_dance__tcam16__rccam4__tf000123__rf000123"
    m = meta("hi4d", "hi4d_pair00_dance", "pair00", 16, 4, "000123", "000125", "jpg", {"render": "renders/x.png"})
    assert tuple(k for k in m if k != "provenance") == REQUIRED_META
    assert m["sample_id"] == "hi4d_pair00_dance__tcam16__rccam4__tf000123__rf000125"
    assert m["image_path"] == f"samples/{m['sample_id']}/image.png"
    assert m["target_image_path"].endswith("/target_image.jpg") and m["ref_image_path"].endswith("/ref_image.jpg")
    assert m["provenance"] == {"render": "renders/x.png"} and "provenance" not in meta("d", "s", "s", 0, 1, "0", "0",
                                                                                       "png")


@pytest.mark.parametrize(("scene", "rule", "pattern", "group"), [
    ("hi4d_pair00_dance", "pair", None, "pair00"),
    ("hi4d_pair17_hug", "pair", None, "pair17"),
    ("studio_anna_walk", "scene", None, "studio_anna_walk"),
    ("studio_anna_walk", "pattern", r"^studio_([a-z]+)_", "anna"),
])
def test_group_ids(scene: str, rule: str, pattern: str | None, group: str) -> None:
    assert group_id(scene, rule, pattern) == group  # type: ignore[arg-type]


@pytest.mark.parametrize(("scene", "rule", "pattern", "message"), [
    ("studio_anna_walk", "pair", None, "needs a pair id"),
    ("studio_anna_walk", "pattern", r"^lab_(\w+)", "does not match"),
])
def test_a_scene_without_a_group_is_one_clear_error(scene: str, rule: str, pattern: str | None, message: str) -> None:
    with pytest.raises(GroupError, match=message):
        group_id(scene, rule, pattern)  # type: ignore[arg-type]


def _samples(rng: random.Random, groups: int) -> list[tuple[str, str]]:
    return [(f"g{g:03d}_s{i:03d}", f"g{g:03d}") for g in range(groups) for i in range(rng.randint(1, 12))]


@pytest.mark.parametrize("seed", range(40))
def test_no_group_crosses_sides_and_the_ratio_is_as_close_as_whole_groups_allow(seed: int) -> None:
    rng = random.Random(seed)
    samples = _samples(rng, rng.randint(2, 30))
    ratio = rng.choice([0.5, 0.7, 0.8, 0.9, 0.95])
    split = split_by_group(samples, ratio, seed)
    group_of = dict(samples)
    train_groups = {group_of[s] for s in split.train}
    test_groups = {group_of[s] for s in split.test}
    assert not train_groups & test_groups  # no leakage
    assert sorted(split.train + split.test) == sorted(s for s, _ in samples)  # every sample once
    assert split.train and split.test  # two or more groups: both sides get one
    largest = max(sum(1 for _, g in samples if g == group) for group in group_of.values())
    achieved = len(split.train) / len(samples)
    assert abs(achieved - ratio) <= largest / len(samples) + 1e-9
    summary = split.summary
    assert summary["leakage_check"] == {"train_test_group_intersection": [], "ok": True}
    assert summary["counts"] == {"train": len(split.train), "test": len(split.test), "all": len(samples)}
    assert summary["achieved_train_ratio"] == round(achieved, 6) and summary["seed"] == seed


@pytest.mark.parametrize(("sizes", "ratio", "train"), [
    ({"pair00": 41, "pair01": 19}, 0.6, ["pair00"]),  # 0.683 beats 0.317
    ({"a": 10, "b": 20, "c": 70}, 0.7, ["c"]),
    ({"a": 45, "b": 30, "c": 15, "d": 10}, 0.9, ["a", "b", "c"]),
])
def test_few_groups_get_the_closest_split_whole_groups_allow(sizes: dict[str, int], ratio: float,
                                                              train: list[str]) -> None:
    samples = [(f"{g}_{i:03d}", g) for g, n in sizes.items() for i in range(n)]
    for seed in range(5):
        assert split_by_group(samples, ratio, seed).summary["groups"]["train"] == train


def test_the_split_is_deterministic_and_ignores_listing_order() -> None:
    samples = _samples(random.Random(3), 12)
    first = split_by_group(samples, 0.8, 7)
    again = split_by_group(list(reversed(samples)), 0.8, 7)
    assert first == again
    assert split_by_group(samples, 0.8, 8).train != first.train  # another seed, another split


def test_fixed_test_groups_are_always_test() -> None:
    samples = _samples(random.Random(5), 10)
    for seed in range(20):
        split = split_by_group(samples, 0.9, seed, test_groups=["g003", "g007", "g404"])
        test = {g for s, g in samples if s in set(split.test)}
        assert {"g003", "g007"} <= test
        assert not {"g003", "g007"} & {g for s, g in samples if s in set(split.train)}
        assert split.summary["fixed_test_groups"] == ["g003", "g007"]
        assert split.summary["unknown_test_groups"] == ["g404"]


@pytest.mark.parametrize(("mode", "prefix", "root", "image"), [
    ("relative", "/data", None, "samples/{sid}/image.png"),
    ("prefix", "/data/exp1/", None, "/data/exp1/samples/{sid}/image.png"),
    ("absolute", "/data", "/scratch/difix/exp1", "/scratch/difix/exp1/samples/{sid}/image.png"),
])
def test_data_json_in_each_path_mode(mode: str, prefix: str, root: str | None, image: str) -> None:
    from genfab.stages.difix.adapter import data_json

    a = meta("hi4d", "hi4d_pair00_dance", "pair00", 16, 4, "000123", "000123", "jpg")
    b = meta("hi4d", "hi4d_pair01_hug", "pair01", 2, 3, "000007", "000007", "png")
    doc = data_json({a["sample_id"]: a, b["sample_id"]: b}, [a["sample_id"]], [b["sample_id"]], "remove degradation",
                    mode, prefix, root)  # type: ignore[arg-type]
    assert list(doc) == ["train", "test"] and list(doc["train"]) == [a["sample_id"]]
    entry = doc["train"][a["sample_id"]]
    assert entry == {"image": image.format(sid=a["sample_id"]),
                     "target_image": image.format(sid=a["sample_id"]).replace("image.png", "target_image.jpg"),
                     "ref_image": image.format(sid=a["sample_id"]).replace("image.png", "ref_image.jpg"),
                     "prompt": "remove degradation"}
    assert doc["test"][b["sample_id"]]["target_image"].endswith("/target_image.png")


def test_absolute_paths_need_a_local_output() -> None:
    from genfab.stages.difix.adapter import trainer_path

    with pytest.raises(ValueError, match="paths: absolute needs a file:// output"):
        trainer_path("samples/x/image.png", "absolute", "/data", None)

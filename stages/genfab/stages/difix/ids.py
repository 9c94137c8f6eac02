"""The lab's difix names, pure: a sample's id, its group and its `meta.json` (exactly the document's required
keys; anything genfab adds goes under `provenance`)."""

from __future__ import annotations

import re
from typing import Any, Literal

GroupBy = Literal["pair", "scene", "pattern"]
PAIR = re.compile(r"(pair\d+)")
"""HI4D's pair id inside a scene name (`hi4d_pair00_dance` -> `pair00`)."""
REQUIRED_META = ("sample_id", "dataset", "scene_name", "group_id", "target_cam_id", "reference_cam_id",
                 "target_fname", "reference_fname", "image_path", "target_image_path", "ref_image_path")
"""The seed's `meta.json` keys, in its order."""


class GroupError(ValueError):
    """A scene name the source's `groupBy` rule cannot give a group: which scene, which rule."""


def sample_id(scene_name: str, target_cam: int, reference_cam: int, target_fname: str, reference_fname: str) -> str:
    """`hi4d_pair00_dance__tcam16__rccam4__tf000123__rf000123` (the seed's pattern)."""
    return f"{scene_name}__tcam{target_cam}__rccam{reference_cam}__tf{target_fname}__rf{reference_fname}"


def group_id(scene_name: str, rule: GroupBy, pattern: str | None = None) -> str:
    """The split's `group_id`: the pair (HI4D), the scene itself, or the first group of `pattern`."""
    if rule == "scene":
        return scene_name
    if rule == "pair":
        found = PAIR.search(scene_name)
        if found is None:
            raise GroupError(f"scene {scene_name!r}: groupBy pair needs a pair id (pairNN) in the scene name; "
                             "use groupBy scene or pattern for this source")
        return found.group(1)
    if pattern is None:
        raise GroupError("groupBy pattern needs groupPattern")
    matched = re.search(pattern, scene_name)
    if matched is None or not matched.groups() or not matched.group(1):
        raise GroupError(f"scene {scene_name!r}: groupPattern {pattern!r} does not match it with a non-empty "
                         "first group")
    return matched.group(1)


def meta(dataset: str, scene_name: str, group: str, target_cam: int, reference_cam: int, target_fname: str,
         reference_fname: str, image_format: str, provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    """A sample's `meta.json`: the seed's keys, paths relative to the experiment root (the export adds
    `provenance` and the triplet's `quality` figures)."""
    sid = sample_id(scene_name, target_cam, reference_cam, target_fname, reference_fname)
    folder = f"samples/{sid}"
    out: dict[str, Any] = {
        "sample_id": sid, "dataset": dataset, "scene_name": scene_name, "group_id": group,
        "target_cam_id": target_cam, "reference_cam_id": reference_cam, "target_fname": target_fname,
        "reference_fname": reference_fname, "image_path": f"{folder}/image.png",
        "target_image_path": f"{folder}/target_image.{image_format}",
        "ref_image_path": f"{folder}/ref_image.{image_format}"}
    if provenance:
        out["provenance"] = provenance
    return out

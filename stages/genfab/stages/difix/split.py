"""Seed 002's leak-free split, pure: samples go to train or test by `group_id`, so one group (an HI4D
pair, a scene) is never on both sides.

Groups named in `testGroups` are test. The others are shuffled with `seed` (a stable order first:
sorted by id, so the same samples give the same split whatever order they were listed in) and taken
one by one onto the side further below its target, train's being `trainRatio` of all samples: the
achieved ratio is as close as whole groups allow. With two or more free groups and no fixed test
group, each side gets at least one.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Split:
    train: tuple[str, ...]
    """Sample ids, sorted."""
    test: tuple[str, ...]
    summary: dict[str, Any]
    """`split_summary.json`."""


def split_by_group(samples: Iterable[tuple[str, str]], train_ratio: float, seed: int,
                   test_groups: Sequence[str] = ()) -> Split:
    """Split (sample_id, group_id) pairs; see the module docstring."""
    if not 0.0 < train_ratio < 1.0:
        raise ValueError(f"trainRatio must be in (0, 1), got {train_ratio}")
    members: dict[str, list[str]] = {}
    for sid, group in samples:
        members.setdefault(group, []).append(sid)
    total = sum(len(v) for v in members.values())
    fixed = sorted(set(test_groups) & set(members))
    free = sorted(set(members) - set(fixed))
    random.Random(seed).shuffle(free)
    want_train = train_ratio * total
    want_test = total - want_train
    train_groups: list[str] = []
    test_side = list(fixed)
    have_train = 0
    have_test = sum(len(members[g]) for g in fixed)
    for i, group in enumerate(free):
        size = len(members[group])
        left = len(free) - i
        if not test_side and left == 1 and train_groups:  # the last free group: test must not stay empty
            to_train = False
        elif not train_groups and left == 1:
            to_train = True
        else:  # the side further below its target, relatively
            to_train = _short(want_train, have_train) >= _short(want_test, have_test)
        if to_train:
            train_groups.append(group)
            have_train += size
        else:
            test_side.append(group)
            have_test += size
    train = tuple(sorted(s for g in train_groups for s in members[g]))
    test = tuple(sorted(s for g in test_side for s in members[g]))
    leak = sorted(set(train_groups) & set(test_side))
    summary = {
        "seed": seed, "train_ratio": train_ratio,
        "achieved_train_ratio": round(len(train) / total, 6) if total else None,
        "counts": {"train": len(train), "test": len(test), "all": total},
        "groups": {"train": sorted(train_groups), "test": sorted(test_side)},
        "fixed_test_groups": list(fixed),
        "unknown_test_groups": sorted(set(test_groups) - set(members)),
        "leakage_check": {"train_test_group_intersection": leak, "ok": not leak},
    }
    return Split(train, test, summary)


def _short(want: float, have: int) -> float:
    """How far a side is below its target, as a fraction of the target."""
    return (want - have) / want if want > 0 else float("-inf")

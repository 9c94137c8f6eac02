"""The lab's difix leak-free split, pure: samples go to train or test by `group_id`, so one group (an HI4D
pair, a scene) is never on both sides.

Groups named in `testGroups` are test. The others (in a stable order first: sorted by id, so the same
samples give the same split whatever order they were listed in) are assigned with `seed`, train's
target being `trainRatio` of all samples:
- up to 16 free groups: every assignment is tried, and the seed picks one of those whose train share is
  within 0.02 of the closest achievable (whole groups rarely hit the ratio exactly; the seed still
  matters when several come close);
- more: the groups are shuffled with the seed and taken one by one onto the side further below its
  target, which lands within one group's size of the ratio.
With two or more free groups and no fixed test group, each side gets at least one.
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
    rng = random.Random(seed)
    want_train = train_ratio * total
    sizes = [len(members[g]) for g in free]
    picked = _exact(sizes, want_train, total, bool(fixed), rng) if len(free) <= EXACT_GROUPS else \
        _greedy(sizes, want_train, total - want_train, sum(len(members[g]) for g in fixed), bool(fixed), rng)
    train_groups = [free[i] for i in picked]
    test_side = list(fixed) + [g for i, g in enumerate(free) if i not in set(picked)]
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


EXACT_GROUPS = 16
TOLERANCE = 0.02


def _exact(sizes: list[int], want_train: float, total: int, fixed_test: bool, rng: random.Random) -> list[int]:
    """Indices of the train groups: a seeded pick among the assignments closest to the target."""
    n = len(sizes)
    sums = [0] * (1 << n)
    for mask in range(1, 1 << n):
        low = mask & -mask
        sums[mask] = sums[mask ^ low] + sizes[low.bit_length() - 1]
    full = (1 << n) - 1
    if n == 0:
        allowed = [0]
    elif fixed_test:
        allowed = list(range(1, 1 << n))
    elif n == 1:
        allowed = [full]
    else:
        allowed = list(range(1, full))  # both sides non-empty
    best = min(abs(sums[m] - want_train) for m in allowed)
    close = [m for m in allowed if abs(sums[m] - want_train) <= best + TOLERANCE * total + 1e-9]
    mask = rng.choice(close)
    return [i for i in range(n) if mask >> i & 1]


def _greedy(sizes: list[int], want_train: float, want_test: float, have_test: int, fixed_test: bool,
            rng: random.Random) -> list[int]:
    order = list(range(len(sizes)))
    rng.shuffle(order)
    train: list[int] = []
    have_train, test_empty = 0, not fixed_test
    for k, i in enumerate(order):
        left = len(order) - k
        if test_empty and left == 1 and train:  # the last free group: test must not stay empty
            to_train = False
        elif not train and left == 1:
            to_train = True
        else:  # the side further below its target, relatively
            to_train = _short(want_train, have_train) >= _short(want_test, have_test)
        if to_train:
            train.append(i)
            have_train += sizes[i]
        else:
            have_test += sizes[i]
            test_empty = False
    return train


def _short(want: float, have: int) -> float:
    """How far a side is below its target, as a fraction of the target."""
    return (want - have) / want if want > 0 else float("-inf")

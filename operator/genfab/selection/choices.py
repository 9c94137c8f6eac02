"""A person's choices at worldexplorer's manual selection gate, applied to the output: each chosen
candidate copied to the sample's `final/` (what the lab's worldexplorer document does by hand). One function for
`genfab select` and the review page (`genfab review`): every candidate is checked before anything is
copied, and each sample gets one line saying what was copied and what it still lacks."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from genfab.api.pipelines.worldexplorer import candidate_key, final_key
from genfab.inventory.gates import missing_by_sample
from genfab.storage import Storage

Choice = tuple[str, str, int]
"""(sample id, in-between view, candidate)."""
COMPLETE = "final/ is complete"


class ChoiceError(ValueError):
    """A chosen candidate is not there: one line naming it and the ones there; nothing was copied."""


def latest(choices: Sequence[Choice]) -> dict[tuple[str, str], int]:
    """Each (sample, view) once: a later choice of the same view wins."""
    return {(s, g): k for s, g, k in choices}


def apply_choices(store: Storage, folder_of: Callable[[str], str], required: Sequence[str],
                  chosen: Mapping[tuple[str, str], int]) -> list[str]:
    """Copy each chosen candidate into its sample's `final/`; per sample one line (what was copied;
    `still to choose ...` or `final/ is complete`). Raises `ChoiceError` before copying anything
    when a candidate is missing."""
    copies = []
    for (sample, view), k in chosen.items():
        folder = folder_of(sample)
        source, target = folder + candidate_key(view, k), folder + final_key(view)
        if not store.exists(source):
            have = sorted(o.key.rsplit("/", 1)[-1] for o in store.list(f"{folder}candidates/")
                          if o.key.rsplit("/", 1)[-1].startswith(f"{view}_"))
            allowed = (f"there are {', '.join(have)}" if have
                       else "the sample has no candidates there (wrong sample id?)")
            raise ChoiceError(f"{store.child(source)}: no such candidate; {allowed}; nothing was copied")
        copies.append((sample, view, k, source, target))
    for _, _, _, source, target in copies:
        store.copy(source, target)
    by_sample: dict[str, list[str]] = {}
    for sample, view, k, _, _ in copies:
        by_sample.setdefault(sample, []).append(f"{final_key(view)} <- {candidate_key(view, k)}")
    missing = missing_by_sample(store, {sample: folder_of(sample) for sample in by_sample}, required)
    lines = []
    for sample, made in by_sample.items():
        left = missing[sample]
        lines.append(f"{sample}: {'; '.join(made)}; " + (f"still to choose {', '.join(left)}" if left else COMPLETE))
    return lines


def complete_count(lines: Sequence[str]) -> int:
    return sum(line.endswith(COMPLETE) for line in lines)

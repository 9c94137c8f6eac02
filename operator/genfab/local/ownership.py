"""Whose record an output holds: a local run writes its `status.json`, `summary.json` and report only
into an output that is new or that this resource wrote, so running one job with `--out` pointed at
another's output (a copied folder, a typo) never replaces that job's record without a word.

`--force` takes the output over; the old record is kept beside it, under `_genfab/taken-over/`.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from genfab.contract import DROPPED_KEY, STATUS_KEY, SUMMARY_KEY
from genfab.contract.documents import DocumentError, parse_document
from genfab.contract.names import RUN_DIR
from genfab.storage import Storage

MAX_RECORD_BYTES = 16 << 20
"""The most of an earlier `status.json` read to learn whose it is (genfab writes a few kB)."""
TAKEN_OVER_DIR = f"{RUN_DIR}/taken-over"
RECORD_KEYS = (STATUS_KEY, SUMMARY_KEY, DROPPED_KEY)
"""The files that say what a run was; the report is made again from them (`genfab report`)."""


@dataclass(frozen=True)
class Owner:
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


KIND = re.compile(r"[A-Z][A-Za-z]{0,62}")
NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
"""A Kubernetes kind and resource name: what genfab writes. Anything else in a `status.json` (a path, a
terminal escape) names nobody, so it never becomes a folder of `taken-over/` or text on a terminal."""


def owner_of(doc: dict[str, object]) -> Owner | None:
    """The resource a `status.json` document names, or None when it names none in the shape genfab writes."""
    meta = doc.get("metadata")
    kind, name = doc.get("kind"), meta.get("name") if isinstance(meta, dict) else None
    if isinstance(kind, str) and isinstance(name, str) and KIND.fullmatch(kind) and NAME.fullmatch(name):
        return Owner(kind, name)
    return None


def refusal(mine: Owner, theirs: Owner | None, output_uri: str) -> str | None:
    """One line refusing to write `mine`'s record over another's (None: it is this resource's)."""
    if theirs == mine:
        return None
    whose = (f"the record of {theirs}" if theirs is not None
             else "a status.json genfab did not write (not a run's record)")
    return (f"{output_uri} holds {whose}, not {mine}'s: a run here would replace it; give this run its own "
            f"output (--out or spec.output), or say --force to take this one over (the old record is kept in "
            f"{TAKEN_OVER_DIR}/)")


def recorded_owner(store: Storage) -> Owner | bool | None:
    """Whose record `store` holds: True when it holds none (a new output), the Owner, or None for a
    `status.json` that names no resource (malformed, or too large to be genfab's)."""
    if not store.exists(STATUS_KEY):
        return True
    try:
        return owner_of(parse_document(store.read_at_most(STATUS_KEY, MAX_RECORD_BYTES, STATUS_KEY), STATUS_KEY))
    except (DocumentError, ValueError):
        return None


def take_over(store: Storage, previous: Owner | None, now: float | None = None) -> str:
    """Copy the earlier record beside the new one (`_genfab/taken-over/<kind>-<name>-<time>/`) and say where."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now if now is not None else time.time()))
    who = f"{previous.kind}-{previous.name}" if previous is not None else "unknown"
    folder = f"{TAKEN_OVER_DIR}/{who}-{stamp}"
    for key in RECORD_KEYS:
        if store.exists(key):
            store.copy(key, f"{folder}/{key.rsplit('/', 1)[-1]}")
    return f"took over the output from {previous or 'an unknown record'}: its record is kept in {folder}/"


def foreign_record(store: Storage, mine: Owner, output_uri: str) -> tuple[str, Owner | None] | None:
    """None when `store` is new or holds `mine`'s record; else the refusal line and the record's owner
    (None for a `status.json` that names none), for `take_over` under `--force`."""
    theirs = recorded_owner(store)
    if theirs is True:
        return None
    owner = theirs if isinstance(theirs, Owner) else None
    problem = refusal(mine, owner, output_uri)
    return None if problem is None else (problem, owner)

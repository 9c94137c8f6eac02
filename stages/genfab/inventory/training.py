"""A training stage's state document (`TRAINING_KEY`), read back by the executors. Untrusted: it
is written by a Pod (a custom trainer may write it too), so it is bounded in size and its values are
checked where they become status (`genfab.status.training`)."""

from __future__ import annotations

import json
from typing import Any

from genfab.contract.names import TRAINING_KEY
from genfab.storage import Storage, StorageError

MAX_TRAINING_BYTES = 256 << 10


def read_training(run: Storage) -> dict[str, Any] | None:
    """The document, or None when there is none yet or it is unusable (oversized, not a JSON object)."""
    size = run.size(TRAINING_KEY)
    if size is None or size > MAX_TRAINING_BYTES:
        return None
    try:
        doc = json.loads(run.read_bytes(TRAINING_KEY))
    except (StorageError, ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None

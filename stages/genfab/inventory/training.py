"""A training stage's state document (`TRAINING_KEY`), read back by the executors. Untrusted: it
is written by a Pod (a custom trainer may write it too), so it is bounded in size and its values are
checked where they become status (`genfab.status.training`)."""

from __future__ import annotations

import json
from typing import Any

from genfab.contract.names import TRAINING_KEY
from genfab.storage import Storage, StorageError, StorageLimit

MAX_TRAINING_BYTES = 256 << 10


def read_training(run: Storage) -> dict[str, Any] | None:
    """The document, or None when there is none yet or it is unusable (oversized, not a JSON object)."""
    try:
        doc = json.loads(run.read_at_most(TRAINING_KEY, MAX_TRAINING_BYTES))
    except StorageLimit:
        raise
    except (StorageError, ValueError, RecursionError):  # none yet, oversized, special, not JSON
        return None
    return doc if isinstance(doc, dict) else None

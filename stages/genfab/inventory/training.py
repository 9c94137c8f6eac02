"""A training stage's state document (`TRAINING_KEY`), read back by the executors. Untrusted: it
is written by a Pod (a custom trainer may write it too), so it is bounded in size and read leniently
(`genfab.api.training.TrainingState`: a value of the wrong type or range reads as unset)."""

from __future__ import annotations

from genfab.api.training import TrainingState
from genfab.contract.names import TRAINING_KEY
from genfab.storage import Storage, StorageError, StorageLimit

MAX_TRAINING_BYTES = 256 << 10


def read_training(run: Storage) -> TrainingState | None:
    """The document, or None when there is none yet or it is unusable (oversized, not a JSON object)."""
    try:
        raw = run.read_at_most(TRAINING_KEY, MAX_TRAINING_BYTES)
    except StorageLimit:
        raise
    except StorageError:  # none yet, oversized, special
        return None
    return TrainingState.parse(raw)

"""What stops a resource before its stages run, said in its status: an invalid spec (condition
InvalidSpec, no Job) or something outside the spec that blocks it (condition Stalled). Every refusal of
a reconcile leaves through `Refused`, caught in one place (`Controller._reconcile`)."""

from __future__ import annotations

import logging

from pydantic import ValidationError

from genfab.api.status import ResourceStatus
from genfab.operator.decide import invalid_status, stalled_status
from genfab.operator.objects import GenfabResource
from genfab.storage import StorageError, StorageLimit

log = logging.getLogger("genfab.operator")
STORAGE_UNAVAILABLE = "StorageUnavailable"


class Refused(Exception):
    """The resource cannot run now, said in its status: an invalid spec (`stalled` None: condition
    InvalidSpec, no Job) or something outside the spec that blocks it (`stalled`: the Stalled reason;
    `look_again`: no event says when it is fixed, so it is reconciled again every progressSeconds)."""

    def __init__(self, message: str, stalled: str | None = None, look_again: bool = False) -> None:
        super().__init__(message)
        self.message, self.stalled, self.look_again = message, stalled, look_again

    def status(self, previous: ResourceStatus | None, generation: int | None, now: str) -> ResourceStatus:
        if self.stalled is None:
            return invalid_status(previous, self.message, generation, now)
        return stalled_status(previous, self.stalled, self.message, generation, now)

    @classmethod
    def storage(cls, exc: StorageError) -> Refused:
        """StorageLimit for a bound of the operator's reached (`read_budget`), else StorageUnavailable."""
        return cls(f"storage: {exc}", exc.reason if isinstance(exc, StorageLimit) else STORAGE_UNAVAILABLE)


def previous_status(body: GenfabResource) -> ResourceStatus | None:
    """The status a resource carries, None when it has none or it cannot be read (logged)."""
    raw = body.get("status")
    if not raw:
        return None
    try:
        return ResourceStatus.model_validate(raw)
    except ValidationError:
        log.warning("%s: ignoring unreadable status", body.get("metadata", {}).get("name"))
        return None

"""What genfab changes in kopf's settings (handlers.configure), against kopf's own defaults."""

from __future__ import annotations

import kopf

from genfab.operator.handlers import WORKER_IDLE_SECONDS, NoDiffBase, NoProgress, configure
from genfab.operator.settings import OperatorSettings


def test_configure_keeps_idle_event_workers_shorter_than_kopfs_default() -> None:
    settings = kopf.OperatorSettings()
    configure(settings, OperatorSettings())
    # kopf's worker reads `queueing.idle_timeout` (kopf/_core/reactor/queueing.py); a plain attribute
    # set on a renamed field would pass the comparison below unread, so it must be kopf's own field.
    assert "idle_timeout" in kopf.OperatorSettings().queueing.__dataclass_fields__
    assert settings.queueing.idle_timeout == WORKER_IDLE_SECONDS < kopf.OperatorSettings().queueing.idle_timeout
    assert isinstance(settings.persistence.diffbase_storage, NoDiffBase)
    assert isinstance(settings.persistence.progress_storage, NoProgress)
    assert settings.posting.level == 30

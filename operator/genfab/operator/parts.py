"""What the controller and its helpers (starting stages, reading references, writing a run's records)
share: one of each per operator process."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from genfab.operator.builders import Owner
from genfab.operator.cache import Cache, Key
from genfab.operator.kube import Kube
from genfab.operator.metrics import OperatorMetrics
from genfab.operator.ownership import Children
from genfab.operator.progress import ProgressReader
from genfab.operator.read_budget import BytePool
from genfab.operator.settings import OperatorSettings
from genfab.operator.storage_access import StorageAccess
from genfab.storage import Storage


@dataclass
class Parts:
    kube: Kube
    settings: OperatorSettings
    metrics: OperatorMetrics
    clock: Callable[[], datetime]
    cache: Cache
    children: Children
    storage: StorageAccess
    read_pool: BytePool
    """Bytes all reconciles together may hold read from storage at once (`read_budget`)."""
    progress: ProgressReader

    def spec_storage(self, key: Key) -> dict[str, Any] | None:
        """The resource's `spec.storage`, else the operator's default storage."""
        body = self.cache.resource(key) or {}
        storage = (body.get("spec") or {}).get("storage")
        if storage:
            return dict(storage)
        default = self.settings.default_storage
        return default.to_yaml_dict() if default is not None else None

    def open(self, key: Key, uri: str, owner: Owner) -> Storage:
        """The storage at `uri` as the resource's stage Pods reach it (its endpoint and Secret)."""
        return self.storage.open(uri, owner, self.spec_storage(key))

"""Whether a namespace holds what stage Jobs need there (genfab.operator.prerequisites says what), by
GET per object; an object seen is trusted for `PRESENT_SECONDS` (no event says when an admin makes or
removes one: a namespace not ready is looked at again every progressSeconds)."""

from __future__ import annotations

from genfab.api.resources import Resource
from genfab.operator.kube import Kube, NotFound
from genfab.operator.objects import resource_path
from genfab.operator.prerequisites import Prerequisite, prerequisites
from genfab.operator.settings import OperatorSettings
from genfab.operator.throttle import Throttled

PRESENT_SECONDS = 60.0
"""How long an object a namespace must provide is trusted to exist after it was seen."""


class NamespaceCheck:
    def __init__(self, kube: Kube, settings: OperatorSettings) -> None:
        self.kube = kube
        self.settings = settings
        self._present: Throttled[tuple[str, str, str], bool] = Throttled(PRESENT_SECONDS)
        """Objects a namespace must provide, seen to exist: (namespace, plural, name)."""

    def missing(self, namespace: str, resource: Resource) -> list[Prerequisite]:
        """The objects stage Jobs need in `namespace` that do not exist (GET by name; RBAC allows
        exactly these names). Objects seen recently are not fetched again."""
        spec = resource.spec
        needed = prerequisites(spec, self.settings.storage_for(spec.storage), self.settings.stage_service_account,
                               self.settings.stage_network_policy)
        missing = []
        for item in needed:
            slot = (namespace, item.plural, item.name)
            if self._present.recent(slot) is not None:
                continue
            try:
                self.kube.get(resource_path(item.api_version, item.plural, namespace, item.name))
                self._present.put(slot, True)
            except NotFound:
                missing.append(item)
        return missing

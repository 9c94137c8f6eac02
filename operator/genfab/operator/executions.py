"""The execution folder of a reference-object resource (`executionMode` new or last): the one its status
keeps, else chosen now and written to the status before anything runs in it, so a reconcile that starts
before the watch brings the status back does not choose again."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from genfab.api.resources import Resource
from genfab.api.status import ResourceStatus
from genfab.operator.cache import Cache
from genfab.operator.kube import Kube, NotFound
from genfab.operator.objects import Key, Owner
from genfab.operator.objects import custom_path as cr_path
from genfab.operator.storage_access import Opener
from genfab.sequencing.execution import NAME, choose_execution, execution_choice

log = logging.getLogger("genfab.operator")


def execution_folder(kube: Kube, cache: Cache, open_run: Opener, now: datetime, key: Key, resource: Resource,
                     owner: Owner, previous: ResourceStatus | None, written: Callable[[Key], None]) -> str | None:
    """The execution folder's name (None: the resource has none); `written(key)` once the status was
    patched with a newly chosen one."""
    choice = execution_choice(resource)
    if choice is None:
        return None
    if previous is not None and previous.execution and NAME.match(previous.execution):
        return previous.execution  # (the status schema refuses another; a status read back is checked anyway)
    output = open_run(key, resource.spec.output, owner)
    name = choose_execution(choice, now.timestamp(), resource.spec.output, output.list)
    try:
        patched = kube.patch(cr_path(*key, "status"), {"status": {"execution": name}})
    except NotFound:
        return name  # deleted meanwhile: nothing will run
    cache.put_resource(key, patched)
    written(key)
    log.info("%s %s/%s: execution %s (executionMode %s)", *key, name, choice)
    return name

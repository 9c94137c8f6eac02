"""DatasetJob: synthetic training data (`relighting`, `reference-object` and `difix`, after the lab's scripts).

The `type` selector and one settings block per type come from the registered pipelines
(genfab.api.pipelines); `DatasetJobSpec` is built in genfab.api.resources.
"""

from __future__ import annotations

from genfab.api.common import CommonSpec


class DatasetJobBase(CommonSpec):
    """The spec: the pipeline (`type`) with its settings block, its inputs, and how its stages run."""

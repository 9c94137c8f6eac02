"""The local runner (`genfab run`): the operator's plan, executed as subprocesses on this machine."""

from genfab.local.output import resolve_output
from genfab.local.runner import LocalRunner, RunResult

__all__ = ["LocalRunner", "RunResult", "resolve_output"]

"""Where a local run writes: `--out`, else the spec's output if this machine can reach it, else a
local folder (said in one line); and where an earlier local run of another resource wrote."""

from __future__ import annotations

from collections.abc import Mapping

from genfab.api.status_document import StatusDocument
from genfab.contract import STATUS_KEY
from genfab.contract.documents import DocumentError
from genfab.sequencing import OK_PHASES
from genfab.storage import S3Settings, StorageError, open_storage

MAX_STATUS_BYTES = 4 << 20


def default_output(name: str) -> str:
    return f"file://./genfab-runs/{name}"


def reachable(uri: str, environ: Mapping[str, str]) -> str | None:
    """None if `uri` can be listed from here, else why not (quickly: one attempt, short timeouts)."""
    if uri.startswith("file://"):
        return None
    try:
        settings = S3Settings.from_env(dict(environ), max_attempts=1, connect_timeout=3.0, read_timeout=5.0)
        next(iter(open_storage(uri, settings).list(STATUS_KEY)), None)
    except StorageError as exc:
        return str(exc)
    except Exception as exc:  # missing credentials, DNS: anything means "not from here"
        return f"{type(exc).__name__}: {exc}"
    return None


def resolve_output(spec_output: str, out: str | None, name: str, environ: Mapping[str, str]) -> tuple[str, str | None]:
    """(output URI, a one-line note when the spec's output was replaced by the local default)."""
    if out is not None:
        return out, None
    problem = reachable(spec_output, environ)
    if problem is None:
        return spec_output, None
    fallback = default_output(name)
    return fallback, f"{spec_output} is not reachable from here ({problem}); writing to {fallback} instead"


def finished_local_run(target: str) -> str | None:
    """The default local output of `Kind/name` when a local run of it finished well there, else None."""
    kind, _, name = target.partition("/")
    root = default_output(name)
    try:
        with open_storage(root).open_read(STATUS_KEY) as stream:
            doc = StatusDocument.read(stream.read(MAX_STATUS_BYTES), STATUS_KEY)
    except (StorageError, DocumentError):
        return None
    return root if doc.kind == kind and doc.status.phase in OK_PHASES else None

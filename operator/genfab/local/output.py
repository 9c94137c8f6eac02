"""Where a local run writes: `--out`, else the spec's output if this machine can reach it, else a
local folder (said in one line)."""

from __future__ import annotations

from genfab.storage import S3Settings, StorageError, open_storage


def default_output(name: str) -> str:
    return f"file://./genfab-runs/{name}"


def reachable(uri: str) -> str | None:
    """None if `uri` can be listed from here, else why not (quickly: one attempt, short timeouts)."""
    if uri.startswith("file://"):
        return None
    try:
        storage = open_storage(uri, S3Settings.from_env(max_attempts=1, connect_timeout=3.0, read_timeout=5.0))
        next(iter(storage.list("_genfab/status.json")), None)
    except StorageError as exc:
        return str(exc)
    except Exception as exc:  # missing credentials, DNS: anything means "not from here"
        return f"{type(exc).__name__}: {exc}"
    return None


def resolve_output(spec_output: str, out: str | None, name: str) -> tuple[str, str | None]:
    """(output URI, a one-line note when the spec's output was replaced by the local default)."""
    if out is not None:
        return out, None
    problem = reachable(spec_output)
    if problem is None:
        return spec_output, None
    fallback = default_output(name)
    return fallback, f"{spec_output} is not reachable from here ({problem}); writing to {fallback} instead"

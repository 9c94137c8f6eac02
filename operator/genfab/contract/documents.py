"""A run's documents as the commands read them (`status.json`, `summary.json`, a sample's metadata, a
log record, a review request's body): JSON that a stage, another user or a broken disk may have
written, so parsed within bounds and to a known top-level shape, with one line for anything else."""

from __future__ import annotations

import json
from typing import Any


class DocumentError(ValueError):
    """A run document that is not what genfab writes there (one line: which, and what is wrong)."""


def parse_document(raw: bytes | str, what: str) -> dict[str, Any]:
    """The JSON object in `raw` (already read within its reader's size bound); DocumentError for text
    that is not JSON, nested beyond the parser's depth, or not an object."""
    try:
        doc = json.loads(raw)
    except RecursionError:
        raise DocumentError(f"{what}: nested too deeply to be a genfab document") from None
    except ValueError as exc:
        raise DocumentError(f"{what}: not JSON ({' '.join(str(exc).split())[:120]})") from None
    if not isinstance(doc, dict):
        raise DocumentError(f"{what}: a JSON {type(doc).__name__}, not the object genfab writes")
    return doc

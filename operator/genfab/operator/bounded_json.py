"""Resource bodies the operator decodes are bounded in depth, before kopf sees them.

A tenant's free-form field (`customStages[].config`) can nest hundreds of levels in a few KB, well
within what an API server accepts. Unbounded, such a body makes Python's JSON decoder raise
RecursionError inside kopf's watch stream (the operator exits, on every restart, and every tenant's
resources stop) or kopf's deep copy of the body loop forever. So every JSON document kopf decodes
goes through `loads`: anything nested deeper than `MAX_DEPTH` is cut and replaced by `TOO_DEEP`, a
string the API models refuse where it lands (the resource gets `InvalidSpec` naming the field, and
the operator serves everyone else). `install()` puts it in place of kopf's decoder (its watch stream
and its `response.json()` calls), once, at operator start.
"""

from __future__ import annotations

import json
import re
import types
from typing import Any

from genfab.api.base import json_depth

MAX_DEPTH = 100
"""Levels a decoded document keeps (genfab's own fields nest about 12; a custom stage's config 32)."""
TOO_DEEP = f"<cut by genfab: nested deeper than {MAX_DEPTH} levels>"


def _cut(value: Any, limit: int) -> Any:
    """`value` with every object or array at level `limit` + 1 replaced by TOO_DEEP (in place)."""
    stack = [(value, 1)]
    while stack:
        node, level = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in list(items):
            if isinstance(child, dict | list):
                if level >= limit:
                    node[key] = TOO_DEEP
                else:
                    stack.append((child, level + 1))
    return value


_TOKENS = re.compile(r'(?:[^"\[\]{}]+|"(?:[^"\\]|\\.)*")*([\[\]{}])')
"""The next bracket, after any text and strings (skipped whole inside the expression: a bracket in a
string is text), so the loop below runs once per bracket, not per character or string."""


def _cut_text(text: str, limit: int) -> str:
    """The JSON text with every object or array opened past level `limit` replaced by TOO_DEEP, for a
    document too deep for the decoder itself. It steps from token to token with a regular expression
    (strings whole), not character by character: a 20 MB list holding one deep object is cut in a
    fraction of the time, on kopf's event loop."""
    out: list[str] = []
    level = skip_from = 0
    kept = 0  # text[kept:] is not written out yet
    for match in _TOKENS.finditer(text):
        ch = match.group(1)
        if ch in "{[":
            level += 1
            if level > limit and not skip_from:
                skip_from = level
                out.append(text[kept:match.start(1)])
                out.append(json.dumps(TOO_DEEP))
        elif skip_from and level == skip_from:  # the closing bracket of the cut container
            skip_from = 0
            kept = match.end()
            level -= 1
            continue
        else:
            level -= 1
    if not skip_from:
        out.append(text[kept:])
    return "".join(out)


def loads(text: str | bytes, **kwargs: Any) -> Any:
    """`json.loads` that never nests deeper than MAX_DEPTH (see the module's docs)."""
    try:
        value = json.loads(text, **kwargs)
    except RecursionError:
        raw = text.decode("utf-8") if isinstance(text, bytes | bytearray) else text
        return _cut(json.loads(_cut_text(raw, MAX_DEPTH), **kwargs), MAX_DEPTH)
    return _cut(value, MAX_DEPTH) if json_depth(value) > MAX_DEPTH else value


_INSTALLED = False


def install() -> None:
    """Make kopf decode every body with `loads` (its watch stream and its `response.json()`)."""
    global _INSTALLED
    if _INSTALLED:
        return
    import aiohttp
    from kopf._cogs.clients import api

    setattr(api, "json", types.SimpleNamespace(loads=loads, dumps=json.dumps))  # noqa: B010 (kopf's private name)
    original = aiohttp.ClientResponse.json

    async def bounded(self: aiohttp.ClientResponse, **kwargs: Any) -> Any:
        kwargs.setdefault("loads", loads)  # kopf passes none: its bodies decode bounded
        return await original(self, **kwargs)

    aiohttp.ClientResponse.json = bounded  # type: ignore[method-assign]
    _INSTALLED = True

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
_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def _skip(text: str, at: int) -> int:
    """Where the whitespace at `at` ends."""
    found = _WS.match(text, at)
    return found.end() if found is not None else at


def _cut_text(text: str, limit: int, start: int = 0) -> tuple[str, int]:
    """The JSON container that starts at `start`, with every object or array opened past level `limit`
    (itself is level 1) replaced by TOO_DEEP, and where it ends: for a value too deep for the decoder
    itself. It steps from bracket to bracket with a regular expression, not character by character."""
    out: list[str] = []
    level = skip_from = 0
    kept = start  # text[kept:] is not written out yet
    for match in _TOKENS.finditer(text, start):
        ch = match.group(1)
        if ch in "{[":
            level += 1
            if level > limit and not skip_from:
                skip_from = level
                out.append(text[kept:match.start(1)])
                out.append(json.dumps(TOO_DEEP))
            continue
        level -= 1
        if skip_from and level + 1 == skip_from:  # the closing bracket of the cut container
            skip_from = 0
            kept = match.end()
        if level == 0:
            out.append(text[kept:match.end()])
            return "".join(out), match.end()
    raise json.JSONDecodeError("unterminated array or object", text, start)


DESCEND = 2
"""Levels whose containers are decoded member by member when the document is too deep for the
decoder (a list response and its `items`): below them, a value too deep is cut from its own text."""


def _value(text: str, at: int, level: int) -> tuple[Any, int]:
    """The JSON value at `at` (level `level` of a document too deep for the C decoder as a whole) and
    where it ends. The top levels (a list response and its `items`) are decoded member by member; below
    them a value is decoded by the C decoder, or, where it is too deep for it, cut first from its own
    text (only that value's text is scanned). A member decoded whole that may still be deeper than
    MAX_DEPTH (as many brackets as that) is cut after decoding."""
    if level <= DESCEND and text.startswith(("{", "["), at):
        keyed = text[at] == "{"
        return _members(text, _skip(text, at + 1), "}" if keyed else "]", level,
                        keyed)
    limit = max(1, MAX_DEPTH - level + 1)
    try:
        value, end = _DECODER.raw_decode(text, at)
    except RecursionError:
        cut, end = _cut_text(text, limit, at)
        return json.loads(cut), end
    if isinstance(value, dict | list) and text.count("{", at, end) + text.count("[", at, end) > limit \
            and json_depth(value) > limit:
        value = _cut(value, limit)
    return value, end


def _expect(text: str, at: int, what: str) -> int:
    at = _skip(text, at)
    if not text.startswith(what, at):
        raise json.JSONDecodeError(f"expecting {what!r}", text, at)
    return _skip(text, at + 1)


def _members(text: str, at: int, close: str, level: int, keyed: bool) -> tuple[Any, int]:
    """An object's members or an array's items (the container opened before `at`), each decoded on its own."""
    out: Any = {} if keyed else []
    if text.startswith(close, at):
        return out, at + 1
    while True:
        if keyed:
            key, at = _DECODER.raw_decode(text, at)
            at = _expect(text, at, ":")
            out[key], at = _value(text, at, level + 1)
        else:
            item, at = _value(text, at, level + 1)
            out.append(item)
        at = _skip(text, at)
        if text.startswith(close, at):
            return out, at + 1
        at = _expect(text, at, ",")


def _loads_deep(text: str) -> Any:
    """A document the C decoder cannot take whole: decoded part by part (`_value`), so a 20 MB list
    holding one deep object costs about two plain decodes, and only that object's text is scanned."""
    value, at = _value(text, _skip(text, 0), 1)
    if _skip(text, at) != len(text):
        raise json.JSONDecodeError("Extra data", text, at)
    return value


def loads(text: str | bytes, **kwargs: Any) -> Any:
    """`json.loads` that never nests deeper than MAX_DEPTH (see the module's docs)."""
    try:
        value = json.loads(text, **kwargs)
    except RecursionError:
        raw = text.decode("utf-8") if isinstance(text, bytes | bytearray) else text
        if kwargs:  # a caller's own hooks: the plain way (kopf and aiohttp pass none)
            return _cut(json.loads(_cut_text(raw, MAX_DEPTH)[0], **kwargs), MAX_DEPTH)
        return _loads_deep(raw)  # cut where deeper than MAX_DEPTH, part by part
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

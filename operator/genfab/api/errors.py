"""Validation errors as users need them: field path, bad value, what is allowed."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from genfab.api.base import RULE_ERROR

MAX_VALUE_CHARS = 80


@dataclass(frozen=True)
class FieldError:
    path: str
    """Dotted camelCase path, e.g. `spec.vistadream.coarseMinInpaintRatio`."""
    message: str
    value: str | None = None
    """repr of the offending value (shortened), when there is one."""

    def __str__(self) -> str:
        got = f" (got {self.value})" if self.value is not None else ""
        return f"{self.path}: {self.message}{got}"


def _path(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(root)"


def short_repr(value: Any) -> str:
    """repr of a user's value, at most MAX_VALUE_CHARS characters (a value nested too deep for repr is
    named by its type)."""
    try:
        text = repr(value)
    except RecursionError:
        return f"<a {type(value).__name__} nested too deep to show>"
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 3] + "..."


def _models(cls: type[BaseModel]) -> dict[str, type[BaseModel]]:
    found = {cls.__name__: cls}
    for sub in cls.__subclasses__():
        found.update(_models(sub))
    return found


def _nested(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models a field's annotation can hold (through Optional, unions, lists, dicts)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _nested(arg)]


def did_you_mean(title: str, loc: tuple[Any, ...]) -> str | None:
    """The field names closest to the unknown one at `loc` in the model called `title` (the
    resource's kind), as `a` or `a or b`; None when nothing is close or the place cannot be found."""
    from genfab.api.base import GenfabModel

    model = _models(GenfabModel).get(title)
    candidates: list[type[BaseModel]] = [model] if model is not None else []
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        candidates = [m for c in candidates for k, f in c.model_fields.items() if part in (f.alias, k)
                      for m in _nested(f.annotation)]
    names = sorted({f.alias or k for c in candidates for k, f in c.model_fields.items()})
    close = difflib.get_close_matches(str(loc[-1]), names, n=2, cutoff=0.75)
    return " or ".join(close) if close else None


def field_errors(exc: ValidationError, prefix: tuple[Any, ...] = ()) -> list[FieldError]:
    errors = []
    for err in exc.errors(include_url=False):
        loc = (*prefix, *err["loc"])
        value: Any = err.get("input")
        message = err["msg"]
        if err["type"] == RULE_ERROR:
            ctx = err.get("ctx") or {}
            field = ctx.get("field")
            if field:
                loc = (*loc, field)
                value = value.get(field) if isinstance(value, dict) and not ctx.get("says_values") else None
            message = message.removeprefix("Value error, ")
        elif err["type"] == "value_error":
            message = message.removeprefix("Value error, ")
        elif err["type"] == "extra_forbidden":
            near = did_you_mean(exc.title, err["loc"])
            message = (f"unknown field (did you mean {near}?)" if near else
                       "unknown field (check the spelling; fields are camelCase)")
        show = value is not None and err["type"] not in ("missing", "extra_forbidden") and not isinstance(value, dict)
        errors.append(FieldError(_path(loc), message, short_repr(value) if show else None))
    return errors

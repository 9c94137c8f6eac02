"""Reading resource files: YAML (multi-document) into validated models, or clear errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from genfab.api import Resource, UnknownKindError, parse_resource
from genfab.api.errors import FieldError, field_errors
from genfab.planner import PlanError, plan


@dataclass
class Loaded:
    source: str
    """`file` or `file#N` for the N-th document."""
    resource: Resource | None = None
    errors: list[FieldError] = field(default_factory=list)


def load_file(path: Path) -> list[Loaded]:
    """Every document of a YAML file, each validated and planned (plan errors count as errors)."""
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except OSError as exc:
        return [Loaded(str(path), errors=[FieldError("(file)", f"cannot read: {exc.strerror}")])]
    except yaml.YAMLError as exc:
        return [Loaded(str(path), errors=[FieldError("(yaml)", " ".join(str(exc).split()))])]
    if not docs:
        return [Loaded(str(path), errors=[FieldError("(file)", "no YAML documents")])]
    out = []
    for i, doc in enumerate(docs):
        source = str(path) if len(docs) == 1 else f"{path}#{i + 1}"
        try:
            resource = parse_resource(doc)
        except UnknownKindError as exc:
            field_, _, message = str(exc).partition(": ")
            out.append(Loaded(source, errors=[FieldError(field_, message)]))
            continue
        except ValidationError as exc:
            out.append(Loaded(source, errors=field_errors(exc)))
            continue
        try:
            plan(resource)
        except PlanError as exc:
            path_, _, message = str(exc).partition(": ")
            out.append(Loaded(source, resource, [FieldError(f"spec.{path_}", message)]))
            continue
        out.append(Loaded(source, resource))
    return out

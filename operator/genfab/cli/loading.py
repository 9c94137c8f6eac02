"""Reading resource files: YAML (multi-document) into validated models, or clear errors.

Resource files are untrusted input: the reader refuses what YAML allows but a Kubernetes object
cannot hold or a reviewer cannot see — aliases (a few lines can expand to gigabytes), duplicate keys
(the last one would silently win), binary files and files larger than the API server accepts.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from genfab.api import Resource, UnknownKindError, parse_resource
from genfab.api.crd import as_stored
from genfab.api.errors import FieldError, field_errors
from genfab.api.types import OutputUri
from genfab.cli.terminal import echo
from genfab.contract.files import TooLarge, read_regular
from genfab.planner import PlanError, plan

MAX_FILE_BYTES = 3 * 1024 * 1024
"""The Kubernetes API server refuses requests over 3 MiB; no resource file needs more."""


MAX_DEPTH = 64
"""Nesting deeper than any resource needs (the parser would otherwise recurse until it crashes)."""


class StrictLoader(yaml.SafeLoader):
    """SafeLoader without aliases, without duplicate mapping keys, and with bounded nesting."""

    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(None, None, "YAML aliases (*name) are not allowed in genfab resources; "
                                              "write the value out", event.start_mark)
        if self.depth >= MAX_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels",
                                              self.peek_event().start_mark)  # type: ignore[no-untyped-call]
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # unhashable: the base class reports it
            if duplicate:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r} (each key once)",
                                                        key_node.start_mark)
        return super().construct_mapping(node, deep)


def _yaml_error(exc: yaml.YAMLError) -> FieldError:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    where = f"(yaml) line {mark.line + 1}" if mark is not None else "(yaml)"
    return FieldError(where, " ".join(str(problem).split()))


STDIN = "-"
"""The file name that means standard input (`kubectl apply -f -`, `genfab validate -`)."""


def _read_stdin() -> bytes:
    data = sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise TooLarge(STDIN)
    return data


def read_documents(path: Path) -> list[Any]:
    """The non-empty YAML documents of `path`; a bad file is one FieldError (raised)."""
    try:  # a FIFO or /dev/zero is refused, never waited on or read without end
        text = (_read_stdin() if str(path) == STDIN else read_regular(path, MAX_FILE_BYTES)).decode("utf-8")
    except TooLarge:
        raise FileError(FieldError("(file)", f"too large for a resource file (at most {MAX_FILE_BYTES // 1048576} "
                                   "MiB, the API server's limit)")) from None
    except UnicodeDecodeError:
        raise FileError(FieldError("(file)", "not a UTF-8 text file; expected a YAML resource")) from None
    except OSError as exc:
        raise FileError(FieldError("(file)", f"cannot read: {exc.strerror}")) from None
    try:
        return [d for d in yaml.load_all(text, Loader=StrictLoader) if d is not None]
    except yaml.YAMLError as exc:
        raise FileError(_yaml_error(exc)) from None


class FileError(Exception):
    def __init__(self, error: FieldError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class Loaded:
    source: str
    """`file` or `file#N` for the N-th document."""
    resource: Resource | None = None
    errors: list[FieldError] = field(default_factory=list)


def load_file(path: Path) -> list[Loaded]:
    """Every document of a YAML file, each validated and planned (plan errors count as errors)."""
    name = "(stdin)" if str(path) == STDIN else str(path)
    try:
        docs = read_documents(path)
    except FileError as exc:
        return [Loaded(name, errors=[exc.error])]
    if not docs:
        return [Loaded(name, errors=[FieldError("(file)", "no YAML documents")])]
    return [_load(doc, name if len(docs) == 1 else f"{name}#{i + 1}") for i, doc in enumerate(docs)]


def load_one(path: Path) -> Loaded:
    """The single resource of a file, for commands that act on one (`plan`, `run`)."""
    loaded = load_file(path)
    if len(loaded) > 1:
        return Loaded(loaded[0].source.rpartition("#")[0], errors=[FieldError(
            "(file)", f"{len(loaded)} documents; this command takes a file with one resource (split the file, "
                      "or `genfab validate` checks them all)")])
    return loaded[0]


def _load(doc: Any, source: str) -> Loaded:
    try:
        # `field: null` reads as the CRD server stores it (unset, or the default), as with kubectl apply.
        resource = parse_resource(as_stored(doc))
    except UnknownKindError as exc:
        field_, _, message = str(exc).partition(": ")
        return Loaded(source, errors=[FieldError(field_, message)])
    except ValidationError as exc:
        return Loaded(source, errors=field_errors(exc))
    try:
        plan(resource)
    except PlanError as exc:
        path_, _, message = str(exc).partition(": ")
        return Loaded(source, resource, [FieldError(f"spec.{path_}", message)])
    return Loaded(source, resource)


def report_errors(loaded: Loaded) -> None:
    """One line per error on stderr: `file: field.path: what is wrong (got value)`."""
    for error in loaded.errors:
        echo(f"{loaded.source}: {error}", err=True)


def out_option_error(out: str | None) -> str | None:
    """`--out URI` checked as `spec.output` is (`genfab run`, `genfab select`): one line naming the
    option, or None when it is a valid output."""
    if out is None:
        return None
    try:
        TypeAdapter(OutputUri).validate_python(out)
    except ValidationError as exc:
        error = field_errors(exc)[0]
        return f"--out: {error.message} (got {out!r})"
    return None

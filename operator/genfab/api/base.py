"""Base model shared by every genfab spec type.

Cross-field rules are declared once, as `Rule`s: the same rule validates specs in Python
(`genfab validate`, the operator, the local runner) and becomes a CEL `x-kubernetes-validations`
entry in the generated CRD, so the API server rejects the same specs with the same message.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from types import UnionType
from typing import Any, ClassVar, Self, Union, cast, get_args, get_origin

from pydantic import BaseModel, ConfigDict, GetJsonSchemaHandler, ValidationInfo, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

RULE_ERROR = "genfab_rule"


@dataclass(frozen=True)
class RunTimeOption:
    """Marks a field that changes how a stage runs (speed, memory, logging), not what it produces:
    `Annotated[T, RUN_TIME]`. The stage still receives it; config hashes leave it out, so changing
    it re-runs nothing (genfab.planner.hashing), and its CRD description says so."""

    note: str = ("Run-time option: changes speed, memory or logs, not which outputs are made; it is not part "
                 "of the config hash, so changing it re-runs nothing (each sample's metadata records the value "
                 "it was made with; `spec.rerun` makes them again).")


RUN_TIME = RunTimeOption()


def is_run_time(info: Any) -> bool:
    """Whether a pydantic `FieldInfo` is marked `RUN_TIME`."""
    return any(isinstance(m, RunTimeOption) for m in getattr(info, "metadata", ()))


@dataclass(frozen=True)
class ContinuableOption:
    """Marks a training setting a run may change between its starts (how long it trains, how often it
    checkpoints or evaluates): `Annotated[T, CONTINUABLE]`. It changes outputs (the config hash keeps
    it), but not the run's recipe, so a run that has checkpoints goes on with the new value instead of
    being refused (genfab.stages.tuning.stage.recipe). A `RUN_TIME` field is continuable too."""


CONTINUABLE = ContinuableOption()


def recipe_fields(model: type[BaseModel]) -> frozenset[str]:
    """The fields of `model` that make a training run's recipe: neither `CONTINUABLE` nor `RUN_TIME`."""
    return frozenset(name for name, info in model.model_fields.items()
                     if not is_run_time(info) and not any(isinstance(m, ContinuableOption) for m in info.metadata))


@dataclass(frozen=True)
class ModelReference:
    """Marks a field naming a model a stage loads from the model location: `Annotated[str, MODEL]`, or
    `Annotated[str, ModelReference(when)]` when only some settings load it (`when(part)` on the model
    holding the field). The executors read each such model's identity (its config files, its weight
    files' sizes and checksums: genfab.inventory.model_identity) and the planner hashes it, so new
    weights under the same id re-run exactly the stages that load them and what consumes theirs."""

    when: Callable[[Any], bool] | None = None
    endpoint: bool = False
    """The name of a model an endpoint serves (the LLM): its identity is the name itself."""
    optional: Callable[[Any], bool] | None = None
    """When the stage runs without it (`optional(part)` true: it falls back and each sample says
    so); otherwise a run without it is refused before anything starts (`sequencing.model_refusal`)."""


MODEL = ModelReference()


@dataclass(frozen=True)
class LoadedModel:
    """A model a settings object loads (`model_refs`)."""

    id: str
    endpoint: bool
    """Served by an endpoint (named, not read from the model location)."""
    optional: bool
    """The stage runs without it under these settings (a fallback each sample records)."""


@dataclass(frozen=True)
class FieldFacts:
    """What the walks over a settings object need to know of one field, read once per model class
    (`field_facts`): they run for every stage of every plan, and pydantic's field metadata is slow to
    read per call."""

    name: str
    key: str
    """The camelCase name users write (the alias)."""
    refs: tuple[ModelReference, ...]
    run_time: bool
    may_hold_models: bool
    """The annotation can hold a pydantic model (directly, in a container or in a union)."""


def _may_hold_models(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    if annotation is Any or isinstance(annotation, str):  # unknown: assume it can
        return True
    return any(_may_hold_models(arg) for arg in get_args(annotation) if not isinstance(arg, RunTimeOption
                                                                                      | ModelReference))


@functools.cache
def field_facts(model: type[BaseModel]) -> tuple[FieldFacts, ...]:
    return tuple(FieldFacts(name, info.alias or name, tuple(m for m in info.metadata if isinstance(m, ModelReference)),
                            is_run_time(info), _may_hold_models(info.annotation))
                 for name, info in model.model_fields.items())


def model_refs(value: Any) -> list[LoadedModel]:
    """Every model a settings object loads, in field order."""
    found: dict[LoadedModel, None] = {}
    _collect_refs(value, found)
    return list(found)


def _collect_refs(value: Any, found: dict[LoadedModel, None]) -> None:
    if isinstance(value, BaseModel):
        for f in field_facts(type(value)):
            if not (f.refs or f.may_hold_models):
                continue
            field_value = getattr(value, f.name)
            if f.refs and isinstance(field_value, str) and all(r.when is None or r.when(value) for r in f.refs):
                found[LoadedModel(field_value, any(r.endpoint for r in f.refs),
                                  any(r.optional is not None and r.optional(value) for r in f.refs))] = None
            if f.may_hold_models:
                _collect_refs(field_value, found)
    elif isinstance(value, list | tuple):
        for item in value:
            _collect_refs(item, found)


def hashed_values(value: Any) -> Any:
    """`value` as JSON-ready data (camelCase keys, unset optionals left out, like the mounted config)
    without the run-time options anywhere inside it: what a config hash covers."""
    if isinstance(value, BaseModel):
        out: dict[str, Any] = {}
        for f in field_facts(type(value)):
            field_value = getattr(value, f.name)
            if field_value is None or f.run_time:
                continue
            out[f.key] = hashed_values(field_value)
        return out
    if isinstance(value, list | tuple):
        return [hashed_values(v) for v in value]
    if isinstance(value, dict):
        return {k: hashed_values(v) for k, v in value.items()}
    return value if isinstance(value, str | int | float | bool) else str(value)


@dataclass(frozen=True)
class Rule:
    """A cross-field rule with a Python check and the equivalent CEL expression.

    `field` is the camelCase name (relative to the model) the error points at.
    """

    cel: str
    message: str
    field: str
    check: Callable[[Any], bool]
    detail: Callable[[Any], str] | None = None
    """Optional Python-side message with the offending value and what is allowed."""

    def to_cel(self) -> dict[str, str]:
        return {"rule": self.cel, "message": self.message, "fieldPath": f".{self.field}"}

    def explain(self, model: Any) -> str:
        return self.detail(model) if self.detail else self.message


def json_depth(value: Any) -> int:
    """How many levels of objects and arrays a JSON-like value nests (iteratively: any depth). Level
    by level, with exact type checks: the operator bounds every watched body with this, and this
    form is about 4x faster than a stack of (node, level) pairs."""
    if type(value) is not dict and type(value) is not list:
        return 0
    depth, level = 0, [value]
    while level:
        depth += 1
        deeper = []
        for node in level:
            for child in node.values() if type(node) is dict else node:
                if type(child) is dict or type(child) is list:
                    deeper.append(child)
        level = deeper
    return depth


def _scalar_kind(annotation: Any) -> type | None:
    """bool or int when a field is one (optional or not), else None."""
    kinds = set(get_args(annotation)) - {type(None)} if get_origin(annotation) in (Union, UnionType) else {annotation}
    return bool if kinds == {bool} else int if kinds == {int} else None


_FIELD_KINDS: dict[tuple[type, str], type | None] = {}
"""`_scalar_kind` of each model's fields, by (model class, field name): every field of every model is
checked on every validation, and a planned SceneJob validates about 200 of them."""


INT64_MAX = 2**63 - 1
"""Kubernetes' integers are 64-bit: `1e300` is no integer to the CRD server, nor to genfab."""


def strict_scalar(kind: type | None, value: Any) -> Any:
    """`value` unless `kind` (a field's `_scalar_kind`) is bool or int and the value is not one."""
    if kind is None or value is None:
        return value
    if kind is bool and not isinstance(value, bool):
        raise PydanticCustomError("bool_type", "Input should be true or false")
    if kind is int and isinstance(value, float) and value.is_integer() and abs(value) <= INT64_MAX:
        return int(value)  # Kubernetes reads `3.0` as the integer 3 (and stores 3): so does genfab
    if kind is int and isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT64_MAX:
        raise PydanticCustomError("int_type", "Input should be an integer within 64 bits")
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise PydanticCustomError("int_type", "Input should be an integer")
    return value


class CrdScalars(BaseModel):
    """Booleans and integers as the CRD reads them: `enabled: 0` or `enabled: "yes"` is not a boolean,
    and `steps: 3.5` or `index: true` is not an integer; the CRD (type boolean, type integer) refuses
    them, and so does genfab instead of coercing them. A whole number written as `3.0` is the integer
    3 to Kubernetes' CRD server (it stores 3), and so to genfab."""

    @field_validator("*", mode="before")
    @classmethod
    def _types_as_the_crd_reads_them(cls, value: Any, info: ValidationInfo) -> Any:
        key = (cls, info.field_name or "")
        try:
            kind = _FIELD_KINDS[key]
        except KeyError:
            field = cls.model_fields.get(key[1])
            kind = _FIELD_KINDS[key] = _scalar_kind(field.annotation) if field is not None else None
        return strict_scalar(kind, value)


class GenfabModel(CrdScalars):
    """camelCase in YAML, snake_case in Python, unknown fields rejected, docstrings become docs."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
        validate_default=True,
    )

    rules: ClassVar[tuple[Rule, ...]] = ()


    @model_validator(mode="after")
    def _check_rules(self) -> GenfabModel:
        for rule in type(self).rules:
            if not rule.check(self):
                # A rule's own detail already says what the values are: the field's is not added.
                raise PydanticCustomError(RULE_ERROR, rule.explain(self),
                                          {"field": rule.field, "says_values": rule.detail is not None})
        return self

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        target = handler.resolve_ref_schema(json_schema)
        if cls.rules:
            target["x-kubernetes-validations"] = [rule.to_cel() for rule in cls.rules]
        for name, info in cls.model_fields.items():  # `kubectl explain` says which fields re-run nothing
            prop = target.get("properties", {}).get(info.alias or name)
            if prop is not None and is_run_time(info):
                prop["description"] = f"{prop.get('description', '').rstrip()} {RUN_TIME.note}".strip()
        return json_schema

    @classmethod
    def part_of(cls, block: BaseModel) -> Self:
        """The part `cls` of an API block that is made of parts (`class VistaDreamConfig(VistaFlux,
        ...)`): the block's values of exactly `cls`'s fields, so a stage's settings hold what it reads."""
        if not isinstance(block, cls):
            raise TypeError(f"{type(block).__name__} is not made of {cls.__name__}")
        return cls.model_validate({n: getattr(block, n) for n in cls.model_fields})

    def to_yaml_dict(self) -> dict[str, Any]:
        """The camelCase form users write, without unset optional fields."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


@functools.cache
def attr_of(model: type[BaseModel], alias: str) -> str:
    """The Python name of the field whose camelCase alias is `alias` (the alias generator is the one
    name mapping; this reads it back instead of inverting it by hand). Cached: rules call it on every
    validation."""
    for name, info in model.model_fields.items():
        if (info.alias or name) == alias:
            return name
    raise KeyError(f"{model.__name__} has no field {alias!r}")


def _count_rule(names: tuple[str, ...], exact: bool) -> Rule:
    op, phrase = ("==", "exactly one of {} must be set") if exact else ("<=", "at most one of {} may be set")
    cel = " + ".join(f"(has(self.{n}) ? 1 : 0)" for n in names) + f" {op} 1"

    def check(m: Any) -> bool:
        count = sum(getattr(m, attr_of(cast(type[BaseModel], type(m)), n)) is not None for n in names)
        return count == 1 if exact else count <= 1

    return Rule(cel, phrase.format(", ".join(f"`{n}`" for n in names)), names[0], check)


def exactly_one(*names: str) -> Rule:
    """Exactly one of the given optional fields (camelCase) is set."""
    return _count_rule(names, exact=True)


def at_most_one(*names: str) -> Rule:
    """At most one of the given optional fields (camelCase) is set."""
    return _count_rule(names, exact=False)


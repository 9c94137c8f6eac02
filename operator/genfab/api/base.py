"""Base model shared by every genfab spec type.

Cross-field rules are declared once, as `Rule`s: the same rule validates specs in Python
(`genfab validate`, the operator, the local runner) and becomes a CEL `x-kubernetes-validations`
entry in the generated CRD, so the API server rejects the same specs with the same message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, GetJsonSchemaHandler, ValidationInfo, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

RULE_ERROR = "genfab_rule"


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


class GenfabModel(BaseModel):
    """camelCase in YAML, snake_case in Python, unknown fields rejected, docstrings become docs."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
        validate_default=True,
    )

    rules: ClassVar[tuple[Rule, ...]] = ()

    @field_validator("*", mode="before")
    @classmethod
    def _booleans_are_booleans(cls, value: Any, info: ValidationInfo) -> Any:
        """`enabled: 0` or `enabled: "yes"` is not a boolean: the CRD (type boolean) refuses it, and
        so does genfab instead of coercing it."""
        field = cls.model_fields.get(info.field_name or "")
        if field is not None and field.annotation is bool and not isinstance(value, bool):
            raise PydanticCustomError("bool_type", "Input should be true or false")
        return value

    @model_validator(mode="after")
    def _check_rules(self) -> GenfabModel:
        for rule in type(self).rules:
            if not rule.check(self):
                raise PydanticCustomError(RULE_ERROR, rule.explain(self), {"field": rule.field})
        return self

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        if cls.rules:
            target = handler.resolve_ref_schema(json_schema)
            target["x-kubernetes-validations"] = [rule.to_cel() for rule in cls.rules]
        return json_schema

    def to_yaml_dict(self) -> dict[str, Any]:
        """The camelCase form users write, without unset optional fields."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def attr_of(model: type[BaseModel], alias: str) -> str:
    """The Python name of the field whose camelCase alias is `alias` (the alias generator is the one
    name mapping; this reads it back instead of inverting it by hand)."""
    for name, info in model.model_fields.items():
        if (info.alias or name) == alias:
            return name
    raise KeyError(f"{model.__name__} has no field {alias!r}")


def _count_rule(names: tuple[str, ...], exact: bool) -> Rule:
    op, phrase = ("==", "exactly one of {} must be set") if exact else ("<=", "at most one of {} may be set")
    cel = " + ".join(f"(has(self.{n}) ? 1 : 0)" for n in names) + f" {op} 1"

    def check(m: Any) -> bool:
        count = sum(getattr(m, attr_of(type(m), n)) is not None for n in names)
        return count == 1 if exact else count <= 1

    return Rule(cel, phrase.format(", ".join(f"`{n}`" for n in names)), names[0], check)


def exactly_one(*names: str) -> Rule:
    """Exactly one of the given optional fields (camelCase) is set."""
    return _count_rule(names, exact=True)


def at_most_one(*names: str) -> Rule:
    """At most one of the given optional fields (camelCase) is set."""
    return _count_rule(names, exact=False)


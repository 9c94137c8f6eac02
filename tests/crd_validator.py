"""A small stand-in for the API server's CRD validation, to test the generated CRDs offline.

It applies schema defaults (as the API server does before validation), then checks `required`,
`type`, `enum`, `pattern`, bounds, sizes and every `x-kubernetes-validations` CEL rule, evaluated
with cel-python. Numbers are doubles, as in Kubernetes CEL.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import celpy

_ENV = celpy.Environment()
_PROGRAMS: dict[str, Any] = {}


def _program(rule: str) -> Any:
    if rule not in _PROGRAMS:
        _PROGRAMS[rule] = _ENV.program(_ENV.compile(rule))
    return _PROGRAMS[rule]


def apply_defaults(schema: dict[str, Any], obj: Any) -> Any:
    if isinstance(obj, dict) and "properties" in schema:
        for key, sub in schema["properties"].items():
            if key not in obj and "default" in sub:
                obj[key] = copy.deepcopy(sub["default"])
            if key in obj:
                obj[key] = apply_defaults(sub, obj[key])
    elif isinstance(obj, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key in obj:
            obj[key] = apply_defaults(schema["additionalProperties"], obj[key])
    elif isinstance(obj, list) and "items" in schema:
        return [apply_defaults(schema["items"], v) for v in obj]
    elif schema.get("type") == "number" and isinstance(obj, int) and not isinstance(obj, bool):
        return float(obj)
    return obj


_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "integer": int, "number": (int, float)}


def errors(schema: dict[str, Any], obj: Any, path: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    kind = schema.get("type")
    if kind and not schema.get("x-kubernetes-preserve-unknown-fields"):
        expected = _TYPES[kind]
        # JSON has one number type: Kubernetes reads a whole number written `3.0` as an integer.
        whole = kind == "integer" and isinstance(obj, float) and obj.is_integer()
        if (not isinstance(obj, expected) and not whole) or (kind in ("integer", "number") and isinstance(obj, bool)):
            return [(path, f"must be of type {kind}")]
    if "enum" in schema and obj not in schema["enum"]:
        out.append((path, f"must be one of {schema['enum']}"))
    if isinstance(obj, str):
        if "pattern" in schema and not re.search(schema["pattern"], obj):
            out.append((path, f"must match {schema['pattern']}"))
        if len(obj) > schema.get("maxLength", 1 << 30) or len(obj) < schema.get("minLength", 0):
            out.append((path, "length out of bounds"))
    if isinstance(obj, (int, float)) and not isinstance(obj, bool):
        lo, hi = schema.get("minimum"), schema.get("maximum")
        if lo is not None and (obj < lo or (schema.get("exclusiveMinimum") and obj == lo)):
            out.append((path, f"must be >= {lo}"))
        if hi is not None and (obj > hi or (schema.get("exclusiveMaximum") and obj == hi)):
            out.append((path, f"must be <= {hi}"))
        if "multipleOf" in schema and obj % schema["multipleOf"]:
            out.append((path, f"must be a multiple of {schema['multipleOf']}"))
    if isinstance(obj, list):
        if len(obj) > schema.get("maxItems", 1 << 30) or len(obj) < schema.get("minItems", 0):
            out.append((path, "item count out of bounds"))
        for i, v in enumerate(obj):
            out += errors(schema.get("items", {}), v, f"{path}[{i}]")
    if isinstance(obj, dict):
        for key in schema.get("required", []):
            if key not in obj:
                out.append((f"{path}.{key}", "Required value"))
        for key, value in obj.items():
            if key in schema.get("properties", {}):
                out += errors(schema["properties"][key], value, f"{path}.{key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                out += errors(schema["additionalProperties"], value, f"{path}.{key}")
    if not out:
        for rule in schema.get("x-kubernetes-validations", []):
            result = _program(rule["rule"]).evaluate({"self": celpy.json_to_cel(obj)})
            if not (isinstance(result, celpy.celtypes.BoolType) and bool(result)):
                out.append((path + rule.get("fieldPath", ""), rule["message"]))
    return out


def validate(crd: dict[str, Any], resource: dict[str, Any]) -> list[tuple[str, str]]:
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    obj = apply_defaults(schema, copy.deepcopy(resource))
    return errors(schema, obj)

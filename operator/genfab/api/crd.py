"""CustomResourceDefinitions generated from the pydantic models.

pydantic emits JSON Schema 2020-12; Kubernetes wants a *structural* OpenAPI v3 schema: every node
typed, no `$ref`, no `anyOf` for optionals, no `const`, boolean `exclusiveMinimum`. This module
does that translation and adds printer columns, the status subresource, short names and the
`genfab` category. CEL rules come from the models' `Rule`s (see genfab.api.base).
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema, to_jsonable_python

from genfab.api.resources import GROUP, KINDS, NAME_MAX, NAME_RULE_MESSAGE, PLURALS, SHORT_NAMES, VERSION
from genfab.api.status import ResourceStatus
from genfab.api.types import DNS_LABEL_RE

# Keywords Kubernetes accepts in a structural schema (the subset genfab emits).
ALLOWED_KEYWORDS = frozenset(
    {
        "type", "description", "default", "enum", "format", "pattern", "minimum", "maximum",
        "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength", "maxLength", "minItems",
        "maxItems", "minProperties", "maxProperties", "required", "items", "properties",
        "additionalProperties", "nullable",
        "x-kubernetes-validations", "x-kubernetes-preserve-unknown-fields", "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys", "x-kubernetes-int-or-string", "x-kubernetes-map-type",
    }
)
_DROP = frozenset({"title", "examples", "propertyNames", "$defs", "uniqueItems", "discriminator"})
_KNOWN_FORMATS = frozenset({"date-time", "int32", "int64", "double", "float", "byte"})


class _FactoryDefaults(GenerateJsonSchema):
    """Also emit defaults of `default_factory` fields, so the API server shows effective values."""

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            inner = self.generate_inner(schema["schema"])
            value = factory()  # type: ignore[call-arg]
            if isinstance(value, BaseModel):
                value = value.model_dump(by_alias=True, exclude_none=True, mode="json")
            inner["default"] = to_jsonable_python(value)
            return inner
        return super().default_schema(schema)


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """Structural OpenAPI v3 schema of a model."""
    raw = model.model_json_schema(by_alias=True, mode="validation", schema_generator=_FactoryDefaults)
    defs = raw.get("$defs", {})
    return _structural(raw, defs)


def _structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k in ("description", "default")}}
        if "x-kubernetes-validations" in target and "x-kubernetes-validations" in node:
            merged["x-kubernetes-validations"] = target["x-kubernetes-validations"] + node["x-kubernetes-validations"]
        return _structural(merged, defs)
    if "anyOf" in node:
        options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"non-optional union cannot be made structural: {options}")
        inner = _structural(options[0], defs)
        # The outer node's docs, default and CEL rules win over the inner type's.
        outer = {k: v for k, v in node.items() if k not in _DROP}
        rules = inner.get("x-kubernetes-validations", []) + outer.pop("x-kubernetes-validations", [])
        node = {**inner, **outer}
        if rules:
            node["x-kubernetes-validations"] = rules
        if node.get("default", 0) is None:
            del node["default"]
        return node
    if "const" in node:
        node["enum"] = [node.pop("const")]
        node.setdefault("type", "string")
    if "enum" in node and "type" not in node:
        node["type"] = "string"
    for bound, flag in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if bound in node and not isinstance(node[bound], bool):
            node[flag] = node.pop(bound)
            node[bound] = True
    if node.get("format") not in _KNOWN_FORMATS:
        node.pop("format", None)
    if node.get("default", 0) is None:
        del node["default"]
    if "description" in node:
        node["description"] = _one_paragraph(node["description"])
    for key in _DROP:
        node.pop(key, None)

    if "patternProperties" in node:
        # Constrained map keys (e.g. stage names): checked by CEL rules; the values keep their schema.
        (value_schema,) = node.pop("patternProperties").values()
        node["additionalProperties"] = value_schema
    if "properties" in node:
        node["type"] = "object"
        node["properties"] = {k: _structural(v, defs) for k, v in node["properties"].items()}
        extra = node.pop("additionalProperties", False)
        if extra is True:
            node["x-kubernetes-preserve-unknown-fields"] = True
    elif node.get("type") == "object":
        extra = node.get("additionalProperties", True)
        if extra is True or extra == {}:
            node.pop("additionalProperties", None)
            node["x-kubernetes-preserve-unknown-fields"] = True
        else:
            node["additionalProperties"] = _structural(extra, defs)
    if "items" in node:
        node["items"] = _structural(node["items"], defs)
    if "type" not in node:
        node["x-kubernetes-preserve-unknown-fields"] = True
    return node


def _one_paragraph(text: str) -> str:
    """Docstrings wrap lines; descriptions read better (and diff better) as single lines."""
    return " ".join(text.split())


PRINTER_EXTRAS: dict[str, list[dict[str, Any]]] = {
    "SceneJob": [{"name": "Pipeline", "type": "string", "jsonPath": ".spec.pipeline", "priority": 1}],
    "DatasetJob": [{"name": "Type", "type": "string", "jsonPath": ".spec.type", "priority": 1}],
    "TuningRun": [{"name": "Loss", "type": "number", "jsonPath": ".status.training.loss"},
                  {"name": "Run", "type": "string", "jsonPath": ".spec.runName", "priority": 1},
                  {"name": "Checkpoint", "type": "string", "jsonPath": ".status.training.latestCheckpoint",
                   "priority": 1}],
}


def spec_model(kind: str) -> type[BaseModel]:
    """The pydantic model of a kind's `spec` (built from the registered pipelines)."""
    annotation = KINDS[kind].model_fields["spec"].annotation
    assert isinstance(annotation, type) and issubclass(annotation, BaseModel), kind
    return annotation


def build_crd(kind: str) -> dict[str, Any]:
    """The CustomResourceDefinition of one kind."""
    model = KINDS[kind]
    plural = PLURALS[kind]
    spec_schema = model_schema(spec_model(kind))
    spec_schema["description"] = (model.__doc__ or "").strip() + " " + spec_schema.get("description", "")
    columns = [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Stage", "type": "string", "jsonPath": ".status.currentStage"},
        {"name": "Progress", "type": "string", "jsonPath": ".status.progress",
         "description": "succeeded/total samples of the current stage"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        *PRINTER_EXTRAS[kind],
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "genfab", "app.kubernetes.io/part-of": "genfab"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": SHORT_NAMES[kind],
                "categories": ["genfab"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": (model.__doc__ or "").strip(),
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": model_schema(ResourceStatus),
                            },
                            # Child Jobs are `{name}-{stage}-{hash10}` within 63 characters; the API
                            # server itself allows 253 (the same limit as genfab.api.resources.ObjectMeta).
                            "x-kubernetes-validations": [{
                                "rule": f"size(self.metadata.name) <= {NAME_MAX}",
                                "message": f"metadata.name must be at most {NAME_MAX} characters (stage Job names "
                                           "add the stage name and a config hash)",
                                # No fieldPath: a CRD's fieldPath must name a field its schema declares, and
                                # `metadata` is the server's own (Kubernetes refuses ".metadata.name").
                            }, {
                                # Kubernetes allows a DNS subdomain (`a.b`); the stage Jobs' Pods, Services
                                # and hostnames need a DNS label, as genfab's ObjectMeta says.
                                "rule": f"self.metadata.name.matches('{DNS_LABEL_RE.pattern}')",
                                "message": NAME_RULE_MESSAGE,
                            }],
                        }
                    },
                }
            ],
        },
    }


def crd_filename(kind: str) -> str:
    return f"{GROUP}_{PLURALS[kind]}.yaml"


def render_crds() -> dict[str, str]:
    """File name -> YAML text, for every kind. Deterministic (the stale check diffs it)."""
    header = "# Generated by `genfab crds` from the pydantic models in genfab.api. Do not edit.\n"
    return {
        crd_filename(kind): header + yaml.safe_dump(build_crd(kind), sort_keys=False, width=100)
        for kind in KINDS
    }


def write_crds(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_crds().items():
        path = out / name
        path.write_text(text)
        written.append(path)
    return written


@functools.cache
def _spec_schema(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = build_crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _drop_nulls(schema: dict[str, Any], value: Any) -> Any:
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties") if isinstance(schema.get("additionalProperties"), dict) else None
        out = {}
        for key, item in value.items():
            sub = props.get(key, extra)
            if item is None and sub is not None and not sub.get("nullable"):
                if "default" in sub:
                    out[key] = copy.deepcopy(sub["default"])
                continue
            out[key] = _drop_nulls(sub, item) if sub is not None else item
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_drop_nulls(schema["items"], item) for item in value]
    return value


def as_stored(doc: Any) -> Any:
    """A resource document as Kubernetes' CRD server stores it before validating: `null` in a field
    that is not nullable takes the field's default, or is dropped (`field: null` reads as unset, as
    with kubectl apply). genfab reads a file the same way, so `genfab validate` and the server agree.
    Anything that is not a document of a genfab kind is returned as it is (parsing says what is wrong)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("kind"), str) or doc["kind"] not in KINDS:
        return doc
    return _drop_nulls(_spec_schema(doc["kind"]), doc)

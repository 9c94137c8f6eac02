"""genfab API: pydantic models (the single source of truth for specs) and CRD generation."""

from genfab.api.resources import (
    API_VERSION,
    GROUP,
    KINDS,
    VERSION,
    DatasetJob,
    Resource,
    SceneJob,
    TuningRun,
    UnknownKindError,
    parse_resource,
)

__all__ = [
    "API_VERSION",
    "GROUP",
    "KINDS",
    "VERSION",
    "DatasetJob",
    "Resource",
    "SceneJob",
    "TuningRun",
    "UnknownKindError",
    "parse_resource",
]

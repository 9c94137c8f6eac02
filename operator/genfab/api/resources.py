"""The three custom resources: group `genfab.dev`, version `v1alpha1`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from genfab.api.base import GenfabModel
from genfab.api.datasetjob import DatasetJobBase
from genfab.api.errors import short_repr
from genfab.api.pipeline import kind_spec
from genfab.api.scenejob import SceneJobBase
from genfab.api.status import ResourceStatus
from genfab.api.tuningrun import TuningRunBase
from genfab.api.types import DNS_LABEL_RE

# The kinds' spec models: their base fields plus what the registered pipelines add (the selector,
# one block per pipeline, the rules tying them together). Type checkers see the bases.
if TYPE_CHECKING:
    SceneJobSpec = SceneJobBase
    DatasetJobSpec = DatasetJobBase
    TuningRunSpec = TuningRunBase
else:
    SceneJobSpec = kind_spec("SceneJob", SceneJobBase)
    DatasetJobSpec = kind_spec("DatasetJob", DatasetJobBase)
    TuningRunSpec = kind_spec("TuningRun", TuningRunBase)

NAME_MAX = 40
"""Longest resource name: child Job names add `-{stage}-{hash10}` and must fit in 63 characters."""
GROUP = "genfab.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


NAME_RULE_MESSAGE = ("metadata.name must be a DNS label: lowercase letters, digits and '-', starting and ending "
                     "with a letter or digit (it names the stage Jobs, their Pods and Services)")
"""Said alike by genfab and by the CRD's rule on the name (Kubernetes itself allows `a.b`)."""


def _dns_label_name(value: str) -> str:
    if not DNS_LABEL_RE.match(value):
        raise ValueError(NAME_RULE_MESSAGE)
    return value


class ObjectMeta(BaseModel):
    """The parts of `metadata` genfab reads; everything else is kept as is."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    name: Annotated[str, AfterValidator(_dns_label_name)] = Field(min_length=1, max_length=NAME_MAX)
    """Resource name: a DNS-1123 label of at most 40 characters (child Job names add the stage
    name and a config hash)."""
    namespace: str | None = Field(None, max_length=63, pattern=DNS_LABEL_RE.pattern)
    """Namespace."""
    generation: int | None = None
    """Set by the API server; bumps on every spec change."""
    uid: str | None = None
    """Set by the API server."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Labels."""
    annotations: dict[str, str] = Field(default_factory=dict)
    """Annotations."""


class _Resource(GenfabModel):
    api_version: Literal["genfab.dev/v1alpha1"] = Field(alias="apiVersion")
    """`genfab.dev/v1alpha1`."""
    metadata: ObjectMeta
    """Object metadata."""
    status: ResourceStatus | None = None
    """Observed state, written by genfab."""


class SceneJob(_Resource):
    """Generate 3D Gaussian scenes from images or prompts."""

    kind: Literal["SceneJob"]
    """`SceneJob`."""
    spec: SceneJobSpec
    """Desired state."""


class DatasetJob(_Resource):
    """Generate a synthetic training dataset."""

    kind: Literal["DatasetJob"]
    """`DatasetJob`."""
    spec: DatasetJobSpec
    """Desired state."""


class TuningRun(_Resource):
    """Fine-tune a model (DiFix) on an exported dataset."""

    kind: Literal["TuningRun"]
    """`TuningRun`."""
    spec: TuningRunSpec
    """Desired state."""


Resource = SceneJob | DatasetJob | TuningRun
KINDS: dict[str, type[SceneJob] | type[DatasetJob] | type[TuningRun]] = {
    "SceneJob": SceneJob,
    "DatasetJob": DatasetJob,
    "TuningRun": TuningRun,
}
PLURALS = {"SceneJob": "scenejobs", "DatasetJob": "datasetjobs", "TuningRun": "tuningruns"}
SHORT_NAMES = {"SceneJob": ["sj"], "DatasetJob": ["dsj"], "TuningRun": ["tr"]}


class UnknownKindError(ValueError):
    """The document is not a genfab resource."""


def parse_resource(doc: Any) -> Resource:
    """Validate one YAML/JSON document into its resource model (raises pydantic.ValidationError)."""
    if not isinstance(doc, dict):
        raise UnknownKindError(f"(document): expected a mapping with apiVersion and kind, got a {type(doc).__name__}")
    kind = doc.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise UnknownKindError(f"kind: unknown kind {short_repr(kind)}; allowed: {', '.join(KINDS)}")
    if doc.get("apiVersion") != API_VERSION:
        raise UnknownKindError(f"apiVersion: got {short_repr(doc.get('apiVersion'))}; allowed: {API_VERSION!r}")
    return KINDS[kind].model_validate(doc)

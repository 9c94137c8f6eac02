"""Spec parts shared by SceneJob, DatasetJob and TuningRun."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, Field, create_model
from pydantic.alias_generators import to_camel

from genfab.api.base import GenfabModel, Rule, exactly_one, json_depth
from genfab.api.families import FAMILIES
from genfab.api.types import DnsLabel, EnvName, OutputUri, Quantity, StageName, StorageUri
from genfab.contract.config import Offload
from genfab.contract.names import RESERVED_ENV_NAMES, RESERVED_ENV_PREFIXES, is_reserved_env


class FloatRange(GenfabModel):
    """A closed interval [min, max] a value is drawn from uniformly."""

    rules = (Rule("self.min <= self.max", "min must be <= max", "min", lambda m: m.min <= m.max),)

    min: float
    """Lower bound (inclusive)."""
    max: float
    """Upper bound (inclusive)."""


class FractionRange(FloatRange):
    """A closed interval within [0, 1]: a fraction, a probability or a ratio drawn uniformly."""

    min: float = Field(ge=0.0, le=1.0)
    """Lower bound (inclusive, 0-1)."""
    max: float = Field(ge=0.0, le=1.0)
    """Upper bound (inclusive, 0-1)."""


class IntRange(GenfabModel):
    """A closed integer interval [min, max] a value is drawn from uniformly."""

    rules = (Rule("self.min <= self.max", "min must be <= max", "min", lambda m: m.min <= m.max),)

    min: int
    """Lower bound (inclusive)."""
    max: int
    """Upper bound (inclusive)."""


class SecretRef(GenfabModel):
    """Reference to a Secret in the resource's namespace."""

    name: DnsLabel
    """Secret name. Keys `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (and optionally
    `AWS_SESSION_TOKEN`) are passed to stage Pods as environment variables."""


class Storage(GenfabModel):
    """How stage Pods reach the object store that holds inputs and outputs."""

    endpoint: str | None = Field(None, pattern=r"^https?://[^/\s]+(/.*)?$", max_length=512)
    """S3 endpoint URL for MinIO, Ceph RGW or other S3-compatible stores; unset means AWS S3."""
    region: str = Field("us-east-1", max_length=64)
    """S3 region."""
    addressing_style: Literal["path", "virtual", "auto"] = "auto"
    """`path` for MinIO and Ceph RGW, `virtual` for AWS, `auto` lets botocore decide."""
    secret_ref: SecretRef | None = None
    """Secret holding the storage credentials; unset means ambient credentials (IRSA, env)."""


class Toleration(GenfabModel):
    """A Pod toleration, as in the Kubernetes core API."""

    key: str | None = Field(None, max_length=316)
    """Taint key; empty with operator Exists tolerates everything."""
    operator: Literal["Exists", "Equal"] = "Equal"
    """Exists or Equal."""
    value: str | None = Field(None, max_length=63)
    """Taint value for operator Equal."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Taint effect to tolerate; unset tolerates all effects."""
    toleration_seconds: int | None = Field(None, ge=0)
    """For NoExecute: how long the Pod stays bound after the taint appears."""


class StageResources(GenfabModel):
    """Compute resources and placement of a stage's Pods. Unset fields take the stage's defaults."""

    gpus: int | None = Field(None, ge=0, le=16)
    """GPUs per Pod (the chart's GPU resource name, `nvidia.com/gpu` by default)."""
    cpu: Quantity | None = None
    """CPU request per Pod, e.g. `4` or `500m`."""
    memory: Quantity | None = None
    """Memory request and limit per Pod, e.g. `32Gi`."""
    ephemeral_storage: Quantity | None = None
    """Node disk per Pod (scratch `/tmp`: downloaded models, inputs, intermediate files), request and
    limit, e.g. `100Gi` for a 20B diffusers pipeline copied from object storage. Default: the chart's
    `stages.ephemeralStorage`."""
    node_selector: dict[str, str] | None = Field(None, max_length=32)
    """Node labels the Pods must match."""
    tolerations: list[Toleration] | None = Field(None, max_length=32)
    """Taints the Pods tolerate (e.g. the GPU node taint)."""
    priority_class_name: str | None = Field(None, max_length=253)
    """PriorityClass of the Pods (preemption order under Kueue or the scheduler)."""


class StageOverride(StageResources):
    """Per-stage overrides: resources plus sharding and image."""

    shard_size: int | None = Field(None, ge=1, le=100000)
    """Samples per shard (one shard = one Pod = one index of the stage's Indexed Job)."""
    image: str | None = Field(None, max_length=512)
    """Image for this stage only, overriding the image family's image."""
    batch_size: int | None = Field(None, ge=1, le=4096)
    """Samples per model call in a model stage (default: the stage's own); not part of the config
    hash."""
    offload: Offload | None = None
    """For stages running diffusers pipelines larger than the GPU: `model` keeps each component on the
    CPU until it runs, `group` streams the denoiser's blocks in on a side CUDA stream while the
    previous ones compute (diffusers' group offload: little memory, moderate cost), `sequential`
    moves submodules one by one (slowest, least memory). Default: none."""
    progress_deadline_seconds: int | None = Field(None, ge=1, le=604800)
    """This stage's no-progress deadline (default: `spec.progressDeadlineSeconds`): raise it for a
    stage whose single sample takes long (scene optimisation), lower it for a fast one."""
    active_deadline_seconds: int | None = Field(None, ge=1, le=2592000)
    """The longest this stage's Job may run in all (Kubernetes' `activeDeadlineSeconds`, counted from
    its start, retries included): then its Pods are stopped and the stage fails with
    DeadlineExceeded. Default: no limit."""


if TYPE_CHECKING:
    ImageOverrides = GenfabModel
else:
    ImageOverrides = create_model(
        "ImageOverrides", __base__=GenfabModel,
        __doc__="Images per stage family; unset families use the operator's defaults (Helm values).",
        **{family: (str | None, Field(None, max_length=512, description=doc)) for family, doc in FAMILIES.items()},
    )


RESERVED_ENV_CEL = " && ".join([f"!self.name.startsWith('{p}')" for p in RESERVED_ENV_PREFIXES]
                               + [f"self.name != '{n}'" for n in RESERVED_ENV_NAMES])


class EnvVar(GenfabModel):
    """An environment variable for a custom stage. genfab's own names (`GENFAB_*`, `AWS_*`,
    `JOB_COMPLETION_INDEX`) are reserved: the stage contract and the storage credentials use them."""

    rules = (
        Rule(RESERVED_ENV_CEL,
             f"`name` is reserved by genfab (names starting with {' or '.join(RESERVED_ENV_PREFIXES)}, and "
             f"{', '.join(RESERVED_ENV_NAMES)}); pass settings in `config` or under another name",
             "name", lambda m: not is_reserved_env(m.name)),
    )

    name: EnvName
    """Variable name."""
    value: str = Field("", max_length=32768)
    """Literal value."""


MAX_CUSTOM_CONFIG_BYTES = 64 * 1024
"""A custom stage's `config` travels in the stage ConfigMap (1 MiB for every stage of a resource)."""


MAX_CUSTOM_CONFIG_DEPTH = 32
"""Levels a custom stage's `config` may nest: deep nesting in a few bytes is a way to exhaust a decoder."""


def _bounded_config(value: dict[str, Any]) -> dict[str, Any]:
    levels = json_depth(value)
    if levels > MAX_CUSTOM_CONFIG_DEPTH:
        raise ValueError(f"nested {levels} levels deep (or deeper); at most {MAX_CUSTOM_CONFIG_DEPTH}")
    try:  # JSON (the API server's, the mounted config's) has no NaN or infinity
        size = len(json.dumps(value, separators=(",", ":"), default=str, allow_nan=False).encode())
    except ValueError:
        raise ValueError("holds NaN or an infinity, which JSON (and so the API server) cannot carry") from None
    if size > MAX_CUSTOM_CONFIG_BYTES:
        raise ValueError(f"{size / 1024:.0f} KiB as JSON; at most {MAX_CUSTOM_CONFIG_BYTES // 1024} KiB (put large "
                         "inputs in object storage and pass their URI)")
    return value


class CustomStage(GenfabModel):
    """Research code that is not a package (SEVA, VGGT, MoGe, Zero123++, IntrinsicAnything, DiFix
    training) plugs in as a custom stage: any image and command that honour the stage contract
    (stage config mounted as JSON, `JOB_COMPLETION_INDEX` and `GENFAB_SHARD_COUNT`, input and output
    URIs in env, per-sample `_SUCCESS.json` markers).

    A custom stage whose name equals a built-in stage replaces that stage's implementation and keeps
    its place in the DAG; any other name adds a stage that runs after `after`."""

    name: StageName
    """Stage name, unique within the resource."""
    image: str = Field(min_length=1, max_length=512)
    """Container image."""
    command: list[str] = Field(default_factory=list, max_length=64)
    """Entry point; empty uses the image's."""
    args: list[str] = Field(default_factory=list, max_length=256)
    """Arguments."""
    env: list[EnvVar] = Field(default_factory=list, max_length=64)
    """Extra environment variables."""
    after: list[StageName] = Field(default_factory=list, max_length=16)
    """Upstream stages (for new stages). Empty means after the pipeline's last stage."""
    config: Annotated[dict[str, Any], AfterValidator(_bounded_config)] = Field(default_factory=dict, max_length=64)
    """Parameters passed to the stage in its mounted config (at most 64 KiB as JSON); part of the
    config hash."""
    resources: StageResources | None = None
    """Resources of the stage's Pods (default: one GPU)."""
    shard_size: int | None = Field(None, ge=1, le=100000)
    """Samples per shard."""


HOST_PATH_CEL = (
    "self.startsWith('/') && self != '/' && !self.matches('(^|/)[.][.]?(/|$)') && !self.contains('//')"
    " && !self.contains('\\\\')"
)


def _check_host_path(value: str) -> str:
    """An absolute, normalised directory path that is not the root. Which host paths a cluster
    allows at all is the operator's setting (the chart's `stages.hostPathPrefixes`)."""
    if not value.startswith("/") or value == "/" or "//" in value or "\\" in value:
        raise ValueError("must be an absolute directory path other than /, e.g. /var/cache/huggingface/hub")
    if any(seg in (".", "..") for seg in value.split("/")):
        raise ValueError("must not contain '.' or '..' path segments")
    return value


HostPath = Annotated[str, AfterValidator(_check_host_path), Field(
    max_length=1024, json_schema_extra={"x-kubernetes-validations": [
        {"rule": HOST_PATH_CEL, "message": "must be an absolute directory path other than /, without "
                                           "'.' or '..' segments"}]})]


class ModelSource(GenfabModel):
    """Where stage Pods load model weights from (`from_pretrained` of a local directory)."""

    rules = (exactly_one("uri", "persistentVolumeClaim", "hubCache"),)

    uri: StorageUri | None = None
    """Object-storage prefix holding one folder per model id; synced to local disk once per Pod."""
    persistent_volume_claim: DnsLabel | None = None
    """A PVC with the models, mounted read-only at /models."""
    hub_cache: HostPath | None = None
    """A Hugging Face hub cache directory already present on the node (hostPath, mounted read-only).
    The cluster's admins list the host paths they allow (chart `stages.hostPathPrefixes`; by default
    none, which disables this form); locally, `genfab run` reads the folder itself."""


class Rerun(GenfabModel):
    """Make committed outputs again (the lab's worldexplorer script's `--only_stages` re-training, the lab's
    reference-object script's
    `--start_from_step` clearing the later steps). Declarative, so GitOps can ask for it: the `token`
    is part of the listed stages' config hashes, so a new token re-runs them, and what consumes their
    outputs, once; the same token again changes nothing."""

    token: str = Field(min_length=1, max_length=128)
    """Any string; change it to run the stages again (a date, a counter, a commit)."""
    stages: list[StageName] | None = Field(None, min_length=1, max_length=32)
    """The stages to re-run; unset: the stages `onlyStages` (or the pipeline's own step selection,
    such as reference-object's `startFromStep`) selects, and every stage when nothing is selected."""


class CommonSpec(GenfabModel):
    """Fields every genfab resource has: where outputs go, how stages are run."""

    output: OutputUri
    """Where all outputs go: `s3://bucket/prefix` or `file://path`. Outputs outlive the resource."""
    storage: Storage | None = None
    """Object-store endpoint and credentials for `s3://` URIs."""
    models: ModelSource | None = None
    """Where model weights are loaded from (no downloads at run time)."""
    images: ImageOverrides = Field(default_factory=ImageOverrides)
    """Image overrides per stage family."""
    resources: StageResources = Field(default_factory=StageResources)
    """Resources and placement applied to every stage (per-stage `stages` entries win)."""
    stages: dict[StageName, StageOverride] = Field(default_factory=dict, max_length=32)
    """Per-stage overrides keyed by stage name (resources, shard size, image)."""
    only_stages: list[StageName] | None = Field(None, min_length=1, max_length=32)
    """Run only these stages (the lab's worldexplorer script's `--only_stages`); the others reuse their committed
    outputs.
    A selected stage also reuses the samples it committed with the same config hash; `rerun` makes
    them again."""
    rerun: Rerun | None = None
    """Re-run stages once per new `token` (their committed outputs are made again)."""
    parallelism: int | None = Field(None, ge=1, le=10000)
    """Most Pods running at once per stage; unset runs all shards at once. Below a stage's shard count its
    Pods are warm workers: each loads the stage's models once and takes shard after shard."""
    shard_size: int | None = Field(None, ge=1, le=100000)
    """Samples per shard for every stage (per-stage `stages.<name>.shardSize` wins)."""
    retries: int = Field(2, ge=0, le=20)
    """Retries per shard (the Job's `backoffLimitPerIndex`); disruptions do not count."""
    continue_on_error: bool = False
    """Keep going when samples fail: downstream stages get only the successful samples and the
    resource ends PartiallySucceeded instead of Failed (the lab's worldexplorer script's `--continue_on_error`)."""
    suspend: bool = False
    """Create stage Jobs suspended / suspend running ones (Kueue admits suspended Jobs)."""
    queue_name: DnsLabel | None = None
    """Kueue LocalQueue name (`kueue.x-k8s.io/queue-name` label on the stage Jobs)."""
    start_deadline_seconds: int = Field(3600, ge=1, le=604800)
    """A stage whose Pods have not started this many seconds after its Job was (last) unsuspended,
    e.g. no free GPU or an image that cannot be pulled, fails with DeadlineExceeded and frees its
    place. Time spent suspended (Kueue queueing) does not count."""
    progress_deadline_seconds: int = Field(1800, ge=1, le=604800)
    """A running shard that commits no sample for this long (counted since its last committed or
    failed sample, else since its Pod started; model loading included) is Stalled with NoProgress: its
    Pod is stopped, which frees its GPUs, and the shard is retried per `retries`. Per stage:
    `stages.<name>.progressDeadlineSeconds`."""
    ttl_seconds_after_finished: int = Field(86400, ge=0, le=31536000)
    """Seconds finished stage Jobs are kept before Kubernetes deletes them (outputs stay)."""
    custom_stages: list[CustomStage] = Field(default_factory=list, max_length=32)
    """Custom stages: replace a built-in stage or add new ones."""


def stage_rules(attr: str, stages: dict[str, list[str]]) -> tuple[Rule, ...]:
    """Rules that every stage named in `onlyStages`, `stages` and custom `after` exists.

    `attr` is the spec field choosing the pipeline, `stages` maps its values to the stage names of
    the pipeline they select. Custom stages count as known stages.
    """
    selector = to_camel(attr)

    def known(m: Any) -> list[str]:
        return [*stages[getattr(m, attr)], *(c.name for c in m.custom_stages)]

    cel_known = " : ".join(f"self.{selector} == '{value}' ? {names!r}" for value, names in stages.items()) + " : []"
    custom = "self.customStages.exists(c, c.name == {v})"

    def unknown(names: Any, m: Any) -> list[str]:
        return [n for n in names if n not in known(m)]

    def detail(field: str, names: Any) -> Callable[[Any], str]:
        return lambda m: (
            f"unknown stage(s) {unknown(names(m), m)} in `{field}` for "
            f"{selector} {getattr(m, attr)!r}; allowed: {known(m)}"
        )
    return (
        Rule(
            f"!has(self.onlyStages) || self.onlyStages.all(s, s in ({cel_known}) || {custom.format(v='s')})",
            "`onlyStages` names a stage this pipeline does not have",
            "onlyStages",
            lambda m: not unknown(m.only_stages or [], m),
            detail("onlyStages", lambda m: m.only_stages or []),
        ),
        Rule(
            f"!has(self.rerun) || !has(self.rerun.stages) || self.rerun.stages.all(s, s in ({cel_known}) || "
            f"{custom.format(v='s')})",
            "`rerun.stages` names a stage this pipeline does not have",
            "rerun",
            lambda m: m.rerun is None or not unknown(m.rerun.stages or [], m),
            detail("rerun.stages", lambda m: (m.rerun.stages or []) if m.rerun is not None else []),
        ),
        Rule(
            f"self.stages.all(s, s in ({cel_known}) || {custom.format(v='s')})",
            "`stages` has an entry for a stage this pipeline does not have",
            "stages",
            lambda m: not unknown(m.stages, m),
            detail("stages", lambda m: list(m.stages)),
        ),
        Rule(
            f"self.customStages.all(c, c.after.all(a, a in ({cel_known}) || {custom.format(v='a')}))",
            "a custom stage's `after` names an unknown stage",
            "customStages",
            lambda m: all(not unknown(c.after, m) for c in m.custom_stages),
            detail("customStages[].after", lambda m: [a for c in m.custom_stages for a in c.after]),
        ),
    )

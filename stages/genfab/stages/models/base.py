"""The models of a model stage (`ModelSet`, opened by `open_models` in a stage's `load`).

Per worker process, once: the placement (device, dtype, offload policy), then every model the stage asks
for is resolved from the model location (`spec.models`; a missing model names the path it expected),
loaded with `from_pretrained` and placed. Each load is timed and its GPU memory recorded (log lines,
the shard report's model-load seconds, Prometheus gauges). A stage of one model loads it with `hold`
and calls the `Held` model per sample or batch.

Designed for 10-20B diffusers pipelines as much as for small vision models: bf16 weights loaded
straight into the target dtype, `offload` for GPUs that cannot hold the whole pipeline, and models
loaded once per worker (which runs shard after shard), never per sample.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from genfab.contract.config import Offload
from genfab.stages.models.location import MARKERS, ModelUnavailable, resolve_model
from genfab.stages.models.placement import Placement, Precision
from genfab.stages.runtime import BadInput, StageContext

log = logging.getLogger("genfab.stages")
S = TypeVar("S")
M = TypeVar("M")
Loader = Callable[[Path, Placement], M]
"""`loader(path, placement)`: `from_pretrained` from a local folder, returning the placed model."""


@dataclass(frozen=True)
class LoadedModel:
    role: str
    model_id: str
    path: Path
    seconds: float
    gpu_bytes: int
    """GPU memory the model holds after loading (weights and buffers)."""


SHARED: dict[tuple[str, str, str], Any] = {}
"""Models a process loaded with a `share` key, by (model id, key, placement): a shared worker's stages
(`PlannedStage.shares_worker`) that load the same model with the same settings get the one loaded first."""


@dataclass
class ModelSet:
    """The models of one shard: loaded once, timed, their memory recorded."""

    ctx: StageContext
    placement: Placement
    loaded: list[LoadedModel] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    """Optional models that could not be loaded, by role, with the reason."""

    def path(self, model_id: str, markers: tuple[str, ...] = MARKERS) -> Path:
        """A local folder holding `model_id` (ModelUnavailable names where it looked)."""
        return resolve_model(model_id, self.ctx.workdir / "models", self.ctx.env, markers)

    def load(self, role: str, model_id: str, loader: Loader[M], markers: tuple[str, ...] = MARKERS,
             share: str | None = None) -> M:
        """Resolve, load and place one model; raises ModelUnavailable when it is not there. `markers`:
        the files that make a local folder this model (research checkpoints have no config.json).
        `share`: the settings the loader builds it with (JSON): another stage of this process that loads
        the same model with the same `share` and placement gets this one (a shared worker)."""
        key = (model_id, share, f"{self.placement.device}/{self.placement.dtype}") if share is not None else None
        if key is not None and key in SHARED:
            self.loaded.append(LoadedModel(role, model_id, self.path(model_id, markers), 0.0, 0))
            log.info("model shared", extra={"role": role, "model": model_id})
            return SHARED[key]  # type: ignore[no-any-return]
        path = self.path(model_id, markers)
        before = self.placement.allocated()
        started = time.perf_counter()
        model = loader(path, self.placement)
        self.placement.synchronize()
        record = LoadedModel(role, model_id, path, round(time.perf_counter() - started, 3),
                             self.placement.allocated() - before)
        self.loaded.append(record)
        log.info("model loaded", extra={"role": role, "model": model_id, "seconds": record.seconds,
                                        "gpu_bytes": record.gpu_bytes, "device": str(self.placement.device),
                                        "dtype": str(self.placement.dtype).removeprefix("torch.")})
        metrics = self.ctx.metrics
        if metrics is not None:
            metrics.model_loaded(model_id, record.seconds, record.gpu_bytes)
        if key is not None:
            SHARED[key] = model
        return model

    def load_optional(self, role: str, model_id: str, loader: Loader[M]) -> M | None:
        """Like `load`, but a model that is not in the model location (or whose library is not in
        this image) is recorded in `unavailable` and gives None: the stage falls back."""
        try:
            return self.load(role, model_id, loader)
        except (ImportError, ModelUnavailable) as exc:
            self.unavailable[role] = f"{type(exc).__name__}: {exc}"
            log.warning("model %s (%s) unavailable, falling back: %s", role, model_id, exc)
            return None


@dataclass(frozen=True)
class Held(Generic[S, M]):
    """What a model stage's worker holds from sample to sample (a `SampleStage`'s loaded value): its
    settings, its context, its models and the model it calls."""

    settings: S
    ctx: StageContext
    models: ModelSet
    model: M


def hold(settings: S, ctx: StageContext, load: Callable[[ModelSet, S], M], precision: Precision = "auto",
         offload: Offload = "none", require_gpu: bool = False) -> Held[S, M]:
    """A `SampleStage`'s `load` for a stage of one model: the models opened (`open_models`) and `load`
    called inside `required_models()`."""
    models = open_models(ctx, precision, offload, require_gpu)
    with required_models():
        return Held(settings, ctx, models, load(models, settings))


def open_models(ctx: StageContext, precision: Precision = "auto", offload: Offload = "none",
                require_gpu: bool = False) -> ModelSet:
    """The models of a stage: where they go (the GPU when there is one; bf16 there, float32 on the CPU; the
    config's `offload` over the stage's own) and the set that loads each once. A `SampleStage`'s `load`
    opens it and loads inside `required_models()`; `ModelStage.setup` does the same."""
    return ModelSet(ctx, Placement.choose(precision, ctx.cfg.offload or offload, require_gpu))


@contextmanager
def required_models() -> Iterator[None]:
    """Loads whose required model is not in the model location are bad input (exit 42): retrying cannot
    help. Optional models fall back through `ModelSet.load_optional` instead."""
    try:
        yield
    except ModelUnavailable as exc:
        raise BadInput(str(exc)) from None


def model_params(models: ModelSet) -> dict[str, Any]:
    """What a sample's marker records about the models that made it."""
    out: dict[str, Any] = {"models": {m.role: m.model_id for m in models.loaded}}
    if models.unavailable:
        out["unavailableModels"] = sorted(models.unavailable)
    return out


"""A TuningRun's training documents, one model each, used by the code that writes them and the code that
reads them back, so every writer and reader of a key is found from its field:

- `TrainingState`: `_genfab/training.json` (`TRAINING_KEY`), what node 0 last reported while it trains
  (the built-in trainer's progress, or the progress file a lab's trainer writes), read by both
  executors into `status.training` and the PROGRESS column;
- `StepLog`: a line of `logs/steps.jsonl` per optimizer step, read by the run's report for its curves;
- `TrainConfig`: `train_config.json` (the lab's file: its keys in snake case), what each start of the run
  trained with and from, read back by the next start of the same `runName`.

Read leniently, as the run summary is: each is written by a Pod (a lab's trainer writes its progress file
itself), so an unknown key is ignored, and a value of the wrong type or out of its range reads as unset
(its default) instead of failing the whole read. The learning rate is `learningRate` wherever genfab
writes it (`lr` is still read, as earlier runs wrote their step logs); `--learning_rate` is the lab
trainer's own flag.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic.alias_generators import to_camel

MAX_CHECKPOINT_NAMES = 4096
MAX_EVALS = 4096
MAX_HISTORY = 64
"""Starts of a run kept in `train_config.json` (the latest)."""


def _unset_if_invalid(default: Any) -> WrapValidator:
    """A value that is not what the field holds reads as `default` (the document is a Pod's to write)."""

    def wrap(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError:
            return default

    return WrapValidator(wrap)


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def _printable(text: str) -> str:
    if not text.isprintable():
        raise ValueError("not printable")
    return text


def _strings(value: Any) -> list[str]:
    """A list's string items (anything else left out)."""
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _psnrs(value: Any) -> dict[str, float]:
    """`{"<step>": dB}` with digit keys and finite numbers (anything else left out)."""
    if not isinstance(value, dict):
        return {}
    return {k: float(v) for k, v in value.items() if isinstance(k, str) and k.isdigit() and len(k) < 16
            and isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}


Count = Annotated[int, Strict(), Field(ge=0, lt=2**53), _unset_if_invalid(0)]
"""A whole number of steps or samples (a bool, a float or text is not one)."""
SomeCount = Annotated[int | None, Strict(), Field(ge=0, lt=2**53), _unset_if_invalid(None)]
"""A count, or unset (not known to the writer)."""
Text = Annotated[str | None, Strict(), Field(max_length=4096), _unset_if_invalid(None)]
Number = Annotated[float | None, Strict(), AfterValidator(lambda v: v if v is None else _finite(v)),
                   _unset_if_invalid(None)]
"""A finite number, or unset."""
Rate = Annotated[float | None, Strict(), Field(ge=0), AfterValidator(lambda v: v if v is None else _finite(v)),
                 _unset_if_invalid(None)]
"""A finite number not below 0, or unset."""
Name = Annotated[str | None, Strict(), Field(max_length=200),
                 AfterValidator(lambda v: v if v is None else _printable(v)), _unset_if_invalid(None)]
"""A printable name of at most 200 characters, or unset."""
Names = Annotated[list[str], BeforeValidator(_strings), Field(max_length=MAX_CHECKPOINT_NAMES), _unset_if_invalid([])]
Psnrs = Annotated[dict[str, float], BeforeValidator(_psnrs), _unset_if_invalid({})]


class TrainingDocument(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def document(self) -> dict[str, Any]:
        """The document as written: its keys, unset values left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def to_json(self) -> str:
        return json.dumps(self.document(), sort_keys=True)

    @classmethod
    def parse(cls, raw: str | bytes) -> Self | None:
        """The document in `raw`, or None when it is not a JSON object (nested past the parser too)."""
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError):
            return None
        return cls.model_validate(doc) if isinstance(doc, dict) else None


class TrainingState(TrainingDocument):
    """`_genfab/training.json`: the training's state as node 0 last reported it."""

    step: Count = 0
    """Optimizer steps done."""
    max_steps: Count = 0
    """Steps the run trains for."""
    loss: Number = None
    """Total loss of the last step (mean over the ranks)."""
    images_per_second: Rate = None
    """Training images per second over all GPUs."""
    eta_seconds: Rate = None
    """Seconds left at the current rate."""
    checkpoints: Names = Field(default_factory=list)
    """Checkpoint files written (`model_<step>.pkl`)."""
    held_out_psnr: Psnrs = Field(default_factory=dict)
    """Held-out PSNR (dB) of each evaluation, by its step."""
    trainer: Name = None
    """Which trainer reports (`genfab`, or the lab's trainer by the code it runs): set by the train stage."""
    updated: Rate = None
    """When the stage wrote it (epoch seconds)."""


class StepLog(TrainingDocument):
    """A line of `logs/steps.jsonl`: one optimizer step of the built-in trainer (rank 0)."""

    step: Count = 0
    learning_rate: Number = Field(None, validation_alias=AliasChoices("learningRate", "learning_rate", "lr"))
    """The scheduler's learning rate at this step (`lr` in the step logs of earlier runs)."""
    images_per_second: Rate = None
    loss_total: Number = Field(None, alias="loss_total")
    """The weighted sum the optimizer minimises (mean over the ranks, as each term below)."""
    loss_l2: Number = Field(None, alias="loss_l2")
    loss_lpips: Number = Field(None, alias="loss_lpips")
    loss_gram: Number = Field(None, alias="loss_gram")

    LOSSES: ClassVar[tuple[str, ...]] = ("loss_total", "loss_l2", "loss_lpips", "loss_gram")
    """The loss terms, by their keys in the file."""

    def losses(self) -> dict[str, float]:
        """The loss terms this step logged, by key."""
        return {k: v for k in self.LOSSES if (v := getattr(self, k)) is not None}

    @classmethod
    def of_losses(cls, step: int, learning_rate: float, images_per_second: float, losses: dict[str, float]
                  ) -> StepLog:
        """A step's line from the trainer's loss terms (`total`, `l2`, `lpips`, `gram`)."""
        return cls.model_validate({"step": step, "learningRate": learning_rate,
                                   "imagesPerSecond": images_per_second, **{f"loss_{k}": v for k, v in losses.items()}})

    @classmethod
    def lines(cls, raw: str | bytes) -> list[StepLog]:
        """Every readable line of a step log (others skipped)."""
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        return [log for line in text.splitlines() if (log := cls.parse(line)) is not None]


class Start(BaseModel):
    """One start of a run (`TrainConfig.history`): which trainer, from which step, resumed from what."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")
    trainer: Annotated[str, Strict(), Field(max_length=200)]
    start_step: Annotated[int, Strict(), Field(ge=0)]
    resumed_from: Annotated[str | None, Strict()] = None


def _starts(value: Any) -> list[Start]:
    """The well-formed starts of a history (malformed ones left out), the latest `MAX_HISTORY`."""
    out = []
    for item in value if isinstance(value, list) else []:
        try:
            out.append(Start.model_validate(item))
        except ValidationError:
            continue
    return out[-MAX_HISTORY:]


class TrainConfig(BaseModel):
    """`train_config.json`: what a start of the run trained with. The lab's file: snake-case keys."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")
    trainer: Name = None
    """Which trainer this start ran (`genfab`, or the lab's named by its code)."""
    history: Annotated[list[Start], BeforeValidator(_starts)] = Field(default_factory=list)
    """Every start of the run, oldest first."""
    hyperparameters: Annotated[dict[str, Any], _unset_if_invalid({})] = Field(default_factory=dict)
    """The start's hyperparameters, by the trainer's (snake-case) names."""
    base_model: Text = None
    """Where the start's model came from (a hub id or a URI), not its staged copy."""
    dataset_path: Text = None
    """Where the data came from (its URI), not the start's staged copy."""
    world_size: SomeCount = None
    global_batch: SomeCount = None
    train_samples: SomeCount = None
    test_samples: SomeCount = None
    resumed_from: Text = None
    """The checkpoint this start resumed from (None: from the base model)."""
    start_step: SomeCount = None
    sources: Annotated[dict[str, Any] | None, _unset_if_invalid(None)] = None
    """Where the start's models and data were staged from."""
    trainer_source: Annotated[dict[str, Any] | None, _unset_if_invalid(None)] = Field(None, alias="trainerSource")
    """A lab trainer's source record (its repository and commit)."""
    command: Annotated[list[str] | None, _unset_if_invalid(None)] = None
    """A lab trainer's command."""
    arguments: Name = None
    """What genfab appends to a lab trainer's command (`difix3d` or `none`)."""
    models: Annotated[dict[str, Any] | None, _unset_if_invalid(None)] = None
    """Where a lab trainer's models come from."""

    def document(self) -> dict[str, Any]:
        """What its writer set, a null included (`resumed_from` of a start from the base model, the
        `trainerSource` of a lab trainer whose image recorded none): a key no writer set is left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)

    def to_json(self) -> str:
        return json.dumps(self.document(), indent=2, sort_keys=True)

    @classmethod
    def parse(cls, raw: str | bytes) -> TrainConfig:
        """The file's document (an empty one when it is not a JSON object)."""
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError):
            return cls()
        return cls.model_validate(doc) if isinstance(doc, dict) else cls()

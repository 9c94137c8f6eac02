"""TuningRun: DiFix fine-tuning on an exported dataset (the lab's DiFix scripts' `tuning_runs/<run_name>/`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from genfab.api.base import CONTINUABLE, MODEL, RUN_TIME, GenfabModel, exactly_one
from genfab.api.common import CommonSpec
from genfab.api.types import DnsLabel, InputUri


class TuningDataset(GenfabModel):
    """The training data: a `difix` DatasetJob or the URI of a `difix/data.json`."""

    rules = (exactly_one("datasetJobRef", "dataJsonUri"),)

    dataset_job_ref: DnsLabel | None = None
    """A DatasetJob of type difix in the same namespace; the run waits until it succeeded."""
    data_json_uri: InputUri | None = None
    """A `difix/data.json` written by an earlier export."""


class DifixHyperparameters(GenfabModel):
    """Arguments of `train_difix.py`."""

    learning_rate: float = Field(2e-5, gt=0.0, le=1.0)
    """Optimizer learning rate."""
    batch_size: int = Field(1, ge=1, le=1024)
    """Batch size per GPU."""
    gradient_accumulation_steps: int = Field(1, ge=1, le=1024)
    """Gradient accumulation steps."""
    max_steps: Annotated[int, CONTINUABLE] = Field(10000, ge=1, le=10_000_000)
    """Training steps. A run that has checkpoints may go on with a new value (it is extended)."""
    checkpoint_every: Annotated[int, CONTINUABLE] = Field(1000, ge=1, le=10_000_000)
    """Write `checkpoints/model_<step>.pkl` every N steps. A run may go on with a new value."""
    eval_every: Annotated[int, CONTINUABLE] = Field(1000, ge=1, le=10_000_000)
    """Evaluate on the test split every N steps (written to `eval/`). A run may go on with a new value."""
    mixed_precision: Literal["no", "fp16", "bf16"] = "bf16"
    """accelerate `--mixed_precision`."""
    resolution: int = Field(576, ge=64, le=4096, multiple_of=8)
    """Training height in pixels (images are resized to it). Difix3D's `train_difix.py` trains at 576x1024
    (its `PairedDataset`'s size; its `--resolution` flag is not read): the default."""
    width: int = Field(1024, ge=64, le=4096, multiple_of=8)
    """Training width in pixels (Difix3D: 1024)."""
    timestep: int = Field(199, ge=1, le=999)
    """The single denoising timestep (Difix3D: 199)."""
    lora_rank_vae: int = Field(4, ge=1, le=256)
    """Rank of the LoRA on the VAE decoder (Difix3D: 4)."""
    lambda_l2: float = Field(1.0, ge=0.0)
    """L2 loss weight."""
    lambda_lpips: float = Field(1.0, ge=0.0)
    """LPIPS loss weight."""
    lambda_gram: float = Field(1.0, ge=0.0)
    """Gram (style) loss weight."""
    gram_warmup_steps: int = Field(2000, ge=0)
    """The Gram loss starts after this many steps (Difix3D: 2000)."""
    lr_scheduler: Literal["constant", "constant_with_warmup", "linear", "cosine"] = "constant"
    """Learning-rate schedule (diffusers' `get_scheduler`)."""
    lr_warmup_steps: int = Field(0, ge=0)
    """Warm-up steps of the schedules that have one."""
    max_grad_norm: float = Field(1.0, gt=0.0)
    """Gradient clipping norm."""
    eval_samples: Annotated[int, CONTINUABLE] = Field(100, ge=1, le=100_000)
    """Test samples scored at each evaluation (the first N of the test split). A run may go on with a new
    value."""
    keep_local_checkpoints: Annotated[int, RUN_TIME] = Field(2, ge=1, le=1000)
    """Checkpoints kept on the Pod's disk (all of them are uploaded)."""
    dataloader_workers: Annotated[int, RUN_TIME] = Field(4, ge=0, le=64)
    """Data loading processes per GPU (decoding overlaps the training step)."""
    seed: int = Field(42, ge=0)
    """Training seed."""
    compile: Annotated[bool, RUN_TIME] = True
    """genfab's trainer: `torch.compile` the model on a GPU. Compiling takes minutes before the first step
    at SD-Turbo's size, repaid over a long run; turn it off for runs of a few steps. The lab's
    `train_difix.py` never compiles and ignores it."""


class TuningRunBase(CommonSpec):
    """The spec: one fine-tuning run (one hyperparameter setup) on one data export, and how it runs."""

    dataset: TuningDataset
    """Training data."""
    run_name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    """Run name: outputs go to `{output}/tuning_runs/{runName}/`."""
    base_model: Annotated[str, MODEL] = Field("stabilityai/sd-turbo", max_length=256)
    """The model training starts from, an id under the model location: a diffusers folder with `unet/`,
    `vae/`, `text_encoder/`, `tokenizer/` and `scheduler/`. stabilityai/sd-turbo (the default, as the lab's
    `train_difix.py` builds DiFix from it: the skip convolutions start at Difix3D's initial value);
    nvidia/difix_ref or nvidia/difix start from a trained DiFix (their VAE's skip convolutions load)."""
    perceptual_model: Annotated[str, MODEL] = Field("genfab/vgg16-lpips", max_length=256)
    """VGG16 weights (torchvision's file) and LPIPS v0.1 heads for the LPIPS and Gram losses, a model
    folder under the model location (docs/pipelines/difix-trainer.md)."""
    hyperparameters: DifixHyperparameters = Field(default_factory=DifixHyperparameters)
    """Trainer hyperparameters."""
    gpus_per_node: int = Field(1, ge=1, le=16)
    """GPUs per node (one Pod per node)."""
    nodes: int = Field(1, ge=1, le=64)
    """Nodes (Pods) for distributed data-parallel training."""

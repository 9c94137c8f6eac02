"""The lab's own trainer as the `train` stage: a custom stage named `train` (its image, its command,
e.g. Difix3D's `src/train_difix.py`) run under genfab's launch, data staging and checkpoint sync.

The executors start `python -m genfab.stages.tuning.lab -- <command> <args>` in the custom image
(which needs genfab installed: `pip install genfab[tuning]`). Per node, the wrapper:
1. stages the data and rewrites its paths (`GENFAB_DATA_JSON`);
2. fetches the run's newest checkpoint (`GENFAB_RESUME_FROM`, empty for a fresh run);
3. launches the command with the group's shape:
   - `accelerate launch ...` gets `--num_machines`, `--machine_rank`, `--num_processes`,
     `--main_process_ip` and `--main_process_port` (plus `--multi_gpu` when there are several);
   - `torchrun ...` gets `--nnodes`, `--node-rank`, `--nproc-per-node`, `--master-addr` and
     `--master-port`;
   - any other command (`python src/train_difix.py`) runs under torchrun with that shape;
4. appends the trainer's arguments: with `config.arguments: difix3d` (the default), the spec's
   hyperparameters as `train_difix.py` flags (`--dataset_path`, `--output_dir`,
   `--tracker_run_name`, `--learning_rate`, ..., `--resume` when there is a checkpoint); with
   `arguments: none`, nothing (the trainer reads the environment).
5. On node 0, everything the trainer writes under `GENFAB_OUTPUT_DIR` is uploaded to
   `tuning_runs/<runName>/` as it appears. Checkpoints must be `checkpoints/model_<step>.pkl`. A
   trainer may write `GENFAB_PROGRESS_FILE` (JSON: step, maxSteps, loss, imagesPerSecond,
   etaSeconds) for the status. Files it writes also count as progress.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from genfab.api.pipelines.tuning_difix import TrainSettings
from genfab.stages.runtime import BadInput, StageContext, main
from genfab.stages.tuning.launch import Group, accelerate_launch, torchrun
from genfab.stages.tuning.stage import TrainStage
from genfab.stages.tuning.worker import PROGRESS_FILE

ENV_DATA_JSON = "GENFAB_DATA_JSON"
ENV_OUTPUT_DIR = "GENFAB_OUTPUT_DIR"
ENV_RESUME_FROM = "GENFAB_RESUME_FROM"
ENV_RUN_NAME = "GENFAB_RUN_NAME"
ENV_PROGRESS_FILE = "GENFAB_PROGRESS_FILE"
DIFIX3D_FLAGS = {"learning_rate": "--learning_rate", "batch_size": "--train_batch_size",
                 "gradient_accumulation_steps": "--gradient_accumulation_steps", "max_steps": "--max_train_steps",
                 "checkpoint_every": "--checkpointing_steps", "eval_every": "--eval_freq",
                 "resolution": "--resolution", "timestep": "--timestep", "lora_rank_vae": "--lora_rank_vae",
                 "lambda_l2": "--lambda_l2", "lambda_lpips": "--lambda_lpips", "lambda_gram": "--lambda_gram",
                 "gram_warmup_steps": "--gram_loss_warmup_steps", "lr_scheduler": "--lr_scheduler",
                 "lr_warmup_steps": "--lr_warmup_steps", "max_grad_norm": "--max_grad_norm",
                 "eval_samples": "--num_samples_eval", "dataloader_workers": "--dataloader_num_workers",
                 "seed": "--seed"}
"""TuningRun hyperparameters -> Difix3D `train_difix.py` flags."""


def launched(group: Group, command: list[str], mixed_precision: str) -> list[str]:
    """The user's command with the group's shape (see the module doc)."""
    if command[:2] == ["accelerate", "launch"]:
        return accelerate_launch(group, command[2:], mixed_precision)
    if command[:1] == ["torchrun"]:
        return torchrun(group, command[1:])
    if command[:1] in (["python"], ["python3"]) or command[0].endswith("/python"):
        return torchrun(group, command[1:])
    return torchrun(group, ["--no-python", *command])


def difix3d_arguments(hyper: dict[str, Any], data: Path, run_dir: Path, run_name: str, resume: Path | None
                      ) -> list[str]:
    """The hyperparameters as `train_difix.py` arguments, in Difix3D's names."""
    args = ["--dataset_path", str(data), "--output_dir", str(run_dir), "--tracker_run_name", run_name,
            "--report_to", "tensorboard"]
    for key, flag in DIFIX3D_FLAGS.items():
        if hyper.get(key) is not None:
            args += [flag, str(hyper[key])]
    if hyper.get("mixed_precision"):
        args += ["--mixed_precision", str(hyper["mixed_precision"])]
    if resume is not None:
        args += ["--resume", str(resume)]
    return args


class LabTrainStage(TrainStage):
    """`train` replaced by the lab's trainer (a custom stage)."""

    def __init__(self, command: list[str]) -> None:
        self.user_command = command

    def setup(self, ctx: StageContext) -> None:
        raw = dict(ctx.config)
        self.custom: dict[str, Any] = dict(raw.pop("custom", None) or {})
        self.arguments = self.custom.get("arguments", "difix3d")
        if self.arguments not in ("difix3d", "none"):
            raise BadInput(f"customStages[train].config.arguments must be difix3d or none, not {self.arguments!r}")
        try:
            self.settings = TrainSettings.model_validate(raw)
        except Exception as exc:  # pydantic's message names the field
            raise BadInput(f"the train stage's config does not match the TuningRun: {exc}") from None
        super().setup(ctx)

    def load_models(self, ctx: StageContext) -> None:
        """The lab's trainer loads its own models (from its image or the model location it reads)."""

    def command(self, ctx: StageContext, data: Path, run_dir: Path, resume: Path | None) -> list[str]:
        run_dir.mkdir(parents=True, exist_ok=True)
        cmd = launched(self.group, self.user_command, self.snake["mixed_precision"])
        if self.arguments == "difix3d":
            cmd += difix3d_arguments(self.snake, data, run_dir, self.settings.run_name, resume)
        return cmd

    def environment(self, ctx: StageContext, data: Path, run_dir: Path, resume: Path | None) -> dict[str, str]:
        env = super().environment(ctx, data, run_dir, resume)
        env.update({ENV_DATA_JSON: str(data), ENV_OUTPUT_DIR: str(run_dir), ENV_RUN_NAME: self.settings.run_name,
                    ENV_RESUME_FROM: str(resume or ""), ENV_PROGRESS_FILE: str(run_dir / PROGRESS_FILE)})
        return env


def entry(argv: list[str]) -> int:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: python -m genfab.stages.tuning.lab -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    return main(LabTrainStage(argv))


if __name__ == "__main__":
    sys.exit(entry(sys.argv[1:]))

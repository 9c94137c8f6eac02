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
   `--tracker_run_name`, `--learning_rate`, ..., `--resume` when there is a checkpoint, and
   `--report_to wandb`: its other choice, tensorboard, makes accelerate ask for a logging folder
   `train_difix.py` never passes; wandb runs offline into the run folder unless `WANDB_MODE` is set);
   with `arguments: none`, nothing (the trainer reads the environment).
5. On node 0, `train_config.json` names the trainer (`difix3d:train_difix.py@<commit>` from the
   source record its image wrote, `genfab.stages.tuning.provenance`), its command, the hyperparameters
   and the run's starts; it and everything the trainer writes under `GENFAB_OUTPUT_DIR` are uploaded to
   `tuning_runs/<runName>/` as they appear. Checkpoints must be `checkpoints/model_<step>.pkl`. A
   trainer may write `GENFAB_PROGRESS_FILE` (JSON: step, maxSteps, loss, imagesPerSecond,
   etaSeconds) for the status. Files it writes also count as progress.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from pathlib import Path
from typing import Any

from genfab.api.pipelines.tuning_difix import TrainSettings
from genfab.api.training import TrainConfig
from genfab.stages.models.location import ModelUnavailable, resolve_model
from genfab.stages.runtime import BadInput, SampleStage, StageContext, main
from genfab.stages.tuning.launch import Group, accelerate_launch, torchrun
from genfab.stages.tuning.provenance import lab_trainer
from genfab.stages.tuning.stage import MARKERS, Node, node_environment, open_node, train
from genfab.stages.tuning.worker import PROGRESS_FILE

ENV_DATA_JSON = "GENFAB_DATA_JSON"
ENV_OUTPUT_DIR = "GENFAB_OUTPUT_DIR"
ENV_RESUME_FROM = "GENFAB_RESUME_FROM"
ENV_RUN_NAME = "GENFAB_RUN_NAME"
ENV_PROGRESS_FILE = "GENFAB_PROGRESS_FILE"
WANDB_OFFLINE = {"WANDB_MODE": "offline"}
"""`train_difix.py` logs to wandb: offline (into the run folder, uploaded with it; `wandb sync` sends it
later) unless the stage's environment says otherwise."""
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
HUB_BASE = "stabilityai/sd-turbo"
"""What `train_difix.py` (Difix3D's `Difix()`) loads by its hub name."""
log = logging.getLogger("genfab.stages")


PROBED = ("tokenizer/config.json",)
"""Files `train_difix.py`'s loaders ask the hub for that SD-Turbo's repository does not have (transformers 5's
AutoTokenizer reads a model config first). Online the hub answers 404 and huggingface_hub records the
absence in its cache (`.no_exist/<revision>/<file>`); offline, a cache without that record fails the load."""


def hub_cache(root: Path, model_id: str, folder: Path) -> Path:
    """`folder` as the hub cache's snapshot of `model_id` under `root`, as one online load leaves it (the
    snapshot, and the absence of the `PROBED` files it lacks): what `from_pretrained(model_id)` reads
    offline. Returns `root`."""
    repo = root / "hub" / f"models--{model_id.replace('/', '--')}"
    revision = hashlib.sha1(str(folder.resolve()).encode()).hexdigest()
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    (repo / "snapshots").mkdir(exist_ok=True)
    link = repo / "snapshots" / revision
    if not link.exists():
        link.symlink_to(folder.resolve(), target_is_directory=True)
    for name in PROBED:
        if not (folder / name).exists():
            marker = repo / ".no_exist" / revision / name
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
    return root


def torch_hub_checkpoint(root: Path, perceptual: Path) -> Path | None:
    """torchvision's VGG16 file of a perceptual model folder (its `config.json` names it) where
    `torchvision.models.vgg16(pretrained=True)` and `lpips` look for it under `root`; None when the
    folder names none, or a file of VGG16's features alone (enough for genfab's own trainer, not for
    torchvision, which loads the whole network, classifier included)."""
    try:
        name = json.loads((perceptual / "config.json").read_text())["vgg16"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    source = perceptual / str(name)
    if not source.is_file():
        return None
    import torch  # the lab trainer's image has it; only the keys are read (memory-mapped)

    keys = torch.load(source, map_location="cpu", weights_only=True, mmap=True).keys()
    if not {"classifier.6.weight", "features.0.weight"} <= set(keys):
        log.info("perceptualModel's %s holds VGG16's features only, not torchvision's whole vgg16-397923af.pth: "
                 "not laid out as torch's hub cache (the trainer downloads torchvision's file)", name)
        return None
    target = root / "hub" / "checkpoints" / "vgg16-397923af.pth"
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        target.symlink_to(source.resolve())
    return root


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
            "--report_to", "wandb"]
    for key, flag in DIFIX3D_FLAGS.items():
        if hyper.get(key) is not None:
            args += [flag, str(hyper[key])]
    if hyper.get("mixed_precision"):
        args += ["--mixed_precision", str(hyper["mixed_precision"])]
    if resume is not None:
        args += ["--resume", str(resume)]
    return args


class LabTrainer:
    """The lab's trainer (`Trainer`): the user's command under the group's launch, its arguments in
    Difix3D's names (or none), its models where the model location holds them."""

    def __init__(self, command: list[str], arguments: str) -> None:
        self.user_command = command
        self.arguments = arguments
        self.name, self.source = lab_trainer(command, Path.cwd())
        self.model_env: dict[str, str] = {}
        self.model_sources = {HUB_BASE: "the Hugging Face hub", "vgg16": "torch's hub (torchvision's ImageNet VGG16)"}
        """Where the trainer's models come from (`train_config.json`'s `models`)."""

    def models(self, settings: TrainSettings, ctx: StageContext) -> None:
        """The lab's trainer loads its models by their hub names (`stabilityai/sd-turbo` from the
        Hugging Face hub, VGG16 from torch's). Where the model location holds them (`stabilityai/sd-turbo`,
        and the `perceptualModel` folder's VGG16 file), they are laid out as those caches and the hub is
        not asked (`HF_HUB_OFFLINE`); otherwise the trainer downloads them as it would anywhere."""
        caches = ctx.workdir / "caches"
        try:
            base = resolve_model(HUB_BASE, ctx.workdir / "models", ctx.env)
        except ModelUnavailable as exc:
            log.info("the lab trainer's %s comes from the hub: %s", HUB_BASE, exc)
        else:
            self.model_env.update({"HF_HOME": str(hub_cache(caches / "huggingface", HUB_BASE, base)),
                                   "HF_HUB_OFFLINE": "1"})
            self.model_sources[HUB_BASE] = f"the model location: {HUB_BASE}"
        try:
            perceptual = resolve_model(settings.perceptual_model, ctx.workdir / "models", ctx.env)
        except ModelUnavailable as exc:
            log.info("the lab trainer's VGG16 comes from torch's hub: %s", exc)
        else:
            if (torch_home := torch_hub_checkpoint(caches / "torch", perceptual)) is not None:
                self.model_env["TORCH_HOME"] = str(torch_home)
                self.model_sources["vgg16"] = f"the model location: {settings.perceptual_model}"

    def command(self, node: Node, ctx: StageContext, data: Path, run_dir: Path, resume: Path | None) -> list[str]:
        run_dir.mkdir(parents=True, exist_ok=True)
        self._write_config(node, run_dir / "train_config.json", ctx.input_uris[0], resume)
        cmd = launched(node.group, self.user_command, node.snake["mixed_precision"])
        if self.arguments == "difix3d":
            cmd += difix3d_arguments(node.snake, data, run_dir, node.settings.run_name, resume)
        return cmd

    def _write_config(self, node: Node, path: Path, dataset: str, resume: Path | None) -> None:
        """What the built-in trainer's `train_config.json` records, for the lab's trainer (which writes none)."""
        snake = node.snake
        config = TrainConfig.model_validate({
            **node.record, "trainerSource": self.source, "command": self.user_command, "arguments": self.arguments,
            "hyperparameters": snake, "dataset_path": dataset, "models": self.model_sources,
            "world_size": node.group.world_size,
            "global_batch": snake["batch_size"] * node.group.world_size * snake["gradient_accumulation_steps"],
            "resumed_from": resume.name if resume else None, "start_step": node.record["history"][-1]["startStep"]})
        path.write_text(config.to_json())

    def environment(self, node: Node, ctx: StageContext, data: Path, run_dir: Path, resume: Path | None
                    ) -> dict[str, str]:
        env = {**WANDB_OFFLINE, **node_environment(node, ctx), **self.model_env}
        env.update({ENV_DATA_JSON: str(data), ENV_OUTPUT_DIR: str(run_dir), ENV_RUN_NAME: node.settings.run_name,
                    ENV_RESUME_FROM: str(resume or ""), ENV_PROGRESS_FILE: str(run_dir / PROGRESS_FILE)})
        return env


def lab_stage(command: list[str]) -> SampleStage[dict[str, Any], Node]:
    """`train` replaced by the lab's trainer (a custom stage: its config is the TuningRun's `train` settings
    and `custom`, validated here)."""

    def load(config: dict[str, Any], ctx: StageContext) -> Node:
        raw = dict(config)
        custom: dict[str, Any] = dict(raw.pop("custom", None) or {})
        arguments = custom.get("arguments", "difix3d")
        if arguments not in ("difix3d", "none"):
            raise BadInput(f"customStages[train].config.arguments must be difix3d or none, not {arguments!r}")
        try:
            settings = TrainSettings.model_validate(raw)
        except Exception as exc:  # pydantic's message names the field
            raise BadInput(f"the train stage's config does not match the TuningRun: {exc}") from None
        return open_node(settings, ctx, LabTrainer(command, arguments))

    return SampleStage("train", load, train, marker_dir=MARKERS)


def entry(argv: list[str]) -> int:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: python -m genfab.stages.tuning.lab -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    return main(lab_stage(argv).stage())


if __name__ == "__main__":
    sys.exit(entry(sys.argv[1:]))

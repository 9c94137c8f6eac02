"""The `train` stage of a TuningRun: one shard per node of the process group.

Per node (Job index = node rank):
1. stage the data: `data.json` and the images it names, onto local disk (`staging`);
2. fetch the newest checkpoint of the run from storage, so a restarted group resumes from it;
3. launch one worker per GPU with torchrun (`launch`), rendezvous at node 0;
4. node 0 syncs the run folder to `{output}/tuning_runs/{runName}/` while the workers train
   (checkpoints, eval, logs, train_config.json) and reports the training state.

Changing the recipe of a run that already has checkpoints (learning rate, batch size, losses, model)
is refused: `runName` names one hyperparameter setup (the lab's difix document); `maxSteps` and the cadences may
change, so a finished run can be extended.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from genfab.api.base import recipe_fields
from genfab.api.pipelines.tuning_difix import TrainSettings
from genfab.api.training import TrainConfig, TrainingState
from genfab.api.tuningrun import DifixHyperparameters
from genfab.contract import RUN_DIR
from genfab.contract.names import ENV_CPU_WORKERS, TRAINING_KEY, latest_checkpoint
from genfab.stages.models.location import ModelUnavailable, resolve_model
from genfab.stages.runtime import BadInput, Sample, SampleStage, StageContext
from genfab.stages.runtime.errors import FatalError
from genfab.stages.runtime.lifetime import die_with_parent_after_fork
from genfab.stages.tuning.launch import Group, group_from_env, torchrun
from genfab.stages.tuning.provenance import BUILT_IN, history
from genfab.stages.tuning.staging import StagingError, stage_data
from genfab.storage import Storage, StorageError, StorageTooLarge

log = logging.getLogger("genfab.stages")
HEARTBEAT_SECONDS = 5.0
MAX_CONFIG_BYTES = 1 << 20
"""The largest `train_config.json` a start reads back (its own are a few KiB; `history` keeps 64 starts)."""
RECIPE = recipe_fields(DifixHyperparameters)
"""Hyperparameters that make a run's trajectory; the others (marked `CONTINUABLE` or `RUN_TIME` on the
API model) may change while the run goes on."""


def recipe(hyperparameters: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sorted(hyperparameters.items()) if k in RECIPE}


def split_data_uri(uri: str) -> tuple[str, str]:
    """(experiment root, data.json key): `.../<exp>/difix/data.json` -> (`.../<exp>`, `difix/data.json`)."""
    head, _, name = uri.rstrip("/").rpartition("/")
    parent, _, folder = head.rpartition("/")
    if folder == "difix" and parent:
        return parent, f"difix/{name}"
    return head, name


class Trainer(Protocol):
    """What a node launches (genfab's built-in trainer, `BuiltIn`, or the lab's own, `genfab.stages.tuning.lab`):
    the rest of a node's work (staging, resuming, syncing, the training state) is the same for both."""

    name: str
    """Which trainer makes this start's checkpoints (`genfab.stages.tuning.provenance`)."""

    def models(self, settings: TrainSettings, ctx: StageContext) -> None:
        """Find the models it trains from (`BadInput` for a required one that is missing)."""

    def command(self, node: Node, ctx: StageContext, data: Path, run_dir: Path, resume: Path | None) -> list[str]:
        """The node's launch."""

    def environment(self, node: Node, ctx: StageContext, data: Path, run_dir: Path, resume: Path | None
                    ) -> dict[str, str]:
        """The launch's environment."""


@dataclass
class Node:
    """What a node of the process group holds: the settings, the trainer, the group's shape, the run's
    last `train_config.json` and what this start records."""

    settings: TrainSettings
    trainer: Trainer
    snake: dict[str, Any]
    """The hyperparameters in the trainers' own (snake_case) names."""
    group: Group
    previous: TrainConfig
    """The run's `train_config.json` as its last start wrote it (empty for a new run)."""
    record: dict[str, Any]
    """What this start records (`trainer`, `history`), as the trainer's worker receives it."""


def open_node(settings: TrainSettings, ctx: StageContext, trainer: Trainer) -> Node:
    """A node's `load`: the group's shape, the trainer's models, and the run's recipe checked against the
    checkpoints it already has."""
    node = Node(settings, trainer, settings.hyperparameters.model_dump(),
                group_from_env(ctx.env, settings.nodes, settings.gpus_per_node), TrainConfig(),
                {"trainer": trainer.name})
    trainer.models(settings, ctx)
    node.previous = _previous_config(settings, ctx)
    _check_recipe(node, ctx)
    return node


def node_environment(node: Node, ctx: StageContext) -> dict[str, str]:
    """Every trainer's environment: the stage's, with the data loader's workers and one share of the
    node's cores per worker (torch would otherwise start all of them in each)."""
    env = dict(ctx.env)
    env.setdefault(ENV_CPU_WORKERS, str(node.snake["dataloader_workers"]))
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // node.group.procs_per_node)))
    return env


class BuiltIn:
    """genfab's own trainer: torchrun with one `genfab.stages.tuning.worker` per GPU."""

    name = BUILT_IN

    def models(self, settings: TrainSettings, ctx: StageContext) -> None:
        try:
            self.base = resolve_model(settings.base_model, ctx.workdir / "models", ctx.env)
            self.perceptual = resolve_model(settings.perceptual_model, ctx.workdir / "models", ctx.env)
        except ModelUnavailable as exc:
            raise BadInput(str(exc)) from None

    def command(self, node: Node, ctx: StageContext, data: Path, run_dir: Path, resume: Path | None) -> list[str]:
        from genfab.stages.tuning.worker import WorkerJob, write_job

        sources = {"dataset": ctx.input_uris[0], "base_model": node.settings.base_model,
                   "perceptual_model": node.settings.perceptual_model}
        job = write_job(WorkerJob(node.snake, str(self.base), str(self.perceptual), str(data), str(run_dir),
                                  sources=sources, record=node.record), ctx.workdir / "worker.json")
        return torchrun(node.group, ["-m", "genfab.stages.tuning.worker", str(job)])

    def environment(self, node: Node, ctx: StageContext, data: Path, run_dir: Path, resume: Path | None
                    ) -> dict[str, str]:
        return node_environment(node, ctx)


def _previous_config(settings: TrainSettings, ctx: StageContext) -> TrainConfig:
    """The run's `train_config.json` as its last start wrote it (empty for a new run). The output is the
    tenant's: read up to `MAX_CONFIG_BYTES`, a larger one refused."""
    try:
        return TrainConfig.parse(ctx.output.read_at_most("train_config.json", MAX_CONFIG_BYTES, "train_config.json"))
    except StorageTooLarge:
        raise BadInput(f"tuning_runs/{settings.run_name}/train_config.json is over "
                       f"{MAX_CONFIG_BYTES >> 10} KiB: not a training record genfab wrote") from None
    except StorageError:
        return TrainConfig()


def _check_recipe(node: Node, ctx: StageContext) -> None:
    had = node.previous.hyperparameters
    if not had or not latest_checkpoint([o.key for o in ctx.output.list("checkpoints/")]):
        return
    now, old = recipe(node.snake), recipe(had)
    changed = sorted(k for k in set(now) | set(old) if now.get(k) != old.get(k))
    if changed:
        raise BadInput(f"tuning_runs/{node.settings.run_name} already has checkpoints trained with other "
                       f"hyperparameters ({', '.join(f'{k}: {old.get(k)!r} -> {now.get(k)!r}' for k in changed)});"
                       " a runName is one setup: use a new runName")


def train(node: Node, sample: Sample) -> None:
    """The node's one sample: stage the data, resume from the newest checkpoint, launch the trainer and
    (node 0) sync the run folder while it trains."""
    ctx = sample.ctx
    trainer, rank = node.trainer, node.group.node_rank
    work = ctx.workdir
    run_dir = work / "run"
    data = _stage_data(ctx, work / "data")
    resume = _fetch_latest(ctx.output, run_dir / "checkpoints")
    starts = history(node.previous.history, trainer.name, resume.name if resume else None)
    node.record = {"trainer": trainer.name, "history": [s.model_dump(mode="json", by_alias=True) for s in starts]}
    command = trainer.command(node, ctx, data, run_dir, resume)
    env = trainer.environment(node, ctx, data, run_dir, resume)
    log.info("launching node", extra={"node": rank, "nodes": node.group.nodes, "world": node.group.world_size,
                                      "host": node.group.host, "port": node.group.port})
    sync = None
    if rank == 0:
        from genfab.stages.tuning.sync import RunSync

        run_dir.mkdir(parents=True, exist_ok=True)
        sync = RunSync(run_dir, ctx.output, node.snake["keep_local_checkpoints"],
                       lambda doc: _report(ctx, trainer.name, doc),
                       interval=float(ctx.env.get("GENFAB_SYNC_SECONDS", 5)),
                       on_upload=lambda: _uploaded(ctx, trainer.name, sync))
        sync.start()
    started = time.monotonic()
    ctx.heartbeat()  # the data is staged
    process = subprocess.Popen(command, env=env, preexec_fn=die_with_parent_after_fork)
    try:
        while (code := process.poll()) is None:
            time.sleep(HEARTBEAT_SECONDS)
            # Node 0 beats with the training steps once the trainer reports them (loading and starting
            # count while its workers live); the other nodes while their workers live.
            if sync is None or not sync.reported:
                ctx.heartbeat()
    except BaseException:  # SIGTERM (preemption) or a crash here: the workers must not outlive the node
        process.terminate()
        process.wait()
        raise
    finally:
        if sync is not None:
            sync.stop()
    if code != 0:
        raise FatalError(f"node {rank}: the training workers exited with code {code} after "
                         f"{time.monotonic() - started:.0f} s (the group restarts from the latest checkpoint)")
    sample.produced_by = trainer.name
    if sync is not None:
        sample.params = {"checkpoints": sync.checkpoints, "worldSize": node.group.world_size,
                         "trainer": trainer.name}


def _stage_data(ctx: StageContext, target: Path) -> Path:
    if not ctx.input_uris or not ctx.input_uris[0]:
        raise BadInput("the TuningRun names no data (spec.dataset)")
    root, key = split_data_uri(ctx.input_uris[0])
    try:
        staged = stage_data(ctx.open(root), key, target)
    except StagingError as exc:
        raise BadInput(str(exc)) from None
    log.info("data staged", extra={"files": staged.files, "fetched": staged.fetched, "bytes": staged.bytes_fetched,
                                   "train": staged.train, "test": staged.test})
    return staged.data_json


def _fetch_latest(output: Storage, folder: Path) -> Path | None:
    """The run's newest checkpoint on this disk (fetched from storage unless this disk has it, or a newer
    one, already); None when the run has none yet."""
    stored = latest_checkpoint([o.key for o in output.list("checkpoints/")])
    local = latest_checkpoint([p.name for p in folder.glob("model_*.pkl")]) if folder.is_dir() else None
    if stored is not None and (local is None or local[0] < stored[0]):
        target = folder / stored[1].rsplit("/", 1)[-1]
        output.download_file(stored[1], target)
        return target
    return folder / local[1] if local is not None else None


def _uploaded(ctx: StageContext, trainer: str, sync: Any) -> None:
    """Files uploaded: progress; for a trainer that reports no steps (Difix3D's own), the training state is
    the trainer and the checkpoints uploaded so far."""
    if sync is not None and not sync.reported:
        _report(ctx, trainer, TrainingState(checkpoints=list(sync.checkpoints)))
    else:
        ctx.heartbeat()


def _report(ctx: StageContext, trainer: str, state: TrainingState) -> None:
    ctx.heartbeat()  # training steps are progress: the progress deadline must not stop a long run
    try:
        ctx.run_storage.write_bytes(TRAINING_KEY, state.model_copy(update={"trainer": trainer, "updated": time.time()})
                                    .to_json().encode())
    except StorageError as exc:
        log.warning("training state not written: %s", exc)


MARKERS = f"{RUN_DIR}/train"


def load(settings: TrainSettings, ctx: StageContext) -> Node:
    return open_node(settings, ctx, BuiltIn())


TRAIN = SampleStage("train", load, train, marker_dir=MARKERS)


"""TuningRun pipeline `tuning-difix` (the lab's DiFix scripts, trainer `difix`): one `train` stage, one Job index per
node, into `{output}/tuning_runs/{runName}/`."""

from __future__ import annotations

from typing import Annotated

from genfab.api.base import MODEL, GenfabModel
from genfab.api.lab.tuning_difix import COMPARISON as LAB
from genfab.api.pipeline import Draft, DraftRequest, Pipeline, PipelineDrafts, StageDecl
from genfab.api.tuningrun import DifixHyperparameters, TuningRunBase
from genfab.contract.paths import join_uri, ref_uri


class TrainSettings(GenfabModel):
    """DiFix fine-tuning: the models, the run's name and its hyperparameters, and the process group's
    shape (the global batch is `batchSize` x GPUs x nodes)."""

    base_model: Annotated[str, MODEL]
    """`spec.baseModel`."""
    perceptual_model: Annotated[str, MODEL]
    """`spec.perceptualModel`."""
    run_name: str
    """`spec.runName`."""
    hyperparameters: DifixHyperparameters
    gpus_per_node: int
    """`spec.gpusPerNode`."""
    nodes: int
    """`spec.nodes`."""


def drafts(req: DraftRequest) -> PipelineDrafts:
    spec: TuningRunBase = req.spec
    refs: tuple[str, ...] = ()
    if spec.dataset.dataset_job_ref is not None:
        refs = (f"DatasetJob/{spec.dataset.dataset_job_ref}",)
        data_uri = ref_uri("DatasetJob", spec.dataset.dataset_job_ref, "difix/data.json")
    else:
        data_uri = spec.dataset.data_json_uri or ""
    settings = TrainSettings(base_model=spec.base_model, perceptual_model=spec.perceptual_model,
                             run_name=spec.run_name, hyperparameters=spec.hyperparameters,
                             gpus_per_node=spec.gpus_per_node, nodes=spec.nodes)
    root = join_uri(spec.output, "tuning_runs", spec.run_name)
    return PipelineDrafts(root, [Draft("train", settings, spec.nodes, input_uris=(data_uri,), shards=spec.nodes,
                                       gpus=spec.gpus_per_node)], refs)


PIPELINE = Pipeline(
    lab=LAB,
    name="tuning-difix", kind="TuningRun", value="difix",
    description="DiFix3D fine-tuning (accelerate launch train_difix.py)", drafts=drafts,
    stages=(
        StageDecl("train", family="diffusion",
                  description="DiFix fine-tuning: Difix3D's recipe, one Pod per node, torchrun per GPU",
                  settings=TrainSettings, implementation="genfab.stages.tuning.stage:TRAIN", memory="64Gi",
                  cpu="8", shard_size=1,
                  output="checkpoints/model_{step}.pkl, eval/, logs/, train_config.json",
                  units="genfab.stages.tuning.units:node_units", gang=True, extra="tuning"),
    ),
)

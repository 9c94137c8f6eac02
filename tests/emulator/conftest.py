"""Emulator tier: the real operator (a subprocess) against GenfabCluster over HTTP."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.emulator.harness import STAGE_NETWORK_POLICY, Emulator, OperatorProcess, own_cluster
from tests.emulator.kubelet import Behaviour

pytest.importorskip("kopf")
pytestmark = pytest.mark.emulator
_names = itertools.count()


# Package scope: the emulated API server and the operator stop after the emulator tier, instead of
# reconciling its leftover resources (a third of a core) through every later tier.
@pytest.fixture(scope="package")
def emulator() -> Iterator[Emulator]:
    emu = Emulator().start()
    yield emu
    emu.stop()


@pytest.fixture(scope="package")
def operator(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    op = OperatorProcess(emulator, tmp_path_factory.mktemp("operator")).start()
    emulator.wait("operator liveness", op.healthy, timeout=60, interval=0.2)
    yield op
    op.stop()


@pytest.fixture()
def emu(emulator: Emulator, operator: OperatorProcess) -> Iterator[Emulator]:
    """The shared emulator with a clean script; the operator is up."""
    emulator.kubelet.script = lambda stage, index, attempt: Behaviour()
    emulator.kubelet.replacement_delay = 0.0
    emulator.kubelet.released.clear()
    yield emulator
    if operator.process is not None and operator.process.poll() is not None:
        raise AssertionError(f"the operator died:\n{operator.logs()[-4000:]}")


OWN_METHODS = {"scaffold": {"method": "scaffold_gen"}, "expansion": {"method": "walk"}}
MODELS = {"persistentVolumeClaim": "models"}
"""A model location for resources whose stages load models: without one the operator refuses them
(InvalidSpec); a volume is mounted by the stage Pods only, so they would say what is missing (the
fake kubelet runs none)."""
"""worldexplorer with genfab's own methods, named: the lab's SEVA and VGGT need their research images,
and a resource that leaves them unset without those images is refused."""


def make_scenejob(tmp: Path, samples: int = 5, shard_size: int = 2, **spec: Any) -> dict[str, Any]:
    """A 3-stage worldexplorer SceneJob over a curated set of `samples` inline samples (one image each,
samples `photorealistic/index_XXXX`) in a fresh namespace."""
    inputs = tmp / "in"
    inputs.mkdir(exist_ok=True)
    for i in range(samples):
        (inputs / f"img_{i:02d}.png").write_bytes(b"png")
    n = next(_names)
    return {
        "apiVersion": "genfab.dev/v1alpha1", "kind": "SceneJob",
        "metadata": {"name": f"scenes-{n}", "namespace": f"lab-{n}"},
        "spec": {"pipeline": "worldexplorer",
                 "input": {"datasetUri": f"file://{inputs}",
                           "samples": [{"index": i, "photorealistic": {"path": f"img_{i:02d}.png"}}
                                       for i in range(samples)]},
                 "output": f"file://{tmp}/out", "shardSize": shard_size,
                 "worldexplorer": OWN_METHODS, "models": MODELS, **spec},
    }


@pytest.fixture(scope="module")
def bound(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Emulator, Path]]:
    """An emulator and an operator configured like a shared cluster's chart: each namespace bound to
`file://{root}/{namespace}/` and `s3://lab-out/{namespace}/`, the storage Secret `lab-s3`, stage
NetworkPolicies on, no storage credentials for custom stages."""
    root = tmp_path_factory.mktemp("tenants")
    with own_cluster(tmp_path_factory.mktemp("bound-operator"),
                     GENFAB_STORAGE_PREFIXES=json.dumps({"*": [f"file://{root}/{{namespace}}/",
                                                               "s3://lab-out/{namespace}/"]}),
                     GENFAB_SECRET_NAMES=json.dumps(["lab-s3"]),
                     GENFAB_STAGE_NETWORK_POLICY=STAGE_NETWORK_POLICY,
                     GENFAB_CUSTOM_STAGE_CREDENTIALS="false",
                     # No resync to lean on: what this module's tests wait for must come from events
                     # or the operator's own re-checks (a namespace being prepared sends none).
                     GENFAB_RESYNC_SECONDS="600") as (emu, _):
        yield emu, root

"""Files a built-in stage reads from a resource's model location are data, never code to run
(genfab.stages.reference_object.sam_models): SAM2's YAML is checked before hydra instantiates it, and
checkpoints load with `weights_only=True`. The attack this stops: a config whose `_target_` wraps
`torch.load(..., weights_only=False)` of a pickle beside it ran a command in the annotation Pod, next to
the storage credentials."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROOT

pytest.importorskip("hydra")
pytest.importorskip("torch")

from genfab.stages.reference_object.sam_models import UnsafeConfig, load_sam2, sam2_config_problem

OFFICIAL = {"model": {"_target_": "sam2.modeling.sam2_base.SAM2Base", "image_size": 1024,
                      "image_encoder": {"_target_": "sam2.modeling.backbones.image_encoder.ImageEncoder",
                                        "scalp": 1, "trunk": {"_target_": "sam2.modeling.backbones.hieradet.Hiera",
                                                              "embed_dim": 144}},
                      "memory_attention": {"_target_": "sam2.modeling.memory_attention.MemoryAttention",
                                           "d_model": 256, "layer": {"self_attention": {
                                               "_target_": "sam2.modeling.sam.transformer.RoPEAttention",
                                               "feat_sizes": [64, 64], "rope_theta": 10000.0}}},
                      "sizes": "${model.image_size}"}}


@pytest.mark.parametrize(("change", "problem"), [
    ({}, None),  # SAM2.1's own config: its model classes, key references
    ({"model": {"_target_": "torch.load", "f": "x.pt"}}, "model._target_ 'torch.load' is not one of SAM2's"),
    ({"model": {"_target_": "builtins.dict", "x": {"_target_": "torch.load", "f": "evil.pkl",
                                                    "weights_only": False}}}, "model._target_ 'builtins.dict'"),
    ({"model": {"_target_": "sam2.modeling.sam2_base.SAM2Base",
                "trunk": {"_target_": "os.system", "_args_": ["id"]}}}, "model.trunk._target_ 'os.system'"),
    ({"model": {"_target_": "sam2.modeling.x;__import__('os')"}}, "is not one of SAM2's model classes"),
    ({"model": {"_target_": "sam2.modeling.sam2_base.SAM2Base",
                "key": "${oc.env:AWS_SECRET_ACCESS_KEY}"}}, "model.key: '${oc.env:AWS_SECRET_ACCESS_KEY}' calls a"),
    ({"model": {"_target_": "sam2.modeling.sam2_base.SAM2Base", "layers": [{"_target_": "posix.system"}]}},
     "model.layers.0._target_ 'posix.system'"),
])
def test_a_sam2_config_may_name_sam2s_model_classes_and_other_keys_only(change: dict[str, Any],
                                                                         problem: str | None) -> None:
    found = sam2_config_problem({**OFFICIAL, **change})
    assert (found is None) if problem is None else (found is not None and problem in found), found


class Command:
    """A pickle that runs code when loaded (what a tenant's `weights_only=False` load would run)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (self.marker, "ran"))


def test_the_attack_config_is_refused_before_anything_of_it_runs(tmp_path: Path) -> None:
    import torch

    folder = tmp_path / "facebook" / "sam2.1-hiera-large"
    folder.mkdir(parents=True)
    marker = tmp_path / "ran.txt"
    (folder / "evil.pkl").write_bytes(pickle.dumps(Command(marker)))
    (folder / "sam2.1_hiera_l.yaml").write_text(
        "model:\n  _target_: builtins.dict\n  payload:\n    _target_: torch.load\n"
        f"    f: {folder / 'evil.pkl'}\n    weights_only: false\n")
    sys.path.insert(0, str(ROOT / "tests" / "fakes" / "packages"))
    try:
        with pytest.raises(UnsafeConfig, match=r"model\._target_ 'builtins\.dict' is not one of SAM2's model classes"):
            load_sam2(folder, None, None, torch.device("cpu"))
    finally:
        sys.path.remove(str(ROOT / "tests" / "fakes" / "packages"))
    assert not marker.exists()

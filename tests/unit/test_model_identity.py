"""Model identities: what the planner hashes for the weights under a model id (no full reads)."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest

from genfab.inventory.model_identity import (
    EDGE_BYTES,
    MISSING,
    SMALL_FILE_BYTES,
    ModelLocationError,
    folder_identity,
    model_identities,
)
from genfab.storage.markers import Marker, same_output


def safetensors(path: Path, header: dict[str, object], payload: bytes) -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + payload)


def model(root: Path, model_id: str = "org/tiny", weights: bytes = b"\0" * (SMALL_FILE_BYTES + 10),
          dtype: str = "F32") -> Path:
    folder = root / model_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"hidden_size": 8}))
    safetensors(folder / "model.safetensors", {"w": {"dtype": dtype, "shape": [2], "data_offsets": [0, 8]}}, weights)
    return folder


def test_the_identity_follows_content_not_times(tmp_path: Path) -> None:
    folder = model(tmp_path)
    first = folder_identity(folder)
    os.utime(folder / "model.safetensors", (1, 1))
    assert folder_identity(folder) == first  # touched, same bytes
    (folder / "config.json").write_text(json.dumps({"hidden_size": 16}))
    assert folder_identity(folder) != first  # the config's content counts


def test_a_safetensors_file_is_known_by_its_header_and_size(tmp_path: Path) -> None:
    folder = model(tmp_path)
    first = folder_identity(folder)
    model(tmp_path, dtype="BF16")  # another header, same size
    assert folder_identity(folder) != first
    second = folder_identity(folder)
    model(tmp_path, weights=b"\1" * (SMALL_FILE_BYTES + 10), dtype="BF16")  # same header: the payload is not read
    assert folder_identity(folder) == second
    model(tmp_path, weights=b"\1" * (SMALL_FILE_BYTES + 11), dtype="BF16")  # but its size is
    assert folder_identity(folder) != second


def test_other_large_files_are_known_by_their_ends(tmp_path: Path) -> None:
    folder = model(tmp_path)
    blob = bytearray(b"\0" * (4 * EDGE_BYTES))
    (folder / "weights.pkl").write_bytes(bytes(blob) * (SMALL_FILE_BYTES // len(blob) + 1))
    first = folder_identity(folder)
    data = bytearray((folder / "weights.pkl").read_bytes())
    data[-1] = 7
    (folder / "weights.pkl").write_bytes(bytes(data))
    assert folder_identity(folder) != first


def test_locations_layouts_and_missing_models(tmp_path: Path) -> None:
    model(tmp_path, "org/a")
    hub = tmp_path / "hub" / "models--org--b" / "snapshots" / "abc"
    model(hub.parent, "abc")
    (tmp_path / "hub" / "models--org--b" / "refs").mkdir()
    (tmp_path / "hub" / "models--org--b" / "refs" / "main").write_text("abc")
    found = model_identities(["org/a", "org/none"], f"file://{tmp_path}")
    assert found["org/none"] == MISSING and found["org/a"] not in (MISSING, "")
    assert model_identities(["org/b"], str(tmp_path / "hub"))["org/b"] == folder_identity(hub)
    assert model_identities(["org/a"], f"file://{tmp_path}/nowhere") == {"org/a": MISSING}  # the stage says so


def test_an_unreadable_location_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "org").mkdir()
    (tmp_path / "org" / "a").write_text("a file where a model folder should be")
    found = model_identities(["org/a"], f"file://{tmp_path}")
    assert found == {"org/a": MISSING}
    with pytest.raises(ModelLocationError, match="model location s3://"):
        model_identities(["org/a"], "s3://genfab-nowhere/models", _Broken())


class _Broken:
    uri = "s3://genfab-nowhere/models"

    def list(self, prefix: str = "") -> object:
        from genfab.storage import StorageError

        raise StorageError("s3://genfab-nowhere/models: AccessDenied")


@pytest.mark.parametrize(("marker_hash", "marker_base", "config_hash", "base_hash", "reused"), [
    ("h", "h", "h", "h", True),          # same config, no token
    ("t1", "h", "h", "h", True),         # made under a token, none applies now: kept (a token re-runs once)
    ("t1", "h", "t2", "h", False),       # a new token: made again
    ("t1", "h", "t1", "h", True),        # the same token again: nothing
    ("h", "h", "t1", "h", False),        # a token applies: made again
    ("t1", "x", "h", "h", False),        # made under a token on another base: another config
    ("old", "", "h", "h", False),        # a marker from before base hashes: another config
])
def test_which_markers_a_stage_reuses(marker_hash: str, marker_base: str, config_hash: str, base_hash: str,
                                      reused: bool) -> None:
    assert same_output(Marker(marker_hash, {}, base_hash=marker_base), config_hash, base_hash) is reused

"""scripts/gpu_tier.py's decisions, kept by CI (the script itself runs on a GPU machine): every GPU
test file is in exactly one group, what it would carry leaves the GPU image's own packages out, and
the research code comes at the pinned commit with pip's record of it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from scripts import gpu_tier


def test_every_gpu_test_file_is_in_exactly_one_group() -> None:
    gpu_tier.check_groups()  # exits naming the files otherwise
    assert set(gpu_tier.GROUPS) >= gpu_tier.RASTERIZE


def test_a_file_left_out_of_the_groups_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(gpu_tier.GROUPS, "flux", [])
    with pytest.raises(SystemExit, match=r"test_flux_gpu\.py"):
        gpu_tier.check_groups()


def test_the_closure_keeps_the_gpu_images_torch_and_follows_requirements() -> None:
    found, absent = gpu_tier.closure(["pydantic", "torch"])
    assert "pydantic" in found and "pydantic-core" in found and "annotated-types" in found
    assert "torch" not in found and "torch" not in absent  # never carried: the image's CUDA build stays
    assert gpu_tier.canonical("Typing_Extensions") == "typing-extensions"


def _clone_with_one_commit(folder: Path) -> str:
    folder.mkdir(parents=True)
    git = ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git[:3], "init", "-q"], check=True)
    (folder / "vggt").mkdir()
    (folder / "vggt" / "__init__.py").write_text("")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], check=True)
    return subprocess.run([*git[:3], "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()


def test_a_forks_clone_holding_the_pinned_commit_serves_and_the_commit_reaches_provenance(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pinned commit from any clone that holds it (a fork's, when the owner's is absent); none
    that lacks it. The metadata written beside the code makes `provenance` name the commit, as pip's
    does in the image."""
    commit = _clone_with_one_commit(tmp_path / "mirrors" / "someone+vggt" / "repo")
    (tmp_path / "mirrors" / "facebookresearch+vggt" / "repo").mkdir(parents=True)  # the owner's, empty
    found = gpu_tier.mirror_holding("facebookresearch/vggt", commit, str(tmp_path / "mirrors"))
    assert found == tmp_path / "mirrors" / "someone+vggt" / "repo"
    assert gpu_tier.mirror_holding("facebookresearch/vggt", "0" * 40, str(tmp_path / "mirrors")) is None
    assert gpu_tier.mirror_holding("facebookresearch/vggt", commit, None) is None
    src = tmp_path / "src"
    gpu_tier.extract_upstream("facebookresearch/vggt", commit, ["vggt"], src, str(tmp_path / "mirrors"))
    gpu_tier.write_distribution(src, "vggt", "facebookresearch/vggt", commit)
    assert (src / "vggt" / "__init__.py").is_file()
    monkeypatch.syspath_prepend(str(src))
    from genfab.stages.models.research import provenance

    assert provenance("vggt") == f"vggt@{commit[:12]}"

"""images/: static checks of every Dockerfile (no Docker engine here) with dockerfile-parse."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser

from genfab.api.families import (
    FAMILIES,
    RESEARCH_IMAGES,
    TEMPLATE_IMAGES,
    TORCH_INDEX,
    TORCH_VERSION,
    TORCHAO_VERSION,
    TRAINER_IMAGES,
)
from genfab.api.pipeline import pipelines
from tests.chart.conftest import ROOT

IMAGES = ROOT / "images"
NAMES = ("operator", *FAMILIES)
# A pinned base names an exact release (major.minor.patch), never `latest` or a bare major.
PINNED = re.compile(r"^[\w./-]+:(?!latest)[\w.-]*\d+\.\d+\.\d+[\w.-]*(@sha256:[a-f0-9]{64})?$")


def dockerfile(name: str) -> Path:
    """The image's own Dockerfile, or the stage template for the families built from it."""
    return IMAGES / ("stage" if name in TEMPLATE_IMAGES else name) / "Dockerfile"


def instructions(name: str) -> list[dict[str, Any]]:
    return list(DockerfileParser(path=str(dockerfile(name))).structure)


def stages_of(name: str) -> list[list[dict[str, Any]]]:
    """Instructions grouped by build stage (each FROM starts one)."""
    out: list[list[dict[str, Any]]] = []
    for ins in instructions(name):
        if ins["instruction"] == "FROM":
            out.append([])
        if out:
            out[-1].append(ins)
    return out


def extras() -> set[str]:
    return set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])


@pytest.mark.parametrize("name", NAMES)
def test_multi_stage_with_pinned_bases(name: str) -> None:
    stages = stages_of(name)
    assert len(stages) >= 2, "multi-stage: build tools stay out of the runtime image"
    aliases = set()
    # ARGs before the first FROM may name a base (a lab's mirror); their defaults must be pinned.
    defaults = dict(i["value"].split("=", 1) for i in instructions(name)[:instructions(name).index(stages[0][0])]
                    if i["instruction"] == "ARG" and "=" in i["value"])
    for stage in stages:
        base = re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], stage[0]["value"]).split()
        image = base[0]
        if image not in aliases:
            assert PINNED.match(image), f"{name}: base {image!r} is not pinned to an exact version"
        if len(base) == 3 and base[1].upper() == "AS":
            aliases.add(base[2])
    runtime = stages[-1]
    assert len(runtime[0]["value"].split()) == 1, "the last stage is the runtime image (no alias)"
    assert any(i["instruction"] == "COPY" and i["value"].startswith("--from=") for i in runtime)
    assert not any(i["instruction"] == "RUN" and "pip install" in i["value"] for i in runtime), \
        "the runtime stage installs nothing: it copies the built venv"


@pytest.mark.parametrize("name", NAMES)
def test_runs_as_a_non_root_user_with_the_right_entry_point(name: str) -> None:
    runtime = stages_of(name)[-1]
    users = [i["value"] for i in runtime if i["instruction"] == "USER"]
    assert users, f"{name}: no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"{name}: USER {users[-1]} must be a numeric non-root uid"
    assert int(uid) == 10001  # = the chart's and the operator's runAsUser
    entry = [json.loads(i["value"]) for i in runtime if i["instruction"] == "ENTRYPOINT"][-1]
    assert entry == ["python", "-m", "genfab.operator" if name == "operator" else "genfab.stages"]
    env = " ".join(i["value"] for i in runtime if i["instruction"] == "ENV")
    assert "HOME=/tmp" in env, "caches go to /tmp: the root filesystem is read-only"


@pytest.mark.parametrize("name", NAMES)
def test_installs_the_matching_pyproject_extra(name: str) -> None:
    installs = [i["value"] for i in instructions(name) if i["instruction"] == "RUN" and "pip install" in i["value"]]
    used = {m for cmd in installs for m in re.findall(r'"\.\[([\w,$-]+)\]"', cmd)}
    if name in TEMPLATE_IMAGES:  # the template installs the extra build.sh passes
        assert used == {"$EXTRA"}
        used = {TEMPLATE_IMAGES[name][0]}
    assert used == {name}, f"{name}: installs extras {used}"
    assert used <= extras()


def test_every_declared_stage_has_an_image_family() -> None:
    for p in pipelines().values():
        for stage in p.stages:
            assert stage.family in FAMILIES, f"{p.name}/{stage.name} has no image family"
    for family in FAMILIES:
        assert dockerfile(family).exists(), f"family {family} has no Dockerfile"
    # Only families that need their own Dockerfile have one; the others come from the template.
    own = ({p.parent.name for p in IMAGES.glob("*/Dockerfile")} - {"stage", "operator"} - set(RESEARCH_IMAGES)
           - set(TRAINER_IMAGES))
    assert own == set(FAMILIES) - set(TEMPLATE_IMAGES)


@pytest.mark.parametrize("name", sorted(RESEARCH_IMAGES))
def test_research_images_pin_their_commit_on_a_genfab_base_and_stay_non_root(name: str) -> None:
    """SEVA, VGGT and MoGe: on top of a genfab image (BASE), installed from their repository at a commit
    given by a build argument (its default the one the adapter ran against on the GPU), the adapter's
    imports checked at build time, uid 10001 at run time."""
    path = IMAGES / name / "Dockerfile"
    parsed = DockerfileParser(path=str(path))
    assert [i["value"] for i in parsed.structure if i["instruction"] == "FROM"] == ["${BASE}"]
    text = path.read_text()
    arg = f"{name.upper()}_COMMIT"
    assert f"@${{{arg}}}" in text and f"python -c \"import {name}." in text
    assert [i["value"] for i in parsed.structure if i["instruction"] == "USER"][-1] == "10001:10001"
    default = next(i["value"] for i in parsed.structure if i["instruction"] == "ARG" and i["value"].startswith(arg))
    # each ran here on the GPU against that commit (tests/gpu): genfab vouches for it
    assert re.fullmatch(rf"{arg}=[0-9a-f]{{40}}", default), default
    script = (IMAGES / "build-research.sh").read_text()
    assert f"images/{name}/Dockerfile" in script


@pytest.mark.parametrize("name", sorted(TRAINER_IMAGES))
def test_trainer_images_pin_their_commit_apply_their_patches_and_record_the_source(name: str) -> None:
    """The lab's trainer: on a genfab image, its repository at the commit the GPU tier ran (the build
    argument's default), every patch in its folder applied, the source record written by genfab's own
    writer, its script started once at build time, uid 10001 at run time."""
    path = IMAGES / name / "Dockerfile"
    parsed = DockerfileParser(path=str(path))
    assert [i["value"] for i in parsed.structure if i["instruction"] == "FROM"] == ["${BASE}"]
    text = path.read_text()
    arg = f"{name.upper()}_COMMIT"
    default = next(i["value"] for i in parsed.structure if i["instruction"] == "ARG" and i["value"].startswith(arg))
    assert re.fullmatch(rf"{arg}=[0-9a-f]{{40}}", default), default
    assert f'checkout --detach "${arg}"' in text
    for patch in sorted((IMAGES / name).glob("*.patch")):
        assert f"apply /opt/{name}-patches/{patch.name}" in text and patch.read_text().startswith("diff --git")
    assert f'python -m genfab.stages.tuning.provenance /opt/{name} {name} ' in text
    assert "--help > /dev/null" in text  # its imports resolve in the image
    assert [i["value"] for i in parsed.structure if i["instruction"] == "USER"][-1] == "10001:10001"
    assert f"images/{name}/Dockerfile" in (IMAGES / "build-research.sh").read_text()


def test_torch_images_pin_torch_and_scene_compiles_gsplat_for_every_gpu_generation() -> None:
    versions = {i["value"].split("=", 1)[1] for i in instructions("scene")
                if i["instruction"] == "ARG" and i["value"].startswith("TORCH_VERSION=")}
    assert versions == {TORCH_VERSION} and re.fullmatch(r"\d+\.\d+\.\d+", TORCH_VERSION)
    assert {f for f, (_, _, torch) in TEMPLATE_IMAGES.items() if torch} == {"segment", "diffusion"}
    scene = (IMAGES / "scene" / "Dockerfile").read_text()
    arch = re.search(r'TORCH_CUDA_ARCH_LIST="([^"]+)"', scene)
    assert arch and set(arch.group(1).split(";")) == {"8.0", "8.6", "8.9", "9.0"}
    assert "--no-binary gsplat" in scene  # build from source: kernels compiled ahead of time
    operator_runs = [i["value"] for i in instructions("operator") if i["instruction"] == "RUN"]
    assert not [r for r in operator_runs if "torch" in r]
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [d for d in deps["dependencies"] + deps["optional-dependencies"]["operator"] if "torch" in d]


def fake_engine(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A container engine that records its calls (one line each, arguments split by `|`), and the
    environment that makes images/build.sh use it."""
    log = tmp_path / "calls"
    engine = tmp_path / "engine"
    engine.write_text(f"#!/bin/sh\nprintf '%s|' \"$@\" >> {shlex.quote(str(log))}\necho >> {shlex.quote(str(log))}\n")
    engine.chmod(0o755)
    return log, {"PATH": "/usr/bin:/bin", "CONTAINER_ENGINE": str(engine)}


def test_build_script_builds_the_catalog_families(tmp_path: Any) -> None:
    """Run the script with a fake container engine that records its calls."""
    log, env = fake_engine(tmp_path)
    out = subprocess.run(["bash", str(IMAGES / "build.sh"), "--registry", "registry.lab.example/ml/",
                          "--tag", "2026.11", "--push"], env=env, capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    calls = [line.rstrip("|").split("|") for line in log.read_text().splitlines()]
    builds = [c for c in calls if c[0] == "build"]
    built = [c[c.index("-t") + 1] for c in builds]
    assert built == [f"registry.lab.example/ml/genfab-{n}:2026.11" for n in NAMES]
    assert [c[1] for c in calls if c[0] == "push"] == built
    for name, call in zip(NAMES, builds, strict=True):
        assert call[call.index("-f") + 1] == str(dockerfile(name).relative_to(ROOT))
        args = {a.removeprefix("--build-arg=") for a in call if a.startswith("--build-arg=")}
        torch_args = {f"TORCH_VERSION={TORCH_VERSION}", f"TORCHAO_VERSION={TORCHAO_VERSION}"}
        if name in TEMPLATE_IMAGES:
            extra, smoke, torch = TEMPLATE_IMAGES[name]
            assert args == {f"EXTRA={extra}", f"SMOKE={smoke}", f"LOCK=requirements/images/{name}.txt",
                            *(torch_args if torch else [])}
            assert (ROOT / "requirements" / "images" / f"{name}.txt").is_file()
        else:
            assert not args
    bad = subprocess.run(["bash", str(IMAGES / "build.sh"), "--tag", "x"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "--registry and --tag are required" in bad.stderr


def test_build_script_passes_a_torch_index_to_the_torch_images_only_and_refuses_an_unknown_image(tmp_path: Any) -> None:
    log, env = fake_engine(tmp_path)
    mirror = "https://pypi.lab.example/simple"
    out = subprocess.run(["bash", str(IMAGES / "build.sh"), "--registry", "r.example", "--tag", "1",
                          "--torch-index", mirror], env=env, capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    calls = [line.rstrip("|").split("|") for line in log.read_text().splitlines()]
    with_index = {c[c.index("-t") + 1].split("/genfab-")[1].split(":")[0] for c in calls
                  if f"--build-arg=TORCH_INDEX={mirror}" in c}
    assert with_index == {"scene", *(f for f, (_, _, torch) in TEMPLATE_IMAGES.items() if torch)}
    bad = subprocess.run(["bash", str(IMAGES / "build.sh"), "--registry", "r.example", "--tag", "1", "--only", "gpu"],
                         env=env, capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "--only gpu: no such image" in bad.stderr


@pytest.mark.parametrize("name", ["scene", "segment"])
def test_torch_images_pin_torchao_and_default_to_pypis_torch(name: str) -> None:
    """torchao declares no torch requirement: every torch image pins the release built for its torch;
    PyPI's torch is the CUDA build, so one index serves the whole build by default."""
    args = {i["value"].split("=", 1)[0]: i["value"].split("=", 1)[1] for i in instructions(name)
            if i["instruction"] == "ARG" and "=" in i["value"]}
    assert args["TORCHAO_VERSION"] == TORCHAO_VERSION and args["TORCH_INDEX"] == TORCH_INDEX
    assert "-c /opt/constraints.txt" in dockerfile(name).read_text()


def test_scene_ships_ahead_of_time_kernels_unless_asked_and_says_which() -> None:
    """gsplat-aot (compiled in the CUDA devel image) by default; gsplat-pypi only when a build asks for
    it (a check without the devel image), and the image's label says which."""
    structure = instructions("scene")
    args = {i["value"].split("=", 1)[0]: i["value"].split("=", 1)[1] for i in structure
            if i["instruction"] == "ARG" and "=" in i["value"]}
    assert args["GSPLAT_WHEELS"] == "gsplat-aot"
    froms = [i["value"] for i in structure if i["instruction"] == "FROM"]
    assert "${CUDA_DEVEL_IMAGE} AS gsplat-aot" in froms and "${GSPLAT_WHEELS} AS gsplat" in froms
    labels = [i["value"] for i in structure if i["instruction"] == "LABEL"]
    assert labels == ["dev.genfab.gsplat-kernels=${GSPLAT_WHEELS}"]
    assert 'python -c "from gsplat import csrc"' in dockerfile("scene").read_text()  # the compiled kernels load

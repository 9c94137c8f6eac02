"""The images' locks (requirements/images/*.txt): generated from pyproject.toml, checked offline, stale the
moment an extra changes; every image Dockerfile installs its lock in a layer before genfab's source."""

from __future__ import annotations

import pytest
from dockerfile_parse import DockerfileParser
from scripts import image_requirements as locks

from tests.helpers import ROOT


def test_every_checked_in_lock_matches_pyproject() -> None:
    assert locks.check(list(locks.IMAGES)) == 0


def test_the_declaration_follows_extras_named_inside_an_extra_and_the_build_backend() -> None:
    pyproject = {"project": {"dependencies": ["pydantic>=2"],
                             "optional-dependencies": {"cv": ["numpy>=1.26", "pillow>=10"],
                                                       "dataset": ["genfab[cv]", "pillow>=10", "scipy"]}},
                 "build-system": {"requires": ["hatchling>=1.25"]}}
    assert locks.declared("dataset", pyproject) == ["pydantic>=2", "numpy>=1.26", "pillow>=10", "scipy",
                                                    "hatchling>=1.25"]


def _lock(image: str, *pins: str) -> str:
    return locks.header(image) + "".join(f"{pin}\n" for pin in pins)


def _pins_meeting(image: str) -> list[str]:
    """One pin for each declared requirement of the image, at a version that meets it."""
    current = locks.read_pins((ROOT / "requirements" / "images" / f"{image}.txt").read_text())
    return [f"{name}=={version}" for name, version in current.items()]


@pytest.mark.parametrize(("change", "says"), [
    (lambda text: None, "is missing"),
    (lambda text: text.replace("declaration: ", "declaration: 0"), "is stale: pyproject.toml's [cv] extra"),
    (lambda text: "\n".join(line for line in text.splitlines() if not line.startswith("albumentations==")),
     "albumentations is declared but not pinned"),
    (lambda text: text.replace("\nopencv-python-headless==", "\nopencv-python-headless==5.0.0\n#"),
     "opencv-python-headless==5.0.0 does not meet 'opencv-python-headless>=4.9,<5'"),
])
def test_a_lock_that_no_longer_matches_is_named_with_what_is_wrong(change: object, says: str) -> None:
    text = _lock("cv", *_pins_meeting("cv"))
    assert locks.problems("cv", text) == []
    found = locks.problems("cv", change(text))  # type: ignore[operator]
    assert len(found) == 1 and says in found[0], found


def test_a_torch_image_pins_genfabs_torch_and_leaves_out_what_it_builds_itself() -> None:
    scene = locks.read_pins((ROOT / "requirements" / "images" / "scene.txt").read_text())
    from genfab.api.families import TORCH_VERSION, TORCHAO_VERSION

    assert scene["torch"] == TORCH_VERSION and scene["torchao"] == TORCHAO_VERSION
    assert "gsplat" not in scene  # compiled ahead of time by the image (images/scene/Dockerfile)
    assert locks.problems("scene", _lock("scene", *_pins_meeting("scene"), "torch==2.9.0")) != []


@pytest.mark.parametrize("dockerfile", ["operator", "stage", "scene"])
def test_dependencies_are_installed_in_a_layer_before_the_source_is_copied(dockerfile: str) -> None:
    """A source change must leave the dependency layers cached: the lock is copied and installed before
    operator/ and stages/ are, and genfab itself is installed with --no-deps (and checked with pip check)."""
    build = []
    for ins in DockerfileParser(path=str(ROOT / "images" / dockerfile / "Dockerfile")).structure:
        if ins["instruction"] == "FROM":
            build = []
        build.append(ins)
        if ins["instruction"] == "COPY" and ins["value"].split()[0] == "stages":
            break
    steps = [f'{i["instruction"]} {i["value"]}' for i in build]
    lock = next(n for n, s in enumerate(steps)
                if s.startswith("COPY requirements/images/") or s.startswith("COPY ${LOCK}"))
    installed = next(n for n, s in enumerate(steps) if "pip install --no-deps" in s and "-r requirements.txt" in s)
    source = next(n for n, s in enumerate(steps) if s.startswith("COPY operator"))
    assert lock < installed < source, steps
    text = (ROOT / "images" / dockerfile / "Dockerfile").read_text()
    assert 'pip install --no-deps --no-build-isolation ".[' in text and "pip check" in text

"""Images tier: genfab's operator and cv images, built with podman (scripts/podman_setup.sh, then
`CONTAINER_ENGINE=podman images/build.sh --registry localhost/genfab --tag ci --only <family>`), started
as a cluster would start them.

A machine without podman or the images skips the tier with one line; CI builds them and sets
GENFAB_REQUIRE_IMAGES=1, so there a missing image is an error, not a skip. CI builds them beside the other
tiers; GENFAB_IMAGES_BUILT names the file its build writes its exit status to, and the tier waits for it
(its tests are handed out after the API server tiers' and the slow modules', by when the build is over).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.budgets import WAITING
from tests.images import podman

pytestmark = pytest.mark.images


BUILD_WAIT_S = 1800.0
"""How long the tier waits for CI's background build (a cold build of both images takes about 5 minutes)."""


def build_outcome() -> str | None:
    """None once CI's background image build (GENFAB_IMAGES_BUILT names its status file) has succeeded or
    where there is none, else why not (one line). Waits for it to end."""
    status = os.environ.get("GENFAB_IMAGES_BUILT")
    if not status:
        return None
    deadline = time.monotonic() + BUILD_WAIT_S
    while not Path(status).exists():
        if time.monotonic() > deadline:
            return f"the image build did not end within {BUILD_WAIT_S:.0f} s ({status} not written)"
        time.sleep(2)
    code = Path(status).read_text().strip()
    return None if code == "0" else f"the image build failed (exit status {code}; .tools/build-*.log)"


_waited: list[float] = []
"""Seconds the tier spent waiting for CI's build, until a test's report carries them."""


@pytest.fixture(scope="package", autouse=True)
def _the_build_has_ended() -> None:
    """The tier starts once CI's build has ended (before its package's other fixtures: autouse first)."""
    started = time.monotonic()
    why = build_outcome()
    _waited.append(time.monotonic() - started)
    if why is not None:
        fail_or_skip(why)


@pytest.fixture(autouse=True)
def _the_wait_is_not_the_tiers(request: pytest.FixtureRequest) -> None:
    """The first test's setup holds the wait: its report says so (tests/budgets.py leaves it out)."""
    if _waited:
        request.node.user_properties.append((WAITING, sum(_waited)))
        _waited.clear()


def fail_or_skip(why: str) -> None:
    if os.environ.get("GENFAB_REQUIRE_IMAGES") == "1":
        pytest.fail(f"{why}; GENFAB_REQUIRE_IMAGES=1 requires it")
    pytest.skip(why)


def require(*families: str) -> None:
    why = podman.available(*families)
    if why is not None:
        fail_or_skip(why)


@pytest.fixture(scope="package")
def operator_image() -> str:
    require("operator")
    return podman.image("operator")


@pytest.fixture(scope="package")
def cv_image() -> str:
    require("cv")
    return podman.image("cv")

"""Images tier: genfab's operator and cv images, built with podman (scripts/podman_setup.sh, then
`CONTAINER_ENGINE=podman images/build.sh --registry localhost/genfab --tag ci --only <family>`), started
as a cluster would start them.

A machine without podman or the images skips the tier with one line; CI builds them and sets
GENFAB_REQUIRE_IMAGES=1, so there a missing image is an error, not a skip.
"""

from __future__ import annotations

import os

import pytest

from tests.images import podman

pytestmark = pytest.mark.images


def require(*families: str) -> None:
    why = podman.available(*families)
    if why is None:
        return
    if os.environ.get("GENFAB_REQUIRE_IMAGES") == "1":
        pytest.fail(f"{why}; GENFAB_REQUIRE_IMAGES=1 requires it")
    pytest.skip(why)


@pytest.fixture(scope="package")
def operator_image() -> str:
    require("operator")
    return podman.image("operator")


@pytest.fixture(scope="package")
def cv_image() -> str:
    require("cv")
    return podman.image("cv")

"""podman for the images tier: run genfab's images as a cluster would, on this machine.

`run_pod` is a small kubelet for one Pod of a Job that genfab's own builder made
(genfab.operator.builders.build_job): the container's image, command, env and security context, the
stage-config ConfigMap mounted where the Pod mounts it, `/tmp` as the Pod's emptyDir, the Job
controller's `JOB_COMPLETION_INDEX`, and the shared folders a `file://` output lives on, bind-mounted
at the same path (a lab's shared volume). Test-only code.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / ".tools" / "podman" / "containers.conf"
REGISTRY = os.environ.get("GENFAB_TEST_IMAGES", "localhost/genfab")
TAG = os.environ.get("GENFAB_TEST_IMAGES_TAG", "ci")


def image(family: str) -> str:
    return f"{REGISTRY}/genfab-{family}:{TAG}"


def env() -> dict[str, str]:
    return {**os.environ, **({"CONTAINERS_CONF": str(CONF)} if CONF.exists() else {})}


def podman(*args: str, timeout: float = 600, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], env=env(), capture_output=True, text=True, timeout=timeout,
                          check=check, stdin=subprocess.DEVNULL)


def available(*families: str) -> str | None:
    """None when podman runs and every image is there, else why not (one line)."""
    if shutil.which("podman") is None:
        return "podman is not installed (scripts/podman_setup.sh installs it)"
    missing = [image(f) for f in families if podman("image", "exists", image(f)).returncode != 0]
    if missing:
        return (f"image(s) {', '.join(missing)} not built (CONTAINER_ENGINE=podman images/build.sh "
                f"--registry {REGISTRY} --tag {TAG} --only <family>)")
    return None


# The Pod's restrictions, as a container runtime applies them: no network, a read-only root, no
# capabilities, no privilege escalation.
LOCKED = ("--network", "none", "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges")


def run_pod(job: dict[str, Any], configmap: dict[str, Any], index: int, shared: Sequence[Path],
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    security = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    assert security["readOnlyRootFilesystem"] and security["capabilities"]["drop"] == ["ALL"]
    assert not security["allowPrivilegeEscalation"] and security["runAsNonRoot"]
    args = ["run", "--rm", *LOCKED, "--user", f"{security['runAsUser']}:{security['runAsGroup']}"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    folder = Path(tempfile.mkdtemp(prefix="genfab-pod-"))
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            assert volume["configMap"]["name"] == configmap["metadata"]["name"]
            data = folder / mount["name"]
            data.mkdir()
            for key, value in configmap["data"].items():
                (data / key).write_text(value)
            data.chmod(0o755)
            args += ["-v", f"{data}:{mount['mountPath']}:ro,Z"]
        elif "emptyDir" in volume:
            args += ["--tmpfs", f"{mount['mountPath']}:rw,mode=1777"]
        else:
            raise AssertionError(f"volume {volume} has no podman form here")
    for path in shared:
        args += ["-v", f"{path}:{path}"]
    for item in container["env"]:
        assert "value" in item, f"{item['name']}: only literal values here (no Secrets in this tier)"
        args += ["-e", f"{item['name']}={item['value']}"]
    args += ["-e", f"JOB_COMPLETION_INDEX={index}"]
    command = container.get("command")
    if command:
        args += ["--entrypoint", command[0]]
    args += [container["image"], *(command[1:] if command else []), *container.get("args", [])]
    try:
        return podman(*args, timeout=timeout)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

"""genfab's tiny-model route on a machine without an NVIDIA GPU, wherever it runs.

    .venv/bin/python scripts/install_cpu.py          # then .venv/bin/python scripts/tiny_models.py

PyTorch's CPU build comes from PyTorch's own index (`requirements/cpu.txt`: a 1.8 GB venv). Where that index
cannot be reached (a proxy or mirror that serves PyPI only), pip would look every package up there too and
retry each five times; this asks the index once (10 s at most) and, when it does not answer, says so in one
line and installs `.[tiny]` from PyPI alone: the same route, with PyPI's torch (on Linux its build brings the
NVIDIA CUDA libraries, about 6.3 GB of venv; it runs on the CPU all the same). Installs into the Python that
runs it. `GENFAB_TORCH_CPU_INDEX` names another CPU index (a mirror of PyTorch's).
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PROBE_SECONDS = 10.0


def index_answers(index: str, timeout: float = PROBE_SECONDS) -> bool:
    """Whether the package index serves torch's page (one request, no retry)."""
    try:
        with urllib.request.urlopen(f"{index.rstrip('/')}/torch/", timeout=timeout) as page:
            return bool(page.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def cpu_requirements(index: str) -> list[str]:
    """`requirements/cpu.txt` as pip arguments (its one declaration of the CPU torch pin), its index `index`."""
    args: list[str] = []
    for line in (REPO / "requirements" / "cpu.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("--extra-index-url"):
            args += ["--extra-index-url", index]
        elif line.startswith("-e "):
            args += ["-e", str(REPO) + line.removeprefix("-e ").strip().removeprefix(".")]
        elif line:
            args.append(line)
    return args


def install_command(python: str, index: str, reachable: bool) -> tuple[list[str], str | None]:
    """The pip command for the route, and the line said when the CPU index is out of reach."""
    if reachable:
        return [python, "-m", "pip", "install", *cpu_requirements(index)], None
    return ([python, "-m", "pip", "install", "-e", f"{REPO}[tiny]"],
            f"PyTorch's CPU index ({index}) cannot be reached: installing .[tiny] with torch from PyPI instead "
            "(on Linux its build brings the NVIDIA CUDA libraries, about 6.3 GB of venv; it runs on the CPU all "
            "the same)")


def main() -> int:
    index = os.environ.get("GENFAB_TORCH_CPU_INDEX", TORCH_CPU_INDEX)
    command, said = install_command(sys.executable, index, index_answers(index))
    if said:
        print(said, file=sys.stderr)
    return subprocess.run([*command, *sys.argv[1:]], check=False).returncode


if __name__ == "__main__":
    sys.exit(main())

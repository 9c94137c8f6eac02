"""`scripts/install_cpu.py`: the tiny-model route without an NVIDIA GPU, with and without PyTorch's CPU index."""

from __future__ import annotations

import socket

from scripts.install_cpu import REPO, cpu_requirements, index_answers, install_command


def test_with_the_cpu_index_it_installs_requirements_cpu_txt_from_it() -> None:
    command, said = install_command("py", "https://mirror.example/whl/cpu", reachable=True)
    assert said is None
    assert command[:4] == ["py", "-m", "pip", "install"]
    assert command[4:] == cpu_requirements("https://mirror.example/whl/cpu")
    assert command[4:6] == ["--extra-index-url", "https://mirror.example/whl/cpu"]  # the mirror, not the pin's own
    assert any(a.endswith("+cpu") and a.startswith("torch==") for a in command) and f"{REPO}[tiny]" in command


def test_without_it_one_line_says_so_and_pypi_alone_is_used() -> None:
    command, said = install_command("py", "https://download.pytorch.org/whl/cpu", reachable=False)
    assert command == ["py", "-m", "pip", "install", "-e", f"{REPO}[tiny]"]
    assert not any("index" in a for a in command)  # no lookup of every package on the unreachable index
    assert said is not None and "cannot be reached" in said and "\n" not in said


def test_an_index_that_does_not_answer_is_found_at_once() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens on it once closed
    assert not index_answers(f"http://127.0.0.1:{port}/whl/cpu", timeout=2.0)
    assert not index_answers("not a url")

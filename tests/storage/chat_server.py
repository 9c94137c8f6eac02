"""A running `transformers serve` with the tiny chat model: the OpenAI-compatible endpoint the
reference-object prompts stage talks to in the storage and GPU tiers."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def chat_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(endpoint, model name) of a running `transformers serve` with the tiny chat model."""
    pytest.importorskip("fastapi")
    from scripts.tiny_models import save_tiny_chat

    root = tmp_path_factory.mktemp("chat")
    model = str(save_tiny_chat(root / "models"))
    serve = shutil.which("transformers", path=str(Path(os.sys.executable).parent)) or "transformers"
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(root / "hub")}
    proc = subprocess.Popen([serve, "serve", model, "--host", "127.0.0.1", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=(root / "serve.log").open("w"))
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/health", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"transformers serve did not start: {(root / 'serve.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield endpoint, model
    finally:
        proc.terminate()
        proc.wait(timeout=30)

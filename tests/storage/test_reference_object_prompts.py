"""Step 3 against a real OpenAI-compatible server process: `transformers serve` with a tiny random
chat model (`scripts/tiny_models.py`), spoken to by the `openai` client. A stand-in model: its
replies are random words, which is all the conversation mode needs to be exercised."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest

from genfab.inventory import ShardReport, write_report
from genfab.stages.reference_object.llm import Conversation, LlmError, base_url
from genfab.stages.reference_object.prompts_stage import PROMPTS
from genfab.stages.runtime.loop import main
from genfab.storage import open_storage
from tests.helpers import stage_contract
from tests.storage.chat_server import free_port

pytestmark = pytest.mark.storage






def _client(endpoint: str, timeout: float = 30.0) -> object:
    from openai import OpenAI

    return OpenAI(base_url=base_url(endpoint), api_key="not-needed", max_retries=0, timeout=timeout)


def test_iterative_conversation_keeps_the_history_and_gives_distinct_prompts(chat_server: tuple[str, str]) -> None:
    endpoint, model = chat_server
    chat = Conversation(_client(endpoint), endpoint, model, "You write scenes.", temperature=1.0, seed=3, timeout=30)
    prompts = chat.generate(4, "mug")
    assert len(prompts) == 4 and len(set(prompts)) == 4 and all(prompts)
    assert all("<|" not in p for p in prompts)
    roles = [m["role"] for m in chat.messages]
    assert roles[0] == "system" and roles[1:] == ["user", "assistant"] * (len(roles) // 2)
    assert [m["content"] for m in chat.messages if m["role"] == "assistant"][: len(prompts)] == prompts
    again = Conversation(_client(endpoint), endpoint, model, "You write scenes.", temperature=1.0, seed=3, timeout=30)
    assert again.generate(4, "mug") == prompts  # the seed makes the conversation repeatable


def test_duplicates_are_refused_and_a_model_that_only_repeats_itself_fails_clearly(
        chat_server: tuple[str, str]) -> None:
    endpoint, model = chat_server
    # Greedy decoding makes the random model give the same words whatever was asked: every reply
    # after the first repeats it.
    chat = Conversation(_client(endpoint), endpoint, model, "You write scenes.", temperature=0.0, seed=0, timeout=30)
    with pytest.raises(LlmError, match=rf"LLM endpoint {endpoint} \(model '.*tiny-chat'\) gave 5 duplicate replies "
                                       r"for scene 2 of 3"):
        chat.generate(3, "mug")
    assert len(chat.prompts) == 1
    assert [r["reason"] for r in chat.refused] == ["duplicate"] * 5
    refusals = [m["content"] for m in chat.messages if m["content"].startswith("That repeats")]
    assert len(refusals) == 4  # the model is told, in the conversation, before each new try


def test_a_server_that_never_answers_times_out_and_names_the_endpoint() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:  # accepts connections and never answers: a hung server
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
    waits: list[float] = []
    chat = Conversation(_client(endpoint, timeout=1.0), endpoint, "llama3.1", "sys", 0.8, 1, timeout=1.0,
                        tries=3, backoff=0.5, sleep=waits.append)
    started = time.monotonic()
    try:
        with pytest.raises(LlmError, match=rf"LLM endpoint {endpoint} \(model 'llama3.1'\) failed 3 times: "
                                           r"APITimeoutError"):
            chat.generate(2, "mug")
    finally:
        stop.set()
        thread.join()
        for s in held:
            s.close()
        listener.close()
    assert time.monotonic() - started < 20
    assert waits == [0.5, 1.0]  # exponential backoff between tries


def test_prompts_stage_writes_the_prompt_files(tmp_path: Path, chat_server: tuple[str, str]) -> None:
    endpoint, model = chat_server
    run = open_storage(f"file://{tmp_path}/run")
    write_report(run, ShardReport("perspectives", "p" * 64, 0, 1, state="succeeded", total=1,
                                  succeeded=["perspective_00_front__eye_level"]))
    project = tmp_path / "project.txt"
    project.write_text("Mugs on office desks.\n")
    config = {"objectName": "mug", "seed": 5, "numPrompts": 3, "llmModel": model, "llmTemperature": 1.0,
              "systemPromptUri": None, "projectInfoUri": f"file://{project}"}
    upstream = [{"name": "perspectives", "configHash": "p" * 64, "outputUri": f"file://{tmp_path}/run/02_perspectives"}]
    env = stage_contract(tmp_path, "prompts", pipeline="reference-object", config=config, upstream=upstream,
                         outputUri=f"file://{tmp_path}/run/03_prompts", options={"llmEndpoint": endpoint})
    assert main(PROMPTS.stage(), env) == 0
    out = open_storage(f"file://{tmp_path}/run/03_prompts")
    doc = json.loads(out.read_bytes("prompts.json"))
    assert len(doc["prompts"]) == 3 and doc["model"] == model and doc["endpoint"] == endpoint
    assert [out.read_bytes(f"prompt_{i:02d}.txt").decode().strip() for i in range(3)] == doc["prompts"]
    conversation = json.loads(out.read_bytes("conversation.json"))
    assert "Mugs on office desks." in conversation[0]["content"] and "mug" in conversation[0]["content"]
    state = json.loads(run.read_bytes("pipeline_state.json"))
    assert state["completed_steps"] == [2, 3] and len(state["prompts"]) == 3


def test_an_unreachable_endpoint_fails_the_shard_with_its_name(tmp_path: Path) -> None:
    run = open_storage(f"file://{tmp_path}/run")
    write_report(run, ShardReport("perspectives", "p" * 64, 0, 1, state="succeeded", total=1, succeeded=["p0"]))
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    config = {"objectName": "mug", "seed": 5, "numPrompts": 2, "llmModel": "llama3.1", "llmTemperature": 0.8,
              "systemPromptUri": None, "projectInfoUri": None}
    upstream = [{"name": "perspectives", "configHash": "p" * 64, "outputUri": f"file://{tmp_path}/run/02_perspectives"}]
    env = stage_contract(tmp_path, "prompts", pipeline="reference-object", config=config, upstream=upstream,
                         outputUri=f"file://{tmp_path}/run/03_prompts",
                         options={"llmEndpoint": endpoint, "llmTimeoutSeconds": 2, "llmBackoffSeconds": 0.01})
    assert main(PROMPTS.stage(), env) == 1  # retryable: the endpoint may come back
    message = (tmp_path / "termination.json").read_text()  # what the Pod's status shows
    assert f"LLM endpoint {endpoint} (model 'llama3.1') failed 3 times" in message
    assert not open_storage(f"file://{tmp_path}/run/03_prompts").exists("prompts.json")

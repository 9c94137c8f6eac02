"""Step 3 `prompts`: `numPrompts` scene descriptions from an OpenAI-compatible chat endpoint
(`llm.py`), written to `03_prompts/`:
- `prompts.json`: the prompts in order, with the endpoint, model, temperature, seed, the number of
  requests and every refused reply (step 4 reads it);
- `prompt_NN.txt`: one file per prompt;
- `conversation.json`: the whole conversation, system prompt included.

The system prompt and the project information come from `systemPromptUri` and `projectInfoUri`, else
from genfab's own text (`prompt_files`), which `prompts.json` (`promptFiles`) and the stage's status
then say."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from genfab.api.pipelines.reference_object import PromptsSettings
from genfab.stages.reference_object.llm import Conversation, LlmError, base_url
from genfab.stages.reference_object.prompt_files import PromptFile, own_text_note, prompt_file
from genfab.stages.reference_object.state import state_after_shard
from genfab.stages.runtime import BadInput, FatalError, Sample, SampleStage, StageContext

API_KEY_ENV = "OPENAI_API_KEY"
"""An endpoint that wants a key gets it from this variable (set it from a Secret); Ollama and vLLM
in the cluster need none."""


def system_message(system: str, project: str, object_name: str) -> str:
    return f"{system.strip()}\n\nProject information:\n{project.strip()}\n\nThe object: {object_name}."


@dataclass(frozen=True)
class Chat:
    """What a worker holds for step 3: the settings, the prompt files read once, and the endpoint."""

    settings: PromptsSettings
    files: dict[str, PromptFile]
    system: str
    endpoint: str
    timeout: float
    backoff: float

    def client(self) -> Any:
        from openai import OpenAI

        return OpenAI(base_url=base_url(self.endpoint), api_key=os.environ.get(API_KEY_ENV) or "not-needed",
                      max_retries=0, timeout=self.timeout)


def connect(s: PromptsSettings, ctx: StageContext) -> Chat:
    files = {"systemPrompt": prompt_file(ctx, s.system_prompt_uri, "scenes.systemPromptUri", "system_qwen_edit.txt"),
             "projectInfo": prompt_file(ctx, s.project_info_uri, "scenes.projectInfoUri", "project_info.txt")}
    endpoint = str(ctx.options.get("llmEndpoint") or "")
    if not endpoint:
        raise BadInput("option llmEndpoint is not set (scenes.llmEndpoint)")
    return Chat(s, files, system_message(files["systemPrompt"].text, files["projectInfo"].text, s.object_name),
                endpoint, float(ctx.options.get("llmTimeoutSeconds") or 60),
                float(ctx.options.get("llmBackoffSeconds") or 1.0))


def write_prompts(chat: Chat, sample: Sample) -> None:
    s = chat.settings
    conversation = Conversation(chat.client(), chat.endpoint, s.llm_model, chat.system, s.llm_temperature, s.seed,
                                chat.timeout, backoff=chat.backoff)
    try:
        prompts = conversation.generate(s.num_prompts, s.object_name)
    except LlmError as exc:
        raise FatalError(str(exc)) from None  # the endpoint's trouble, not the sample's: retryable
    sources = {k: f.source for k, f in chat.files.items()}
    sample.write_json("prompts.json", {
        "prompts": prompts, "endpoint": chat.endpoint, "model": s.llm_model, "temperature": s.llm_temperature,
        "seed": s.seed, "requests": conversation.requests, "refused": conversation.refused, "mode": "iterative",
        "promptFiles": sources})
    for i, prompt in enumerate(prompts):
        sample.write(f"prompt_{i:02d}.txt", (prompt + "\n").encode())
    sample.write_json("conversation.json", conversation.messages)
    sample.params.update({"prompts": len(prompts), "requests": conversation.requests,
                          "refused": len(conversation.refused), "promptFiles": sources})
    note = own_text_note(chat.files)
    if note:
        sample.notes.append(note)


PROMPTS = SampleStage("prompts", connect, write_prompts, marker_dir="_markers",  # the folder holds the prompt files
                      after_shard=state_after_shard, prunes_outputs=True)

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
from typing import Any

from genfab.api.pipelines.reference_object import PromptsSettings
from genfab.stages.reference_object.llm import Conversation, LlmError, base_url
from genfab.stages.reference_object.prompt_files import own_text_note, prompt_file
from genfab.stages.reference_object.state import WritesPipelineState
from genfab.stages.runtime import BadInput, FatalError, Sample, Stage, StageContext

API_KEY_ENV = "OPENAI_API_KEY"
"""An endpoint that wants a key gets it from this variable (set it from a Secret); Ollama and vLLM
in the cluster need none."""


def system_message(system: str, project: str, object_name: str) -> str:
    return f"{system.strip()}\n\nProject information:\n{project.strip()}\n\nThe object: {object_name}."


class PromptsStage(WritesPipelineState, Stage[PromptsSettings]):
    name = "prompts"
    marker_dir = "_markers"  # the folder holds the prompt files themselves

    def setup(self, ctx: StageContext) -> None:
        s = self.settings
        self.files = {"systemPrompt": prompt_file(ctx, s.system_prompt_uri, "scenes.systemPromptUri",
                                                  "system_qwen_edit.txt"),
                      "projectInfo": prompt_file(ctx, s.project_info_uri, "scenes.projectInfoUri", "project_info.txt")}
        self.system = system_message(self.files["systemPrompt"].text, self.files["projectInfo"].text, s.object_name)
        options = ctx.options
        self.endpoint = str(options.get("llmEndpoint") or "")
        if not self.endpoint:
            raise BadInput("option llmEndpoint is not set (scenes.llmEndpoint)")
        self.timeout = float(options.get("llmTimeoutSeconds") or 60)
        self.backoff = float(options.get("llmBackoffSeconds") or 1.0)

    def client(self) -> Any:
        from openai import OpenAI

        return OpenAI(base_url=base_url(self.endpoint), api_key=os.environ.get(API_KEY_ENV) or "not-needed",
                      max_retries=0, timeout=self.timeout)

    def process(self, sample: Sample) -> None:
        s = self.settings
        chat = Conversation(self.client(), self.endpoint, s.llm_model, self.system, s.llm_temperature, s.seed,
                            self.timeout, backoff=self.backoff)
        try:
            prompts = chat.generate(s.num_prompts, s.object_name)
        except LlmError as exc:
            raise FatalError(str(exc)) from None  # the endpoint's trouble, not the sample's: retryable
        sample.write_json("prompts.json", {
            "prompts": prompts, "endpoint": self.endpoint, "model": s.llm_model, "temperature": s.llm_temperature,
            "seed": s.seed, "requests": chat.requests, "refused": chat.refused, "mode": "iterative",
            "promptFiles": {k: f.source for k, f in self.files.items()}})
        for i, prompt in enumerate(prompts):
            sample.write(f"prompt_{i:02d}.txt", (prompt + "\n").encode())
        sample.write_json("conversation.json", chat.messages)
        sample.params.update({"prompts": len(prompts), "requests": chat.requests, "refused": len(chat.refused),
                              "promptFiles": {k: f.source for k, f in self.files.items()}})
        note = own_text_note(self.files)
        if note:
            sample.notes.append(note)

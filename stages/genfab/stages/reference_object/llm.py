"""Step 3's conversation with an OpenAI-compatible chat endpoint (Ollama, vLLM, `transformers serve`),
through the `openai` client.

Iterative mode, as the lab's reference-object runs it: one conversation, one scene description per turn, the whole
history sent each turn so the model knows what it already wrote. A reply that repeats an earlier
scene (same words, ignoring case, spacing and punctuation) or says nothing is refused: the model is
told so in the conversation and asked again. Each request carries the temperature and its own seed
(`seed` + request number), times out after `timeout` seconds and is tried `tries` times with
exponential backoff; what still fails raises `LlmError` naming the endpoint and the model, so the
stage never hangs on a dead server."""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

REFUSALS_PER_PROMPT = 5
"""Duplicate or empty replies tolerated for one prompt before giving up."""


class LlmError(RuntimeError):
    """The endpoint could not give the prompts (unreachable, timing out, refusing, repeating itself)."""


def base_url(endpoint: str) -> str:
    """The client's base URL: `/v1` appended when the endpoint has no path (Ollama's and vLLM's
    OpenAI-compatible routes live there)."""
    endpoint = endpoint.rstrip("/")
    return endpoint if re.match(r"^https?://[^/]+/.+", endpoint) else endpoint + "/v1"


def normalised(text: str) -> str:
    """What two scene descriptions are compared on: case, accents, punctuation and spacing dropped."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", folded).split())


def clean_reply(text: str | None) -> str:
    """A reply as a one-paragraph description: whitespace collapsed, wrapping quotes, a leading list
    marker and special tokens (`<|im_start|>`) removed."""
    line = " ".join(re.sub(r"<\|[^|<>]*\|>", " ", text or "").split())  # chat-template tokens some servers leak
    line = re.sub(r"^(\d+[.)]|[-*•])\s+", "", line)
    return line.strip().strip('"').strip("'").strip()


def first_request(object_name: str, count: int) -> str:
    return (f"We need {count} different scenes for the object \"{object_name}\". "
            "Write the first scene description.")


def next_request(n: int, count: int) -> str:
    return f"Write scene description {n} of {count}, different from every scene above."


def duplicate_request(n: int) -> str:
    return f"That repeats a scene you already wrote. Write a different scene description {n}."


def empty_request(n: int) -> str:
    return f"That reply was empty. Write scene description {n}: one or two sentences."


@dataclass
class Conversation:
    client: Any
    """An `openai.OpenAI` client (or anything with its `chat.completions.create`)."""
    endpoint: str
    model: str
    system: str
    temperature: float
    seed: int
    timeout: float
    tries: int = 3
    backoff: float = 1.0
    """Seconds before the second try; doubled before each next one."""
    sleep: Callable[[float], None] = time.sleep
    messages: list[dict[str, str]] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0

    def __post_init__(self) -> None:
        if not self.messages:
            self.messages.append({"role": "system", "content": self.system})

    def _ask(self) -> str:
        last: Exception | None = None
        for attempt in range(self.tries):
            if attempt:
                self.sleep(self.backoff * 2 ** (attempt - 1))
            seed = self.seed + self.requests
            self.requests += 1
            try:
                response = self.client.chat.completions.create(
                    model=self.model, messages=self.messages, temperature=self.temperature, seed=seed,
                    max_tokens=200, timeout=self.timeout)
                return str(response.choices[0].message.content or "")
            except Exception as exc:  # openai's APITimeoutError, APIConnectionError, APIStatusError
                last = exc
        raise LlmError(f"LLM endpoint {self.endpoint} (model {self.model!r}) failed {self.tries} times: "
                       f"{type(last).__name__}: {' '.join(str(last).split())[:300]}")

    def generate(self, count: int, object_name: str) -> list[str]:
        """`count` distinct scene descriptions, one per turn."""
        request = first_request(object_name, count)
        seen = {normalised(p) for p in self.prompts}
        while len(self.prompts) < count:
            n = len(self.prompts) + 1
            self.messages.append({"role": "user", "content": request})
            reply = clean_reply(self._ask())
            self.messages.append({"role": "assistant", "content": reply})
            key = normalised(reply)
            if key and key not in seen:
                seen.add(key)
                self.prompts.append(reply)
                request = next_request(n + 1, count)
                continue
            why = "empty" if not key else "duplicate"
            self.refused.append({"prompt": n, "reason": why, "reply": reply})
            if sum(r["prompt"] == n for r in self.refused) >= REFUSALS_PER_PROMPT:
                raise LlmError(f"LLM endpoint {self.endpoint} (model {self.model!r}) gave {REFUSALS_PER_PROMPT} "
                               f"{why} replies for scene {n} of {count}; try a higher llmTemperature or another "
                               "model")
            request = duplicate_request(n) if key else empty_request(n)
        return list(self.prompts)

"""The lab's prompt files (its reference-object document: `--system_prompt_file`, `--project_info_file`,
`--predefined_prompts_file`) or, when a resource leaves one unset, genfab's own text under the same
name (`defaults/`). genfab's text is not the lab's: each stage that reads one says so in its
samples' metadata (`promptFiles`) and once in its status message, naming the field to set."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from genfab.stages.reference_object.dataset import read_text_uri
from genfab.stages.runtime import StageContext

DEFAULTS = Path(__file__).parent / "defaults"


@dataclass(frozen=True)
class PromptFile:
    text: str
    source: str
    """The URI read, or `genfab's own <file> (not the lab's; set <field>)`."""
    own: bool


def prompt_file(ctx: StageContext, uri: str | None, field: str, default_name: str) -> PromptFile:
    """The text at `uri`, else genfab's own `default_name`, with where it came from."""
    if uri:
        return PromptFile(read_text_uri(ctx, uri, field), uri, False)
    source = f"genfab's own {default_name} (not the lab's; set {field})"
    return PromptFile((DEFAULTS / default_name).read_text(), source, True)


def own_text_note(files: dict[str, PromptFile]) -> str | None:
    """One line for the status when genfab's own text ran in place of the lab's files, else None."""
    own = [f.source for f in files.values() if f.own]
    return "ran with " + "; ".join(own) if own else None

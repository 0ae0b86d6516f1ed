"""The sentences a user reads to record a voice, and the consent sentence, per language,
shipped with the package.

Each language's set lives in ``prompts/<language>.json`` next to this module, as
``{"language", "consent", "prompts": [...]}``. A prompt's id is its language and its
1-based position, zero-padded to three digits (``en-001``), so ids stay stable as long as
sentences are only ever appended. The first 30 prompts of each language are chosen to
cover its sounds (every letter and digit for English, every conjoining jamo and digit for
Korean), so a short recording session already hears all of them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

from voicepocket.errors import NotFound, RequestError

__all__ = ["LANGUAGES", "Prompt", "PromptSet", "prompt_set"]

LANGUAGES: tuple[str, ...] = ("en", "ko")
"""The languages a voice can be recorded in, each with a prompt set."""


@dataclass(frozen=True, slots=True)
class Prompt:
    """One sentence to read aloud."""

    id: str
    """``<language>-<position>``, e.g. ``en-001``: stable, 1-based, three digits."""
    text: str


@dataclass(frozen=True, slots=True)
class PromptSet:
    """One language's consent sentence and prompts, in reading order."""

    language: str
    consent: str
    """What the user reads first to agree that their voice is made synthetic."""
    prompts: tuple[Prompt, ...]

    def get(self, prompt_id: str) -> Prompt:
        """The prompt with ``prompt_id``; raises ``NotFound`` if this set has none."""
        for prompt in self.prompts:
            if prompt.id == prompt_id:
                return prompt
        raise NotFound(f"Prompt {prompt_id} not found.", param="prompt_id")


@cache
def prompt_set(language: str) -> PromptSet:
    """The prompt set for ``language`` (one of ``LANGUAGES``), read once from the package.

    Raises ``RequestError`` for any other language.
    """
    if language not in LANGUAGES:
        raise RequestError(f"language must be one of {', '.join(LANGUAGES)}.", param="language")
    resource = resources.files(__package__).joinpath("prompts", f"{language}.json")
    data = json.loads(resource.read_text(encoding="utf-8"))
    return PromptSet(
        language=language,
        consent=data["consent"],
        prompts=tuple(
            Prompt(id=f"{language}-{n:03d}", text=text)
            for n, text in enumerate(data["prompts"], start=1)
        ),
    )

"""Owner names, voice slugs and voice references (``owner/slug`` or a bare ``slug``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from voicepocket.errors import InvalidVoiceId

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
"""What owner names and slugs match; nothing else a user sends reaches a path or key."""


RESERVED = frozenset({"prompts", "trained", "bases", "training"})
"""Names no owner or slug may take: route segments (``/v1/voices/prompts``,
``/v1/voices/trained``) and storage prefixes (``bases/``, ``{owner}/{slug}/training/``)."""


def check_name(name: str, *, param: str) -> str:
    """``name`` if it is a valid owner name or slug, else ``InvalidVoiceId``."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise InvalidVoiceId(
            f"{param} must match [a-z0-9][a-z0-9_-]{{0,63}} (lowercase letters, digits, "
            "'_' and '-', starting with a letter or digit).",
            param=param,
        )
    if name in RESERVED:
        raise InvalidVoiceId(f"{param} {name!r} is reserved; choose another.", param=param)
    return name


@dataclass(frozen=True, slots=True)
class VoiceRef:
    """A voice as a request names it."""

    owner: str | None
    """The owner, or ``None`` for a bare slug (the caller's own, else a public one)."""

    slug: str
    """The voice's name within its owner."""

    @classmethod
    def parse(cls, ref: str, *, param: str = "voice") -> VoiceRef:
        """Parse ``owner/slug`` or ``slug``."""
        if not isinstance(ref, str):
            raise InvalidVoiceId("A voice id must be a string.", param=param)
        owner, sep, slug = ref.partition("/")
        if not sep:
            return cls(owner=None, slug=check_name(owner, param=param))
        return cls(owner=check_name(owner, param=param), slug=check_name(slug, param=param))

    def __str__(self) -> str:
        return self.slug if self.owner is None else f"{self.owner}/{self.slug}"

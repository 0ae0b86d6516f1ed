"""Turning user text into the chunks a voice is given.

``prepare`` is the whole job, in four steps; ``normalize`` is the first three:

1. clean-up (``cleanup``): Unicode NFC, typographic quotes, dashes and ellipses as ASCII,
   whitespace collapsed;
2. expansion for the text's language (``EXPANDERS``): numbers, money, dates, times, units
   and abbreviations written out as words;
3. restriction to the voice's symbols (``restrict_to_symbols``): whatever the voice cannot
   say is dropped, and text with nothing speakable left is ``EmptyText``;
4. chunking (``split_chunks``): one sentence per chunk, none longer than the limit.

This package knows nothing about models: a voice's allowed characters arrive as a
``frozenset[str]``. A language is supported by adding a module with an expander
(``english.expand_english``) and an entry in ``EXPANDERS``; a language without one is only
cleaned up and restricted.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from types import MappingProxyType

from voicepocket.errors import EmptyText
from voicepocket.text.cleanup import (
    collapse_whitespace,
    has_speech,
    restrict_to_symbols,
    to_ascii_typography,
)
from voicepocket.text.english import expand_english
from voicepocket.text.korean import expand_korean
from voicepocket.text.split import (
    CLAUSE_END,
    SENTENCE_END,
    split_chunks,
    split_sentences,
    split_to_fit,
)

__all__ = [
    "CLAUSE_END",
    "EXPANDERS",
    "SENTENCE_END",
    "Expander",
    "collapse_whitespace",
    "expand",
    "expand_english",
    "expand_korean",
    "normalize",
    "prepare",
    "restrict_to_symbols",
    "split_chunks",
    "split_sentences",
    "split_to_fit",
]

Expander = Callable[[str], str]
"""Writes out one language's numbers, abbreviations and the like as words."""

EXPANDERS: Mapping[str, Expander] = MappingProxyType({"en": expand_english, "ko": expand_korean})
"""Expanders by primary language subtag ("en" serves "en-US" and "en_GB" too)."""


def expand(text: str, *, language: str) -> str:
    """``text`` expanded by ``language``'s expander, or unchanged if it has none."""
    primary = language.strip().lower().replace("_", "-").split("-")[0]
    expander = EXPANDERS.get(primary)
    return text if expander is None else expander(text)


def normalize(text: str, *, symbols: frozenset[str], language: str = "en") -> str:
    """``text`` as one line the voice can say: cleaned up, expanded, restricted to ``symbols``.

    Raises ``EmptyText`` if no letter or digit of ``symbols`` is left.
    """
    cleaned = collapse_whitespace(to_ascii_typography(unicodedata.normalize("NFC", text), symbols))
    speakable = restrict_to_symbols(expand(cleaned, language=language), symbols)
    if not has_speech(speakable):
        raise EmptyText("Input has no text the voice can speak.", param="input")
    return speakable


def prepare(
    text: str,
    *,
    symbols: frozenset[str],
    max_chunk_chars: int,
    first_chunk_chars: int | None = None,
    language: str = "en",
) -> list[str]:
    """The chunks, in order, that a voice with ``symbols`` speaks for ``text``.

    Each chunk is one sentence (very short ones join the next) of at most
    ``max_chunk_chars`` characters; if ``first_chunk_chars`` is given the first chunk is at
    most that long, so the first audio comes back sooner. Raises ``EmptyText`` when nothing
    speakable is left.

    >>> prepare("Dr. Smith paid $3.50 on May 5th.", symbols=frozenset(
    ...     "abcdefghijklmnopqrstuvwxyzDMS ."), max_chunk_chars=300)
    ['Doctor Smith paid three dollars and fifty cents on May fifth.']
    """
    return split_chunks(
        normalize(text, symbols=symbols, language=language),
        max_chunk_chars=max_chunk_chars,
        first_chunk_chars=first_chunk_chars,
    )

"""Language-independent clean-up: Unicode form, typography, whitespace, and the voice's symbols."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from types import MappingProxyType

TYPOGRAPHIC_EQUIVALENTS: Mapping[str, str] = MappingProxyType(
    {
        "\u2018": "'",  # left single quotation mark
        "\u2019": "'",  # right single quotation mark, also the typographic apostrophe
        "\u201a": "'",  # single low-9 quotation mark
        "\u201b": "'",  # single high-reversed-9 quotation mark
        "\u2032": "'",  # prime
        "\u201c": '"',  # left double quotation mark
        "\u201d": '"',  # right double quotation mark
        "\u201e": '"',  # double low-9 quotation mark
        "\u201f": '"',  # double high-reversed-9 quotation mark
        "\u00ab": '"',  # left guillemet
        "\u00bb": '"',  # right guillemet
        "\u2033": '"',  # double prime
        "\u2010": "-",  # hyphen
        "\u2011": "-",  # non-breaking hyphen
        "\u2012": "-",  # figure dash
        "\u2013": "-",  # en dash: ranges ("1990-1999") and spaced dashes alike
        "\u2212": "-",  # minus sign
        "\u2014": " - ",  # em dash: spaced, so it reads (and splits) as a clause break
        "\u2015": " - ",  # horizontal bar
        "\u2026": "...",  # ellipsis
    }
)
"""Typographic characters and the ASCII each becomes when the voice has that ASCII."""

APOSTROPHES = frozenset("'\u2018\u2019\u02bc")
"""Dropped outright when the voice lacks them: "don't" must not become two words."""

_SPACE_BEFORE_PUNCTUATION = re.compile(r" +(?=[.,!?;:])")


def collapse_whitespace(text: str) -> str:
    """Every run of whitespace (newlines, tabs, NBSP...) as one space; no leading or trailing."""
    return " ".join(text.split())


def to_ascii_typography(text: str, symbols: frozenset[str]) -> str:
    """Curly quotes, dashes and the ellipsis as ASCII, where ``symbols`` has the ASCII form."""
    return "".join(_ascii_equivalent(char, symbols) for char in text)


def _ascii_equivalent(char: str, symbols: frozenset[str]) -> str:
    replacement = TYPOGRAPHIC_EQUIVALENTS.get(char)
    if replacement is None or not set(replacement.strip()) <= symbols:
        return char
    return replacement


def restrict_to_symbols(text: str, symbols: frozenset[str]) -> str:
    """Keep only what the voice can say.

    A character outside ``symbols`` is replaced by its other case or its unaccented letter
    when the voice has that instead; otherwise it is dropped. A dropped punctuation mark,
    symbol or letter of another script leaves a space, so the words around it stay apart;
    apostrophes, combining marks and invisible format characters leave nothing. Spaces survive
    only if ``" "`` is in ``symbols``.
    """
    separator = " " if " " in symbols else ""
    kept = "".join(_speakable_form(char, symbols, separator) for char in text)
    if not separator:
        return kept
    return _SPACE_BEFORE_PUNCTUATION.sub("", collapse_whitespace(kept))


def _speakable_form(char: str, symbols: frozenset[str], separator: str) -> str:
    if char in symbols:
        return char
    for candidate in _substitutes(char):
        if candidate and all(c in symbols for c in candidate):
            return candidate
    if char in APOSTROPHES or unicodedata.category(char) in {"Mn", "Mc", "Me", "Cf"}:
        return ""
    return separator


def _substitutes(char: str) -> tuple[str, ...]:
    """What may stand in for ``char``, best first: the other case, the bare letter ("é" -> "e",
    "ﬁ" -> "fi"), then the case-folded spelling ("ß" -> "ss")."""
    other_cases = tuple(form for form in (char.lower(), char.upper()) if len(form) == 1)
    bare = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
    return (*other_cases, bare, bare.lower(), bare.upper(), char.casefold())


def has_speech(text: str) -> bool:
    """Whether ``text`` has a letter or digit; punctuation alone is not speech."""
    return any(char.isalnum() for char in text)

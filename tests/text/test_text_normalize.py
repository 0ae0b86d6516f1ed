"""Clean-up and restriction to a voice's symbols; ``EmptyText`` when nothing is left."""

from __future__ import annotations

import string

import pytest

from voicepocket.errors import EmptyText
from voicepocket.text import collapse_whitespace, normalize, restrict_to_symbols

ASCII = frozenset(string.ascii_letters + string.digits + " .,;:!?'-\"()")
LOWERCASE = frozenset(string.ascii_lowercase + " .,")
UPPERCASE = frozenset(string.ascii_uppercase + " .,")


def test_collapse_whitespace_handles_every_kind() -> None:
    assert collapse_whitespace("  a\tb\n\nc\u00a0d\u2009e\r\n ") == "a b c d e"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\u201cQuoted\u201d and \u2018single\u2019", "\"Quoted\" and 'single'"),
        ("don\u2019t", "don't"),
        ("wait\u2026 what", "wait... what"),
        ("word\u2014word", "word - word"),
        ("1990\u20131999", "nineteen ninety to nineteen ninety-nine"),
    ],
)
def test_typography_becomes_ascii_the_voice_has(text: str, expected: str) -> None:
    assert normalize(text, symbols=ASCII) == expected


def test_typography_is_kept_when_the_voice_has_it_but_not_the_ascii() -> None:
    symbols = frozenset(string.ascii_letters + " \u2026")
    assert normalize("wait\u2026 what", symbols=symbols) == "wait\u2026 what"


def test_nfc_composes_before_restriction() -> None:
    symbols = ASCII | {"\u00e9"}
    assert normalize("cafe\u0301", symbols=symbols) == "caf\u00e9"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello \U0001f600 world!", "Hello world!"),
        ("Hi there \U0001f600.", "Hi there."),
        ("\u65e5\u672c\u8a9e text here.", "text here."),
        ("one\u65e5two", "one two"),
        ("caf\u00e9 na\u00efve", "cafe naive"),
        ("\ufb01ne", "fine"),
        ("a\u200bb", "ab"),
        ("x <y> z", "x y z"),
    ],
)
def test_characters_the_voice_cannot_say_are_dropped(text: str, expected: str) -> None:
    assert normalize(text, symbols=ASCII) == expected


def test_case_is_folded_to_what_the_voice_has() -> None:
    assert restrict_to_symbols("HELLO World", LOWERCASE) == "hello world"
    assert restrict_to_symbols("hello World", UPPERCASE) == "HELLO WORLD"
    assert restrict_to_symbols("Stra\u00dfe", LOWERCASE) == "strasse"


def test_apostrophes_the_voice_lacks_do_not_split_words() -> None:
    assert normalize("don\u2019t won't", symbols=LOWERCASE) == "dont wont"


def test_number_words_survive_a_voice_without_hyphens() -> None:
    assert normalize("21 cats.", symbols=LOWERCASE) == "twenty one cats."


def test_without_a_space_symbol_words_run_together() -> None:
    assert restrict_to_symbols("a b\tc", frozenset("abc")) == "abc"


def test_a_language_without_an_expander_is_only_cleaned() -> None:
    assert normalize("  Call  me at 5 p.m.  ", symbols=ASCII, language="xx") == (
        "Call me at 5 p.m."
    )


@pytest.mark.parametrize("language", ["en", "EN", "en-US", "en_GB"])
def test_english_variants_use_the_english_expander(language: str) -> None:
    assert normalize("5 cats", symbols=ASCII, language=language) == "five cats"


@pytest.mark.parametrize("text", ["", "   ", "\n\t", "!!!", "\U0001f600\U0001f600", "... ?!", "-"])
def test_nothing_speakable_is_empty_text(text: str) -> None:
    with pytest.raises(EmptyText) as caught:
        normalize(text, symbols=ASCII)
    assert caught.value.message == "Input has no text the voice can speak."
    assert caught.value.param == "input"
    assert caught.value.status == 400


def test_text_only_in_a_script_the_voice_lacks_is_empty_text() -> None:
    with pytest.raises(EmptyText):
        normalize("\u65e5\u672c\u8a9e\u3002", symbols=ASCII)

"""``prepare``: the whole path from user text to the chunks a voice speaks."""

from __future__ import annotations

import random
import string

import pytest

import voicepocket.text as text_package
from voicepocket.errors import EmptyText
from voicepocket.text import EXPANDERS, normalize, prepare

SYMBOLS = frozenset(string.ascii_letters + string.digits + " .,;:!?'-\"()")


def test_the_example_is_one_chunk_read_correctly() -> None:
    assert prepare("Dr. Smith paid $3.50 on May 5th.", symbols=SYMBOLS, max_chunk_chars=300) == [
        "Doctor Smith paid three dollars and fifty cents on May fifth."
    ]


def test_abbreviation_periods_do_not_split_sentences() -> None:
    text = "Mr. Brown met Prof. Green at 10:05 a.m. on Jan. 3rd, e.g. before lunch. It went well."
    assert prepare(text, symbols=SYMBOLS, max_chunk_chars=300) == [
        "Mister Brown met Professor Green at ten oh five A M on January third, "
        "for example before lunch.",
        "It went well.",
    ]


def test_whitespace_and_unknown_characters_are_cleaned_before_chunking() -> None:
    text = "  Hello\n\n\tworld \U0001f600!\u00a0\u00a0This is \u65e5\u672c a test of it.  "
    assert prepare(text, symbols=SYMBOLS, max_chunk_chars=300) == [
        "Hello world! This is a test of it."
    ]


@pytest.mark.parametrize("text", ["", "   ", "!!!", "\U0001f600\U0001f600"])
def test_nothing_speakable_is_empty_text(text: str) -> None:
    with pytest.raises(EmptyText) as caught:
        prepare(text, symbols=SYMBOLS, max_chunk_chars=300)
    assert caught.value.param == "input"


def test_first_chunk_chars_shortens_only_the_first_chunk() -> None:
    text = (
        "On May 5, 2023, the committee met for a very long time. "
        "It decided nothing at all, as usual."
    )
    assert prepare(text, symbols=SYMBOLS, max_chunk_chars=300, first_chunk_chars=40) == [
        "On May fifth, twenty twenty-three,",
        "the committee met for a very long time.",
        "It decided nothing at all, as usual.",
    ]


def test_a_language_without_an_expander_skips_expansion() -> None:
    assert prepare("Call 911 now.", symbols=SYMBOLS, max_chunk_chars=300, language="fi") == [
        "Call 911 now."
    ]


def test_expanders_are_read_only() -> None:
    with pytest.raises(TypeError):
        EXPANDERS["xx"] = str.upper  # type: ignore[index]


def test_everything_exported_exists() -> None:
    for name in text_package.__all__:
        assert hasattr(text_package, name), name


_FRAGMENTS = [
    "Dr. Smith",
    "paid $3.50",
    "on May 5th, 2023",
    "at 3:30 pm",
    "in 1999",
    "about 42%",
    "of 1,234,567 people",
    "e.g. apples",
    "\U0001f600",
    "\u65e5\u672c",
    "-12.5\u00b0C",
    "supercalifragilisticexpialidocious" * 3,
    "and then",
    "something happened",
]
_ENDS = [".", "!", "?", ",", ";", ":", " -", "...", ""]


@pytest.mark.parametrize("seed", range(200))
def test_chunks_fit_and_keep_the_normalized_text(seed: int) -> None:
    rng = random.Random(seed)
    text = " ".join(rng.choice(_FRAGMENTS) + rng.choice(_ENDS) for _ in range(rng.randint(1, 40)))
    max_chunk_chars = rng.randint(20, 200)
    first_chunk_chars = rng.choice([None, rng.randint(1, 80)])
    try:
        normalized = normalize(text, symbols=SYMBOLS)
    except EmptyText:
        pytest.skip("the random text had nothing speakable")

    chunks = prepare(
        text,
        symbols=SYMBOLS,
        max_chunk_chars=max_chunk_chars,
        first_chunk_chars=first_chunk_chars,
    )

    assert chunks
    assert all(len(chunk) <= max_chunk_chars for chunk in chunks)
    if first_chunk_chars is not None:
        # Longer only if it could not be cut between words.
        assert len(chunks[0]) <= first_chunk_chars or " " not in chunks[0][: first_chunk_chars + 1]
    assert all(set(chunk) <= SYMBOLS for chunk in chunks)
    assert "".join(" ".join(chunks).split()) == "".join(normalized.split())

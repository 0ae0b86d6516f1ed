"""Chunking: sentences, short-sentence joining, clause and word cuts, the first-chunk limit."""

from __future__ import annotations

import random
import string

import pytest

from voicepocket.text import split_chunks, split_sentences


def _without_whitespace(text: str) -> str:
    return "".join(text.split())


def test_sentences_split_at_each_kind_of_end() -> None:
    text = "One. Two! Three? Four... Five?! \u201cSix.\u201d Seven"
    assert split_sentences(text) == [
        "One.",
        "Two!",
        "Three?",
        "Four...",
        "Five?!",
        "\u201cSix.\u201d",
        "Seven",
    ]


def test_cjk_sentences_split_without_spaces() -> None:
    assert split_sentences("\u4eca\u65e5\u3002\u660e\u65e5\uff01\u5f8c\uff1f") == [
        "\u4eca\u65e5\u3002",
        "\u660e\u65e5\uff01",
        "\u5f8c\uff1f",
    ]


def test_a_period_inside_a_word_or_number_is_not_an_end() -> None:
    assert split_sentences("See example.com at 3.14 now. Then go.") == [
        "See example.com at 3.14 now.",
        "Then go.",
    ]


def test_one_sentence_per_chunk() -> None:
    text = "This is the first sentence here. This is the second sentence here."
    assert split_chunks(text, max_chunk_chars=300) == [
        "This is the first sentence here.",
        "This is the second sentence here.",
    ]


def test_short_sentences_join_the_next() -> None:
    text = "Hi. Yes. This is a longer sentence here. Ok. Bye now, my good friend."
    assert split_chunks(text, max_chunk_chars=300) == [
        "Hi. Yes. This is a longer sentence here.",
        "Ok. Bye now, my good friend.",
    ]


def test_a_short_last_sentence_stays_alone() -> None:
    assert split_chunks("This is a sentence of some length. Bye.", max_chunk_chars=300) == [
        "This is a sentence of some length.",
        "Bye.",
    ]


def test_short_sentences_do_not_join_past_the_limit() -> None:
    assert split_chunks("Hi. Yes. Another one.", max_chunk_chars=8) == [
        "Hi. Yes.",
        "Another",
        "one.",
    ]


def test_a_long_sentence_is_cut_at_clause_ends() -> None:
    text = "one two three, four five six; seven eight nine ten eleven twelve."
    assert split_chunks(text, max_chunk_chars=20) == [
        "one two three,",
        "four five six;",
        "seven eight nine ten",
        "eleven twelve.",
    ]


def test_clauses_are_packed_up_to_the_limit() -> None:
    text = "a, b, c, d, e, f, g, h, i, j."
    assert split_chunks(text, max_chunk_chars=12) == ["a, b, c, d,", "e, f, g, h,", "i, j."]


def test_a_dash_and_a_closing_bracket_end_clauses() -> None:
    text = "first part here - second part (with aside) third part."
    assert split_chunks(text, max_chunk_chars=25) == [
        "first part here -",
        "second part (with aside)",
        "third part.",
    ]


def test_a_word_longer_than_the_limit_is_cut_anywhere() -> None:
    assert split_chunks("a" * 25, max_chunk_chars=10) == ["a" * 10, "a" * 10, "a" * 5]


def test_the_first_chunk_is_cut_at_a_clause_end_within_its_limit() -> None:
    text = "Well, this is the first sentence, and it goes on for a while. Then more."
    assert split_chunks(text, max_chunk_chars=300, first_chunk_chars=40) == [
        "Well, this is the first sentence,",
        "and it goes on for a while.",
        "Then more.",
    ]


def test_the_first_chunk_is_cut_at_a_space_without_a_clause_end() -> None:
    text = "This is the first sentence of some length with no commas. Then more."
    assert split_chunks(text, max_chunk_chars=300, first_chunk_chars=30) == [
        "This is the first sentence of",
        "some length with no commas.",
        "Then more.",
    ]


def test_the_rest_of_the_first_chunk_obeys_the_chunk_limit() -> None:
    text = "aaaa bbbb cccc dddd eeee ffff gggg hhhh."
    chunks = split_chunks(text, max_chunk_chars=20, first_chunk_chars=5)
    assert chunks == ["aaaa", "bbbb cccc dddd eeee", "ffff gggg hhhh."]


def test_a_first_chunk_within_its_limit_is_untouched() -> None:
    text = "Short one here, fine. Another sentence follows it."
    assert split_chunks(text, max_chunk_chars=300, first_chunk_chars=100) == split_chunks(
        text, max_chunk_chars=300
    )


def test_a_first_chunk_limit_above_the_chunk_limit_changes_nothing() -> None:
    text = "word " * 50
    assert split_chunks(text, max_chunk_chars=30, first_chunk_chars=500) == split_chunks(
        text, max_chunk_chars=30
    )


@pytest.mark.parametrize(("option", "value"), [("max_chunk_chars", 0), ("first_chunk_chars", 0)])
def test_limits_below_one_are_refused(option: str, value: int) -> None:
    limits = {"max_chunk_chars": 10, option: value}
    with pytest.raises(ValueError, match=option):
        split_chunks("text", **limits)


def test_empty_text_has_no_chunks() -> None:
    assert split_chunks("", max_chunk_chars=10) == []


def _random_text(rng: random.Random) -> str:
    """Words of any length, sometimes followed by punctuation, sometimes with no spaces."""
    alphabet = string.ascii_letters + string.digits
    marks = [".", ",", ";", ":", "!", "?", "...", ")", " -", ""]
    words = []
    for _ in range(rng.randint(0, 80)):
        word = "".join(rng.choices(alphabet, k=rng.choice([1, 2, 5, 9, 30, 150])))
        words.append(word + rng.choice(marks) * (rng.random() < 0.3))
    separator = rng.choice([" ", " ", " ", ""])
    return separator.join(words)


@pytest.mark.parametrize("seed", range(300))
def test_chunks_never_exceed_limits_and_keep_the_text(seed: int) -> None:
    rng = random.Random(seed)
    text = _random_text(rng)
    max_chunk_chars = rng.randint(1, 120)
    first_chunk_chars = rng.choice([None, rng.randint(1, 60)])

    chunks = split_chunks(
        text, max_chunk_chars=max_chunk_chars, first_chunk_chars=first_chunk_chars
    )

    assert all(len(chunk) <= max_chunk_chars for chunk in chunks)
    if chunks and first_chunk_chars is not None:
        # Longer only if it could not be cut between words.
        assert len(chunks[0]) <= first_chunk_chars or " " not in chunks[0][: first_chunk_chars + 1]
    assert all(chunk == chunk.strip() and chunk for chunk in chunks)
    assert _without_whitespace(" ".join(chunks)) == _without_whitespace(text)


def test_long_text_without_punctuation_fits() -> None:
    text = " ".join(["word"] * 1000)
    chunks = split_chunks(text, max_chunk_chars=50)
    assert all(len(chunk) <= 50 for chunk in chunks)
    assert " ".join(chunks) == text


def test_long_text_without_spaces_fits() -> None:
    text = "x" * 1000
    chunks = split_chunks(text, max_chunk_chars=64)
    assert all(len(chunk) <= 64 for chunk in chunks)
    assert "".join(chunks) == text


def test_long_clauses_fit() -> None:
    clause = " ".join(["clause"] * 40)
    text = ", ".join([clause] * 5) + "."
    chunks = split_chunks(text, max_chunk_chars=100)
    assert all(len(chunk) <= 100 for chunk in chunks)
    assert " ".join(chunks) == text


def test_the_opening_chunks_ramp_up_between_words() -> None:
    """Each opening chunk at most RAMP (4) times the one before, cut between words."""
    text = "One two three four five six seven eight nine ten eleven twelve thirteen fourteen."
    assert split_chunks(text, max_chunk_chars=300, first_chunk_chars=10) == [
        "One two",
        "three four five six seven eight nine ten",
        "eleven twelve thirteen fourteen.",
    ]


def test_the_first_chunk_is_never_cut_inside_a_word() -> None:
    text = "Internationalization matters. Then more."
    assert split_chunks(text, max_chunk_chars=300, first_chunk_chars=10) == [
        "Internationalization matters.",
        "Then more.",
    ]

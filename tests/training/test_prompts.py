"""The recording prompts: enough of them, stable ids, sayable text, and a first 30 that
covers every letter, jamo and digit of its language."""

from __future__ import annotations

import unicodedata
from collections import Counter

import pytest

from voicepocket.errors import NotFound, RequestError
from voicepocket.text import expand_english
from voicepocket.training.prompts import LANGUAGES, Prompt, PromptSet, prompt_set

COVERAGE_PROMPTS = 30
"""The first this many prompts of each language must cover its sounds."""

MIN_COUNT = 3
"""How often each letter, jamo or digit must appear in those first prompts."""

DIGITS = "0123456789"
ENGLISH_LETTERS = "abcdefghijklmnopqrstuvwxyz"
ENGLISH_SAYABLE = frozenset(ENGLISH_LETTERS + " '.,?!-:;")
"""What a characters-based English coqui voice says, once text is expanded and lowercased."""

KOREAN_INITIALS = [chr(cp) for cp in range(0x1100, 0x1113)]
KOREAN_MEDIALS = [chr(cp) for cp in range(0x1161, 0x1176)]
KOREAN_FINALS = [chr(cp) for cp in range(0x11A8, 0x11C3)]
KOREAN_PUNCTUATION = frozenset(DIGITS + " .,?!")


def _missing(counts: Counter[str], wanted: list[str]) -> list[str]:
    """Each wanted symbol seen under ``MIN_COUNT`` times, with its name and count."""
    return [
        f"{unicodedata.name(symbol, symbol)} ({symbol!r}): {counts[symbol]}"
        for symbol in wanted
        if counts[symbol] < MIN_COUNT
    ]


def _is_korean_char(char: str) -> bool:
    return "\uac00" <= char <= "\ud7a3" or char in KOREAN_PUNCTUATION


def test_languages() -> None:
    assert LANGUAGES == ("en", "ko")


@pytest.mark.parametrize("language", LANGUAGES)
def test_each_language_has_enough_unique_prompts(language: str) -> None:
    prompts = prompt_set(language)
    assert isinstance(prompts, PromptSet)
    assert prompts.language == language
    assert prompts.consent.strip()
    texts = [prompt.text for prompt in prompts.prompts]
    assert len(texts) >= 100
    assert all(text.strip() == text and text for text in texts)
    duplicates = [text for text, n in Counter(texts).items() if n > 1]
    assert not duplicates, duplicates
    assert prompts.consent not in texts


@pytest.mark.parametrize("language", LANGUAGES)
def test_ids_are_stable_and_get_finds_them(language: str) -> None:
    prompts = prompt_set(language)
    ids = [prompt.id for prompt in prompts.prompts]
    assert ids == [f"{language}-{n:03d}" for n in range(1, len(ids) + 1)]
    first, last = prompts.prompts[0], prompts.prompts[-1]
    assert prompts.get(f"{language}-001") == first
    assert prompts.get(last.id) is last
    assert isinstance(first, Prompt)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("prompt_id", ["{language}-000", "{language}-999", "xx-001", "", "001"])
def test_unknown_prompt_id_is_not_found(language: str, prompt_id: str) -> None:
    wanted = prompt_id.format(language=language)
    with pytest.raises(NotFound) as caught:
        prompt_set(language).get(wanted)
    assert caught.value.message == f"Prompt {wanted} not found."
    assert caught.value.param == "prompt_id"


@pytest.mark.parametrize("language", ["fr", "EN", "", "en-US"])
def test_unknown_language_is_a_request_error(language: str) -> None:
    with pytest.raises(RequestError) as caught:
        prompt_set(language)
    assert caught.value.message == "language must be one of en, ko."
    assert caught.value.param == "language"


def test_prompt_sets_are_cached() -> None:
    assert prompt_set("en") is prompt_set("en")


def test_first_english_prompts_cover_every_letter_and_digit() -> None:
    text = " ".join(p.text for p in prompt_set("en").prompts[:COVERAGE_PROMPTS]).lower()
    counts = Counter(text)
    missing = _missing(counts, list(ENGLISH_LETTERS + DIGITS))
    assert not missing, f"first {COVERAGE_PROMPTS} English prompts lack: {', '.join(missing)}"


def test_first_korean_prompts_cover_every_jamo_and_digit() -> None:
    text = " ".join(p.text for p in prompt_set("ko").prompts[:COVERAGE_PROMPTS])
    counts = Counter(unicodedata.normalize("NFD", text))
    missing = _missing(counts, KOREAN_INITIALS + KOREAN_MEDIALS + KOREAN_FINALS + list(DIGITS))
    assert not missing, f"first {COVERAGE_PROMPTS} Korean prompts lack: {', '.join(missing)}"


def test_the_jamo_lists_are_complete() -> None:
    assert (len(KOREAN_INITIALS), len(KOREAN_MEDIALS), len(KOREAN_FINALS)) == (19, 21, 27)


def test_english_prompts_and_consent_are_sayable_once_expanded() -> None:
    english = prompt_set("en")
    unsayable = {}
    for text in [p.text for p in english.prompts] + [english.consent]:
        spoken = expand_english(text).lower()
        if extra := set(spoken) - ENGLISH_SAYABLE:
            unsayable[text] = "".join(sorted(extra))
    assert not unsayable, unsayable


def test_korean_prompts_and_consent_are_hangul_digits_and_punctuation() -> None:
    korean = prompt_set("ko")
    foreign = {}
    for text in [p.text for p in korean.prompts] + [korean.consent]:
        if extra := {char for char in text if not _is_korean_char(char)}:
            foreign[text] = "".join(sorted(extra))
    assert not foreign, foreign


def test_english_prompts_are_8_to_25_words() -> None:
    wrong = {p.id: len(p.text.split()) for p in prompt_set("en").prompts}
    assert {i: n for i, n in wrong.items() if not 8 <= n <= 25} == {}


def test_korean_prompts_are_5_to_60_characters() -> None:
    wrong = {p.id: len(p.text) for p in prompt_set("ko").prompts}
    assert {i: n for i, n in wrong.items() if not 5 <= n <= 60} == {}

"""English number words: cardinals, decimals, ordinals and years, via ``num2words``."""

from __future__ import annotations

from num2words import num2words

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
"""Digits as read one by one (after a decimal point, or in a long digit string)."""

MAX_CARDINAL_DIGITS = 15
"""Longer integers (card, phone or account numbers) are read digit by digit."""


def _words(number: int, *, to: str = "cardinal") -> str:
    # num2words separates groups with commas ("one million, two hundred"); a comma in
    # speech is a pause and, for us, a clause boundary, so drop them.
    words: str = num2words(number, lang="en", to=to)
    return words.replace(",", "")


def cardinal(number: int) -> str:
    """``1234`` -> ``"one thousand two hundred and thirty-four"``; negatives say "minus"."""
    if number < 0:
        return f"minus {cardinal(-number)}"
    return _words(number)


def digits(text: str) -> str:
    """``"007"`` -> ``"zero zero seven"``: each digit of ``text`` as a word."""
    return " ".join(DIGIT_WORDS[int(char)] for char in text if char.isdigit())


def read_integer(text: str) -> str:
    """A written integer, with or without thousands separators: ``"1,000"`` -> one thousand.

    Leading zeros and very long digit strings are codes rather than quantities, so they are
    read digit by digit.
    """
    plain = text.replace(",", "")
    if (len(plain) > 1 and plain.startswith("0")) or len(plain) > MAX_CARDINAL_DIGITS:
        return digits(plain)
    return cardinal(int(plain))


def read_number(text: str) -> str:
    """A written number: sign, integer part, thousands separators and decimals.

    ``"-3.14"`` -> ``"minus three point one four"``; digits after the point are read one by
    one, so ``"2.50"`` keeps its trailing zero.
    """
    sign, unsigned = ("minus ", text[1:]) if text.startswith("-") else ("", text)
    whole, point, fraction = unsigned.partition(".")
    words = read_integer(whole) if whole else "zero"
    if point and fraction:
        words = f"{words} point {digits(fraction)}"
    return sign + words


def is_one(text: str) -> bool:
    """Whether a written number is exactly one, which takes a singular noun."""
    unsigned = text.removeprefix("-").replace(",", "")
    whole, _, fraction = unsigned.partition(".")
    return whole.lstrip("0") == "1" and not fraction.strip("0")


def ordinal(text: str) -> str:
    """``"21"`` -> ``"twenty-first"``; thousands separators allowed."""
    return _words(int(text.replace(",", "")), to="ordinal")


def year(value: int) -> str:
    """``1999`` -> ``"nineteen ninety-nine"``, ``2023`` -> ``"twenty twenty-three"``."""
    return _words(value, to="year")


def decade(value: int) -> str:
    """``1990`` -> ``"nineteen nineties"``, ``2000`` -> ``"two thousands"``."""
    return plural_of(year(value))


def tens(value: int) -> str:
    """``90`` (as in "the '90s") -> ``"nineties"``."""
    return plural_of(cardinal(value))


def plural_of(words: str) -> str:
    """Number words as a plural noun: ``"nineteen ninety"`` -> ``"nineteen nineties"``."""
    *head, last = words.split(" ")
    plural = f"{last[:-1]}ies" if last.endswith("y") else f"{last}s"
    return " ".join([*head, plural])

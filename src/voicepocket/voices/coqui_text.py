"""coqui-tts's character tokenizer, without torch: text cleaners, then characters to ids.

Reimplements ``TTS.tts.utils.text.tokenizer.TTSTokenizer.text_to_ids`` (coqui-tts 0.28) for
character-based configs, the kind the seed's voices use:

1. the config's cleaner (``basic_cleaners``, ``english_cleaners``, ``multilingual_cleaners``,
   ``transliteration_cleaners``, ``no_cleaners`` or none), called with the model's language
   reduced to its primary subtag, as coqui does;
2. every character looked up in the vocabulary (the id order comes from coqui's own
   tokenizer, recorded at registration), unknown characters dropped;
3. the blank id between every pair of ids and at both ends (``add_blank``);
4. bos/eos around the whole (``enable_eos_bos_chars``).

The cleaners are ports of coqui's, quirks included (its time regex never matches "a.m.",
its English cleaner expands abbreviations only when the language is ``en``): the parity
tests compare our ids with coqui's on the same strings. coqui's English number reading
uses ``inflect``; so does ours, imported only by voices whose cleaner needs it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType
from typing import Any

Cleaner = Callable[[str, "str | None"], str]

_WHITESPACE = re.compile(r"\s+")


def _collapse_whitespace(text: str) -> str:
    return re.sub(_WHITESPACE, " ", text).strip()


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _replace_symbols(text: str, lang: str | None) -> str:
    if lang != "el":  # semicolons are question marks in Greek
        text = text.replace(";", ",")
    text = text.replace("-", " ") if lang != "ca" else text.replace("-", "")
    text = text.replace(":", ",")
    if lang == "en":
        text = text.replace("&", " and ")
    elif lang == "fr":
        text = text.replace("&", " et ")
    elif lang in ("it", "pt"):
        text = text.replace("&", " e ")
    elif lang == "ca":
        text = text.replace("&", " i ")
        text = text.replace("'", "")
    return text


def _remove_aux_symbols(text: str) -> str:
    return re.sub(r"[\<\>\(\)\[\]\"]+", "", text)


# -- English: coqui's number, time and abbreviation rules (from keithito/tacotron) ------------

_ABBREVIATIONS_EN = [
    (re.compile(f"\\b{short}\\.", re.IGNORECASE), long)
    for short, long in [
        ("mrs", "misess"), ("mr", "mister"), ("dr", "doctor"), ("st", "saint"),
        ("co", "company"), ("jr", "junior"), ("maj", "major"), ("gen", "general"),
        ("drs", "doctors"), ("rev", "reverend"), ("lt", "lieutenant"), ("hon", "honorable"),
        ("sgt", "sergeant"), ("capt", "captain"), ("esq", "esquire"), ("ltd", "limited"),
        ("col", "colonel"), ("ft", "fort"),
    ]
]  # fmt: skip

_COMMA_NUMBER = re.compile(r"([0-9][0-9\,]+[0-9])")
_DECIMAL_NUMBER = re.compile(r"([0-9]+\.[0-9]+)")
_CURRENCY = re.compile(r"(£|\$|¥)([0-9\,\.]*[0-9]+)")
_ORDINAL = re.compile(r"[0-9]+(st|nd|rd|th)")
_NUMBER = re.compile(r"-?[0-9]+")
# Verbatim from coqui, including the doubled backslashes that keep "a.m." from matching.
_TIME = re.compile(
    r"""\b
                          ((0?[0-9])|(1[0-1])|(1[2-9])|(2[0-3]))  # hours
                          :
                          ([0-5][0-9])                            # minutes
                          \s*(a\\.m\\.|am|pm|p\\.m\\.|a\\.m|p\\.m)? # am/pm
                          \b""",
    re.IGNORECASE | re.VERBOSE,
)
_CURRENCY_UNITS: Mapping[str, Mapping[float, str]] = MappingProxyType(
    {
        "$": {0.01: "cent", 0.02: "cents", 1: "dollar", 2: "dollars"},
        "€": {0.01: "cent", 0.02: "cents", 1: "euro", 2: "euros"},
        "£": {0.01: "penny", 0.02: "pence", 1: "pound sterling", 2: "pounds sterling"},
        "¥": {0.02: "sen", 2: "yen"},
    }
)


@cache
def _inflect() -> Any:
    import inflect

    return inflect.engine()


def _words(number: int | str, **options: Any) -> str:
    words: str = _inflect().number_to_words(number, **options)
    return words


def _expand_currency(match: re.Match[str]) -> str:
    units, value = _CURRENCY_UNITS[match.group(1)], match.group(2)
    parts = value.replace(",", "").split(".")
    if len(parts) > 2:
        return f"{value} {units[2]}"
    text = []
    integer = int(parts[0]) if parts[0] else 0
    if integer > 0:
        text.append(f"{integer} {units.get(integer, units[2])}")
    fraction = int(parts[1]) if len(parts) > 1 and parts[1] else 0
    if fraction > 0:
        text.append(f"{fraction} {units.get(fraction / 100, units[0.02])}")
    return " ".join(text) if text else f"zero {units[2]}"


def _expand_number(match: re.Match[str]) -> str:
    import inflect

    number = int(match.group(0))
    if 1000 < number < 3000:
        if number == 2000:
            return "two thousand"
        if 2000 < number < 2010:
            return "two thousand " + _words(number % 100)
        if number % 100 == 0:
            return _words(number // 100) + " hundred"
        return _words(number, andword="", zero="oh", group=2).replace(", ", " ")
    try:
        return _words(number, andword="")
    except inflect.NumOutOfRangeError:
        return _words(number, group=1).replace(", ", " ")


def _normalize_numbers_en(text: str) -> str:
    text = re.sub(_COMMA_NUMBER, lambda m: m.group(1).replace(",", ""), text)
    text = re.sub(_CURRENCY, _expand_currency, text)
    text = re.sub(_DECIMAL_NUMBER, lambda m: m.group(1).replace(".", " point "), text)
    text = re.sub(_ORDINAL, lambda m: _words(m.group(0)), text)
    return re.sub(_NUMBER, _expand_number, text)


def _expand_time_en(match: re.Match[str]) -> str:
    hour = int(match.group(1))
    past_noon = hour >= 12
    if hour > 12:
        hour -= 12
    elif hour == 0:
        hour = 12
        past_noon = True
    time = [_words(hour)]
    minute = int(match.group(6))
    if minute > 0:
        if minute < 10:
            time.append("oh")
        time.append(_words(minute))
    am_pm = match.group(7)
    if am_pm is None:
        time.append("p m" if past_noon else "a m")
    else:
        time.extend(list(am_pm.replace(".", "")))
    return " ".join(time)


def _expand_abbreviations(text: str, lang: str | None) -> str:
    if lang != "en":  # coqui also knows French and Italian ones, for other cleaners
        return text
    for pattern, replacement in _ABBREVIATIONS_EN:
        text = re.sub(pattern, replacement, text)
    return text


# -- The cleaners ---------------------------------------------------------------------------


def basic_cleaners(text: str, lang: str | None = None) -> str:
    """Unicode NFC, lowercase, whitespace collapsed."""
    return _collapse_whitespace(_nfc(text).lower())


def english_cleaners(text: str, lang: str | None = "en") -> str:
    """``basic`` plus English times, numbers, currency, abbreviations and symbols as words."""
    text = _nfc(text).lower()
    text = re.sub(_TIME, _expand_time_en, text)
    text = _normalize_numbers_en(text)
    text = _expand_abbreviations(text, lang)
    text = _replace_symbols(text, lang)
    text = _remove_aux_symbols(text)
    return _collapse_whitespace(text)


def multilingual_cleaners(text: str, lang: str | None = None) -> str:
    """``basic`` plus the language's symbol replacements and brackets/quotes removed."""
    text = _nfc(text).lower()
    text = _replace_symbols(text, lang)
    text = _remove_aux_symbols(text)
    return _collapse_whitespace(text)


def no_cleaners(text: str, lang: str | None = None) -> str:
    """Only newlines removed."""
    return text.replace("\n", "")


CLEANERS: Mapping[str, Cleaner] = MappingProxyType(
    {
        "basic_cleaners": basic_cleaners,
        # coqui's transliteration cleaner no longer transliterates: it is the basic one.
        "transliteration_cleaners": basic_cleaners,
        "english_cleaners": english_cleaners,
        "multilingual_cleaners": multilingual_cleaners,
        "no_cleaners": no_cleaners,
    }
)
"""coqui cleaner names we reproduce exactly; a config naming another is refused."""


def primary_language(language: str | None) -> str | None:
    """coqui's ``normalize_language``: "en-us" -> "en" (only the first hyphen counts)."""
    return None if language is None else language.split("-")[0]


@dataclass(frozen=True, slots=True)
class CoquiTokenizer:
    """Text to token ids exactly as coqui's ``TTSTokenizer`` for a character config."""

    vocab: tuple[str, ...]
    """Tokens in id order (coqui's ``characters.vocab``)."""

    cleaner: str | None
    """Name of the coqui cleaner applied first, or ``None``."""

    language: str | None
    """Language the cleaner is told (coqui's single model language), e.g. ``en``."""

    add_blank: bool
    """Whether the blank id goes between ids and at both ends."""

    use_eos_bos: bool
    """Whether bos/eos ids go around the sequence."""

    blank_id: int
    """Id of the blank token."""

    bos_id: int
    """Id of the beginning-of-sentence token."""

    eos_id: int
    """Id of the end-of-sentence token."""

    def __post_init__(self) -> None:
        if self.cleaner is not None and self.cleaner not in CLEANERS:
            raise ValueError(f"unsupported cleaner {self.cleaner!r}")

    @property
    def char_to_id(self) -> Mapping[str, int]:
        """coqui's mapping: built in vocab order, so a repeated token keeps its last id."""
        return _char_to_id(self.vocab)

    def clean(self, text: str) -> str:
        """The text after the config's cleaner."""
        if self.cleaner is None:
            return text
        return CLEANERS[self.cleaner](text, primary_language(self.language))

    def encode(self, text: str) -> list[int]:
        """Ids of the characters of ``text`` the vocabulary has; others are dropped."""
        mapping = self.char_to_id
        return [mapping[char] for char in text if char in mapping]

    def text_to_ids(self, text: str) -> list[int]:
        """Clean, encode, add blanks, add bos/eos: coqui's ``text_to_ids``."""
        ids = self.encode(self.clean(text))
        if self.add_blank:
            with_blanks = [self.blank_id] * (len(ids) * 2 + 1)
            with_blanks[1::2] = ids
            ids = with_blanks
        if self.use_eos_bos:
            ids = [self.bos_id, *ids, self.eos_id]
        return ids

    def warm_up(self) -> None:
        """Load what the cleaner needs (inflect for English) before the first request."""
        self.text_to_ids("It cost $1,234.50 at 10:05 on the 3rd.")


@cache
def _char_to_id(vocab: Sequence[str]) -> Mapping[str, int]:
    return MappingProxyType({char: index for index, char in enumerate(vocab)})

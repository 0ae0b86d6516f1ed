"""English expansion: numbers, money, dates, times, units and abbreviations written as words.

Each ``Rule`` is a named pattern and a function from one match to the words a reader would
say; ``expand_english`` applies ``RULES`` in order. The order is the design: times and dates
come before plain numbers (so "10:05" and "May 5th" are read as such), abbreviations before
sentence splitting ever sees their periods, and units, money and percentages before the
year rule and the catch-all number rule.

The rules are deliberately conservative: text they do not recognise is left for the voice's
own phonemizer rather than guessed at.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from voicepocket.text import english_numbers as num


@dataclass(frozen=True, slots=True)
class Rule:
    """One kind of written form and how it is read aloud."""

    name: str
    """What the rule reads ("money", "times" ...), for tests and debugging."""

    pattern: re.Pattern[str]
    """Where the rule applies."""

    speak: Callable[[re.Match[str]], str]
    """The words for one match; returning ``match[0]`` leaves the text as it was."""

    def apply(self, text: str) -> str:
        """``text`` with every match of this rule read aloud."""
        return self.pattern.sub(self.speak, text)


# --- Tables ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Currency:
    """How amounts in one currency are read."""

    unit: str
    """The main unit, singular ("dollar")."""

    units: str
    """The main unit, plural ("dollars")."""

    subunit: str | None = None
    """The hundredth, singular ("cent"); ``None`` when amounts have no subunit (yen)."""

    subunits: str | None = None
    """The hundredth, plural ("cents")."""


CURRENCIES: Mapping[str, Currency] = MappingProxyType(
    {
        "$": Currency("dollar", "dollars", "cent", "cents"),
        "£": Currency("pound", "pounds", "penny", "pence"),
        "€": Currency("euro", "euros", "cent", "cents"),
        "₹": Currency("rupee", "rupees", "paisa", "paise"),
        "¥": Currency("yen", "yen"),
    }
)
"""Currency signs written before an amount."""

SCALE_WORDS = ("thousand", "million", "billion", "trillion")
"""Words that scale a money amount after a space: "$1.2 million"."""

SCALE_SUFFIXES: Mapping[str, str] = MappingProxyType(
    {"k": "thousand", "K": "thousand", "M": "million", "bn": "billion", "B": "billion"}
)
"""Suffixes that scale a money amount written right after it: "$5M", "£3bn"."""


@dataclass(frozen=True, slots=True)
class Unit:
    """A unit symbol read after a number."""

    singular: str
    """After exactly one ("one kilometer")."""

    plural: str
    """After any other amount ("two kilometers", "one point five kilometers")."""


UNITS: Mapping[str, Unit] = MappingProxyType(
    {
        "km/h": Unit("kilometer per hour", "kilometers per hour"),
        "m/s": Unit("meter per second", "meters per second"),
        "mph": Unit("mile per hour", "miles per hour"),
        "km": Unit("kilometer", "kilometers"),
        "cm": Unit("centimeter", "centimeters"),
        "mm": Unit("millimeter", "millimeters"),
        "kg": Unit("kilogram", "kilograms"),
        "mg": Unit("milligram", "milligrams"),
        "ml": Unit("milliliter", "milliliters"),
        "mL": Unit("milliliter", "milliliters"),
        "kHz": Unit("kilohertz", "kilohertz"),
        "MHz": Unit("megahertz", "megahertz"),
        "GHz": Unit("gigahertz", "gigahertz"),
        "°C": Unit("degree Celsius", "degrees Celsius"),
        "°F": Unit("degree Fahrenheit", "degrees Fahrenheit"),
        "°": Unit("degree", "degrees"),
    }
)
"""Only symbols that mean one thing after a number ("m" could be meters, minutes or million)."""

MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)

MONTH_ABBREVIATIONS: Mapping[str, str] = MappingProxyType(
    {
        "Jan": "January",
        "Feb": "February",
        "Mar": "March",
        "Apr": "April",
        "Jun": "June",
        "Jul": "July",
        "Aug": "August",
        "Sep": "September",
        "Sept": "September",
        "Oct": "October",
        "Nov": "November",
        "Dec": "December",
    }
)


@dataclass(frozen=True, slots=True)
class Abbreviation:
    """An abbreviation with a period and the words said for it."""

    spoken: str
    """What is said instead ("Doctor")."""

    may_end_sentence: bool
    """Whether its period can double as a full stop ("... of Acme Inc. Then ..."), in which
    case the period is kept; titles before a name never end a sentence."""


def _abbreviations() -> Mapping[str, Abbreviation]:
    readings = {
        "Mr.": Abbreviation("Mister", may_end_sentence=False),
        "Mrs.": Abbreviation("Missus", may_end_sentence=False),
        "Ms.": Abbreviation("Miz", may_end_sentence=False),
        "Prof.": Abbreviation("Professor", may_end_sentence=False),
        "Mt.": Abbreviation("Mount", may_end_sentence=False),
        "Jr.": Abbreviation("Junior", may_end_sentence=True),
        "Sr.": Abbreviation("Senior", may_end_sentence=True),
        "Ph.D.": Abbreviation("P H D", may_end_sentence=True),
        "vs.": Abbreviation("versus", may_end_sentence=False),
        "etc.": Abbreviation("et cetera", may_end_sentence=True),
        "e.g.": Abbreviation("for example", may_end_sentence=False),
        "i.e.": Abbreviation("that is", may_end_sentence=False),
        "approx.": Abbreviation("approximately", may_end_sentence=False),
        "Ave.": Abbreviation("Avenue", may_end_sentence=True),
        "Inc.": Abbreviation("Incorporated", may_end_sentence=True),
        "Ltd.": Abbreviation("Limited", may_end_sentence=True),
        "Co.": Abbreviation("Company", may_end_sentence=True),
    }
    for short, month in MONTH_ABBREVIATIONS.items():
        readings[f"{short}."] = Abbreviation(month, may_end_sentence=True)
    # The same at the start of a sentence: "E.g." -> "For example".
    for written, entry in list(readings.items()):
        if written[0].islower():
            spoken = entry.spoken[0].upper() + entry.spoken[1:]
            readings[written.capitalize()] = Abbreviation(spoken, entry.may_end_sentence)
    return MappingProxyType(readings)


ABBREVIATIONS = _abbreviations()
"""Abbreviations with one reading, as written (case matters: "Co." but not "co.")."""


@dataclass(frozen=True, slots=True)
class TitleOrPlace:
    """An abbreviation that is a title before a name and a street type after one."""

    title: str
    """Before a name: "Dr. Smith" -> "Doctor"."""

    place: str
    """After a street name: "Elm Dr." -> "Drive"."""


TITLES_OR_PLACES: Mapping[str, TitleOrPlace] = MappingProxyType(
    {
        "Dr.": TitleOrPlace("Doctor", "Drive"),
        "St.": TitleOrPlace("Saint", "Street"),
    }
)

YEAR_CONTEXT_WORDS = (
    "in",
    "since",
    "by",
    "from",
    "until",
    "till",
    "during",
    "before",
    "after",
    "around",
    "circa",
    "between",
    "year",
    "spring",
    "summer",
    "autumn",
    "fall",
    "winter",
)
"""Words after which a four-digit number is a year ("in 1999"); matched in any case."""

ERAS: Mapping[str, str] = MappingProxyType({"BCE": "B C E", "BC": "B C", "CE": "C E", "AD": "A D"})


# --- Pattern pieces -------------------------------------------------------------------------


def _alternatives(words: Iterable[str]) -> str:
    """A regex alternation of literal ``words``, longest first so "km/h" wins over "km"."""
    return "|".join(re.escape(word) for word in sorted(words, key=len, reverse=True))


UNSIGNED_NUMBER = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?!\d)"
"""``1,234.5``, ``3.14``, ``42``: optional thousands separators and decimals."""

NUMBER = rf"(?:(?<![\w-])-)?(?<![\d.]){UNSIGNED_NUMBER}"
"""A number with an optional minus: a "-" only counts as one when no word is glued before it,
so "3-5" and "COVID-19" keep their hyphen."""

YEAR = r"(?:1\d{3}|20\d{2})"
"""The four-digit numbers read as years when the context says they are (1000-2099)."""

MERIDIEM = r"(?P<meridiem>[AaPp]\.?[Mm](?![A-Za-z])\.?)"
"""am, pm, a.m., P.M. ..."""

_NEW_SENTENCE_AHEAD = re.compile(r"\s+[\"'(\[]*[A-Z]")
_CAPITALIZED_WORD_AHEAD = re.compile(r"\s+[A-Z]")


# --- Context helpers ------------------------------------------------------------------------


def _period_ends_sentence(match: re.Match[str]) -> bool:
    """Whether a period that ends ``match`` is also a full stop: the text ends there or a
    capitalized word follows."""
    text, end = match.string, match.end()
    return end == len(text) or _NEW_SENTENCE_AHEAD.match(text, end) is not None


def _word_before(match: re.Match[str]) -> str:
    head = match.string[: match.start()].rstrip()
    return head.rsplit(" ", 1)[-1] if head else ""


def _detached(match: re.Match[str], words: str) -> str:
    """``words`` with a space against any letter glued to the match: "mp3" -> "mp three"."""
    text, start, end = match.string, match.start(), match.end()
    before = " " if start > 0 and text[start - 1].isalpha() else ""
    after = " " if end < len(text) and text[end].isalpha() else ""
    return f"{before}{words}{after}"


# --- Readers, one per rule -------------------------------------------------------------------


def _speak_meridiem(match: re.Match[str]) -> str:
    letters = " ".join(char.upper() for char in match["meridiem"] if char.isalpha())
    if match["meridiem"].endswith(".") and _period_ends_sentence(match):
        return f"{letters}."
    return letters


def _speak_clock_time(match: re.Match[str]) -> str:
    hour, minute = int(match["hour"]), int(match["minute"])
    hour_words = num.cardinal(hour)
    if minute == 0 and match["meridiem"]:
        reading = hour_words
    elif minute == 0:
        reading = f"{hour_words} o'clock" if 1 <= hour <= 12 else f"{hour_words} hundred"
    elif minute < 10:
        reading = f"{hour_words} oh {num.cardinal(minute)}"
    else:
        reading = f"{hour_words} {num.cardinal(minute)}"
    if match["meridiem"]:
        return f"{reading} {_speak_meridiem(match)}"
    return reading


def _speak_hour_time(match: re.Match[str]) -> str:
    return f"{num.cardinal(int(match['hour']))} {_speak_meridiem(match)}"


def _speak_date(match: re.Match[str]) -> str:
    day = int(match["day"])
    if not 1 <= day <= 31:
        return match[0]
    month = MONTH_ABBREVIATIONS.get(match["month"], match["month"])
    reading = f"{month} {num.ordinal(match['day'])}"
    if match["year"]:
        reading += f"{match['comma'] or ''} {num.year(int(match['year']))}"
    return reading


def _speak_abbreviation(match: re.Match[str]) -> str:
    entry = ABBREVIATIONS[match[0]]
    if entry.may_end_sentence and _period_ends_sentence(match):
        return f"{entry.spoken}."
    return entry.spoken


def _speak_title_or_place(match: re.Match[str]) -> str:
    # "Elm Dr." / "5th St.": a street type follows a capitalized or numbered word and is not
    # itself followed by a name. Everything else ("Dr. Smith", "and Dr. Jones") is a title.
    entry = TITLES_OR_PLACES[match[0]]
    before = _word_before(match)
    after_a_name = bool(before) and (before[0].isupper() or any(c.isdigit() for c in before))
    name_follows = _CAPITALIZED_WORD_AHEAD.match(match.string, match.end()) is not None
    if after_a_name and not name_follows:
        return f"{entry.place}." if match.end() == len(match.string) else entry.place
    return entry.title


def _speak_initialism(match: re.Match[str]) -> str:
    # "U.S. Army": a capital after an initialism is as often a name as a new sentence, and a
    # missed full stop only makes a longer chunk, so the period is kept only at the very end.
    letters = " ".join(char.upper() for char in match[0] if char.isalpha())
    return f"{letters}." if match.end() == len(match.string) else letters


def _speak_initial(match: re.Match[str]) -> str:
    # "John F. Kennedy", "J. K. Rowling": the period of an initial is not a full stop. Only
    # at the start or after a name or another initial, so "plan B. Then" and "five P M. Then"
    # still end a sentence.
    before = _word_before(match).lstrip("\"'([")
    after_a_name = len(before) > 1 and before[0].isupper()
    return match["letter"] if not before or after_a_name else match[0]


def _speak_money(match: re.Match[str]) -> str:
    currency = CURRENCIES[match["symbol"]]
    amount = match["amount"]
    sign = "minus " if match["minus"] else ""
    scale = match["scale"] or SCALE_SUFFIXES.get(match["suffix"] or "")
    if scale:
        return f"{sign}{num.read_number(amount)} {scale} {currency.units}"
    whole, _, fraction = amount.partition(".")
    if currency.subunit is None or len(fraction) > 2:
        noun = currency.unit if num.is_one(amount) else currency.units
        return f"{sign}{num.read_number(amount)} {noun}"
    return sign + _speak_units_and_subunits(whole, fraction, currency)


def _speak_units_and_subunits(whole: str, fraction: str, currency: Currency) -> str:
    """``"3"``, ``"5"`` -> "three dollars and fifty cents"; "0", "99" -> "ninety-nine cents"."""
    units = int(whole.replace(",", ""))
    hundredths = int(fraction.ljust(2, "0")) if fraction else 0
    parts = []
    if units or not hundredths:
        parts.append(f"{num.read_integer(whole)} {currency.unit if units == 1 else currency.units}")
    if hundredths:
        noun = currency.subunit if hundredths == 1 else currency.subunits
        parts.append(f"{num.cardinal(hundredths)} {noun}")
    return " and ".join(parts)


def _speak_percentage(match: re.Match[str]) -> str:
    return f"{num.read_number(match['number'])} percent"


def _speak_measure(match: re.Match[str]) -> str:
    unit = UNITS[match["unit"]]
    noun = unit.singular if num.is_one(match["number"]) else unit.plural
    return _detached(match, f"{num.read_number(match['number'])} {noun}")


def _speak_decade(match: re.Match[str]) -> str:
    return _detached(match, num.decade(int(match["decade"])))


def _speak_short_decade(match: re.Match[str]) -> str:
    return num.tens(int(match["tens"]))


def _speak_era_year(match: re.Match[str]) -> str:
    return f"{num.year(int(match['year']))} {ERAS[match['era']]}"


def _speak_year_in_context(match: re.Match[str]) -> str:
    reading = f"{match['context']} {num.year(int(match['year']))}"
    if match["until"]:
        link = match["link"].strip()
        link = "to" if link in {"-", "\u2013"} else link
        reading += f" {link} {num.year(int(match['until']))}"
    return reading


def _speak_year_range(match: re.Match[str]) -> str:
    # "1990-1999" and "1914-1918" are spans of years; a span of quantities ("10-20") is not
    # matched, having fewer digits, and a backwards span is left alone.
    start, until = int(match["year"]), int(match["until"])
    if until <= start:
        return match[0]
    return f"{num.year(start)} to {num.year(until)}"


def _speak_dotted_number(match: re.Match[str]) -> str:
    return " point ".join(num.read_integer(part) for part in match[0].split("."))


def _speak_ordinal(match: re.Match[str]) -> str:
    return _detached(match, num.ordinal(match["number"]))


def _speak_number(match: re.Match[str]) -> str:
    return _detached(match, num.read_number(match[0]))


def _speak_number_sign(match: re.Match[str]) -> str:
    return "number "


# --- The rules, in the order they run --------------------------------------------------------

_MONTH = rf"(?P<month>{_alternatives([*MONTHS, *MONTH_ABBREVIATIONS])})"
_MONEY_SCALE = (
    rf"(?:\s(?P<scale>{_alternatives(SCALE_WORDS)})\b"
    rf"|(?P<suffix>{_alternatives(SCALE_SUFFIXES)})\b)"
)

RULES: tuple[Rule, ...] = (
    # "AT&T", "salt & pepper"
    Rule("ampersands", re.compile(r"\s*&\s*"), lambda _: " and "),
    # "10:05", "3:30 pm", "15:00"
    Rule(
        "clock_times",
        re.compile(
            rf"(?<![\d:.])(?P<hour>[01]?\d|2[0-3]):(?P<minute>[0-5]\d)(?![\d:])"
            rf"(?:\s?{MERIDIEM})?"
        ),
        _speak_clock_time,
    ),
    # "7am", "11 a.m."
    Rule(
        "hour_times",
        re.compile(rf"(?<![\d:.,])(?P<hour>1[0-2]|0?[1-9])\s?{MERIDIEM}"),
        _speak_hour_time,
    ),
    # "May 5th", "May 5, 2023", "Dec. 25"
    Rule(
        "dates",
        re.compile(
            rf"\b{_MONTH}\.?\s+(?P<day>[0-3]?\d)(?i:st|nd|rd|th)?(?!\w)"
            rf"(?:(?P<comma>,)?\s+(?P<year>[12]\d{{3}})(?![\w]|[.,]\d))?"
        ),
        _speak_date,
    ),
    # "Mr.", "e.g.", "Inc.", "Jan."
    Rule(
        "abbreviations",
        re.compile(rf"(?<![\w.]){_alternatives(ABBREVIATIONS)}"),
        _speak_abbreviation,
    ),
    # "Dr. Smith", "Elm Dr."
    Rule(
        "titles_or_places",
        re.compile(rf"(?<![\w.]){_alternatives(TITLES_OR_PLACES)}"),
        _speak_title_or_place,
    ),
    # "No. 5", "#1"
    Rule("number_signs", re.compile(r"(?<![\w.])(?:No\.|no\.|#)\s?(?=\d)"), _speak_number_sign),
    # "U.S.", "a.k.a."
    Rule("initialisms", re.compile(r"(?<![\w.])(?:[A-Za-z]\.){2,}"), _speak_initialism),
    # "John F. Kennedy"
    Rule(
        "initials",
        re.compile(r"(?<![\w.])(?P<letter>[A-Z])\.(?=\s+[A-Z][a-z.])"),
        _speak_initial,
    ),
    # "$3.50", "-$5", "$1.2 million", "£3bn"
    Rule(
        "money",
        re.compile(
            rf"(?P<minus>(?<![\w-])-)?(?P<symbol>[{''.join(CURRENCIES)}])\s?"
            rf"(?P<amount>{UNSIGNED_NUMBER})"
            rf"{_MONEY_SCALE}?"
        ),
        _speak_money,
    ),
    # "50%", "-2.5 %"
    Rule("percentages", re.compile(rf"(?P<number>{NUMBER})\s?%"), _speak_percentage),
    # "5 km", "-3°C", "100 km/h"
    Rule(
        "measures",
        re.compile(rf"(?P<number>{NUMBER})\s?(?P<unit>{_alternatives(UNITS)})(?![\w/])"),
        _speak_measure,
    ),
    # "1990s"
    Rule("decades", re.compile(r"(?<![\d.'\u2019])(?P<decade>1\d{2}0|20\d0)s\b"), _speak_decade),
    # "'90s"
    Rule("short_decades", re.compile(r"['\u2019](?P<tens>[2-9]0)s\b"), _speak_short_decade),
    # "44 BC"
    Rule(
        "era_years",
        re.compile(rf"(?<![\w.,])(?P<year>\d{{1,4}})\s?(?P<era>{_alternatives(ERAS)})\b"),
        _speak_era_year,
    ),
    # "in 1999", "from 1990 to 1999", "May 2023"
    Rule(
        "years_in_context",
        re.compile(
            rf"\b(?P<context>(?i:{_alternatives(YEAR_CONTEXT_WORDS)})|{_alternatives(MONTHS)})"
            rf"\s+(?P<year>{YEAR})"
            rf"(?:(?P<link>\s?[-\u2013]\s?|\s+(?:to|and|until|through)\s+)(?P<until>{YEAR}))?"
            r"(?![\w%]|[.,]\d)"
        ),
        _speak_year_in_context,
    ),
    # "1914-1918"
    Rule(
        "year_ranges",
        re.compile(rf"(?<![\d.,])(?P<year>{YEAR})[-\u2013](?P<until>{YEAR})(?![\d%]|[.,]\d)"),
        _speak_year_range,
    ),
    # "1.2.3"
    Rule("dotted_numbers", re.compile(r"(?<![\d.])\d+(?:\.\d+){2,}(?!\d)"), _speak_dotted_number),
    # "5th", "21st"
    Rule(
        "ordinals",
        re.compile(r"(?<![\d.])(?P<number>\d{1,3}(?:,\d{3})+|\d+)(?i:st|nd|rd|th)(?![A-Za-z])"),
        _speak_ordinal,
    ),
    # "42", "-3.14", "1,234"
    Rule("numbers", re.compile(NUMBER), _speak_number),
)
"""Every English rule, in the order ``expand_english`` applies them."""


def expand_english(text: str) -> str:
    """``text`` with numbers, money, dates, times, units and abbreviations written as words.

    >>> expand_english("Dr. Smith paid $3.50 on May 5th.")
    'Doctor Smith paid three dollars and fifty cents on May fifth.'
    """
    for rule in RULES:
        text = rule.apply(text)
    return text

"""Korean expansion: numbers read the Korean way, in Hangul.

Korean has two number systems and the word after a number decides which one is read:

- sino-Korean (일, 이, 삼 ... 십, 백, 천, 만, 억, 조) for dates (2023년 5월 3일 -> 이천이십삼년
  오월 삼일, with 유월 and 시월), minutes and seconds (21초 -> 이십일초), money (3,500원
  -> 삼천오백원), floors, percentages, measures, phone-like digit strings and every bare
  number;
- native Korean (하나, 둘, 셋 ... 아흔아홉) before counters of things, people, hours, ages and
  times (3시 -> 세시, 2명 -> 두명, 스무 살), in their attributive forms (한, 두, 세, 네,
  스무), up to 99; larger counts fall back to sino-Korean, as speakers do.

The number is replaced by its reading and everything around it is kept, so spacing stays
the writer's. Like the English expander, rules are conservative: a form they do not know
is read as a plain sino-Korean number, never dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

SINO_DIGITS = ("영", "일", "이", "삼", "사", "오", "육", "칠", "팔", "구")
"""Sino-Korean digits 0-9 (영 for zero; 공 in digit strings)."""

_SINO_UNITS = ((1000, "천"), (100, "백"), (10, "십"))
_GROUP_NAMES = ("", "만", "억", "조", "경")
"""Korean groups numbers by four digits: 만 (10^4), 억 (10^8), 조 (10^12), 경 (10^16)."""

_NATIVE_ONES = ("", "하나", "둘", "셋", "넷", "다섯", "여섯", "일곱", "여덟", "아홉")
_NATIVE_TENS = ("", "열", "스물", "서른", "마흔", "쉰", "예순", "일흔", "여든", "아흔")
_ATTRIBUTIVE: Mapping[str, str] = MappingProxyType(
    {"하나": "한", "둘": "두", "셋": "세", "넷": "네", "스물": "스무"}
)
"""Native numbers shortened before a counter: 하나 -> 한 (한 개), 스물 -> 스무 (스무 살)."""

MONTHS: Mapping[int, str] = MappingProxyType({6: "유", 10: "시"})
"""Months whose sino-Korean reading is irregular: 유월 (June), 시월 (October)."""

NATIVE_COUNTERS = (
    "시간", "시", "살", "개", "명", "사람", "마리", "번째", "번", "권", "잔", "병",
    "장", "그루", "송이", "켤레", "벌", "대", "척", "채", "곳", "가지", "군데", "달", "쌍",
    "줄", "통", "알", "끼", "판", "자루", "방울", "걸음", "곡", "박스", "봉지", "접시",
)  # fmt: skip
"""Counters read with native numbers (longest first where one is a prefix of another)."""

SINO_BEFORE_NATIVE = ("개월",)
"""Sino-Korean counters that begin like a native one (삼개월, not 세개월)."""

_DIGITS_GROUPED = r"\d{1,3}(?:,\d{3})+|\d+"
_NUMBER = re.compile(rf"(?<![\d.,])(?P<minus>-)?(?P<int>{_DIGITS_GROUPED})(?:\.(?P<frac>\d+))?")
_NATIVE_AFTER = re.compile(rf"\s?(?:{'|'.join(sorted(NATIVE_COUNTERS, key=len, reverse=True))})")
_TIME = re.compile(r"(?<!\d)(?P<h>[01]?\d|2[0-3]):(?P<m>[0-5]\d)(?::(?P<s>[0-5]\d))?(?!\d)")
_DATE = re.compile(
    r"(?<!\d)(?P<y>\d{4})[.\-/](?P<mo>0?[1-9]|1[0-2])[.\-/](?P<d>0?[1-9]|[12]\d|3[01])\.?(?!\d)"
)
_MONTH = re.compile(r"(?<![\d.])(?P<mo>\d{1,2})\s?월")
_PHONE = re.compile(r"(?<!\d)(?P<number>0\d{1,2}-\d{3,4}-\d{4})(?!\d)")
_PERCENT = re.compile(r"(?P<n>\d+(?:\.\d+)?)\s?%")
_WON = re.compile(r"₩\s?(?P<n>\d{1,3}(?:,\d{3})+|\d+)")

UNITS: Mapping[str, str] = MappingProxyType(
    {
        "km": "킬로미터", "cm": "센티미터", "mm": "밀리미터", "m": "미터",
        "kg": "킬로그램", "mg": "밀리그램", "g": "그램", "ml": "밀리리터", "l": "리터",
        "°C": "도", "℃": "도",
    }
)  # fmt: skip
"""Unit symbols read after a number, with sino-Korean numbers."""

_UNIT = re.compile(
    r"(?P<n>\d+(?:\.\d+)?)\s?(?P<unit>"
    + "|".join(re.escape(u) for u in sorted(UNITS, key=len, reverse=True))
    + r")(?![A-Za-z])"
)


def sino_korean(number: int) -> str:
    """``number`` in sino-Korean words: 2023 -> 이천이십삼, 10000 -> 만, 0 -> 영.

    A leading 일 is dropped before 십, 백, 천 and 만 (십, 백, 천, 만), as Koreans say them.
    """
    if number < 0:
        return "마이너스 " + sino_korean(-number)
    if number == 0:
        return SINO_DIGITS[0]
    groups = []
    index = 0
    while number:
        number, group = divmod(number, 10_000)
        if group:
            if index >= len(_GROUP_NAMES):
                raise ValueError("number too large to read")
            words = _below_10000(group)
            if words == "일" and index == 1:  # 10000 is 만, not 일만
                words = ""
            groups.append(words + _GROUP_NAMES[index])
        index += 1
    return "".join(reversed(groups))


def _below_10000(number: int) -> str:
    words = []
    for value, name in _SINO_UNITS:
        digit, number = divmod(number, value)
        if digit:
            words.append(("" if digit == 1 else SINO_DIGITS[digit]) + name)
    if number:
        words.append(SINO_DIGITS[number])
    return "".join(words)


def native_korean(number: int, *, attributive: bool = False) -> str:
    """``number`` (1-99) in native Korean: 3 -> 셋, 21 -> 스물하나; ``attributive`` gives
    the form before a counter (세, 스물한, 스무). Outside 1-99: sino-Korean."""
    if not 1 <= number <= 99:
        return sino_korean(number)
    tens, ones = divmod(number, 10)
    ten, one = _NATIVE_TENS[tens], _NATIVE_ONES[ones]
    if attributive:
        if one:
            one = _ATTRIBUTIVE.get(one, one)
        else:
            ten = _ATTRIBUTIVE.get(ten, ten)
    return ten + one


def read_digits(digits: str) -> str:
    """Digit by digit, 0 as 공: "010" -> 공일공 (phone numbers, codes)."""
    return "".join("공" if d == "0" else SINO_DIGITS[int(d)] for d in digits)


def _decimal(integer: str, fraction: str | None) -> str:
    words = sino_korean(int(integer.replace(",", "")))
    if fraction:
        words += " 점 " + "".join(SINO_DIGITS[int(d)] for d in fraction)
    return words


def _speak_date(match: re.Match[str]) -> str:
    month = int(match["mo"])
    return (
        f"{sino_korean(int(match['y']))}년 {MONTHS.get(month, sino_korean(month))}월 "
        f"{sino_korean(int(match['d']))}일"
    )


def _speak_time(match: re.Match[str]) -> str:
    hour = int(match["h"])
    words = f"{native_korean(hour, attributive=True) if hour else SINO_DIGITS[0]} 시"
    if int(match["m"]):
        words += f" {sino_korean(int(match['m']))} 분"
    if match["s"] and int(match["s"]):
        words += f" {sino_korean(int(match['s']))} 초"
    return words


def _speak_month(match: re.Match[str]) -> str:
    month = int(match["mo"])
    name = MONTHS.get(month, sino_korean(month)) if 1 <= month <= 12 else sino_korean(month)
    return match[0].replace(match["mo"], name, 1)


def _speak_number(match: re.Match[str]) -> str:
    text = match.string
    integer, fraction = match["int"], match["frac"]
    value = int(integer.replace(",", ""))
    after = _NATIVE_AFTER.match(text, match.end())
    if after and text.startswith(SINO_BEFORE_NATIVE, match.end()):
        after = None
    if after and fraction is None and not match["minus"] and 1 <= value <= 99:
        if value == 1 and after[0].strip() == "번째":
            return "첫"  # 1번째 -> 첫번째
        return native_korean(value, attributive=True)
    try:
        words = _decimal(integer, fraction)
    except ValueError:  # beyond 경 (10^20): read digit by digit
        return read_digits(integer.replace(",", ""))
    return f"마이너스 {words}" if match["minus"] else words


def expand_korean(text: str) -> str:
    """``text`` with its numbers, dates, times, phone numbers, percentages, money and units
    read out in Hangul."""
    text = _PHONE.sub(lambda m: " ".join(read_digits(p) for p in m["number"].split("-")), text)
    text = _DATE.sub(_speak_date, text)
    text = _TIME.sub(_speak_time, text)
    text = _WON.sub(lambda m: f"{sino_korean(int(m['n'].replace(',', '')))}원", text)
    text = _PERCENT.sub(lambda m: f"{_decimal(*_split_decimal(m['n']))} 퍼센트", text)
    text = _UNIT.sub(lambda m: f"{_decimal(*_split_decimal(m['n']))} {UNITS[m['unit']]}", text)
    text = _MONTH.sub(_speak_month, text)
    return _NUMBER.sub(_speak_number, text)


def _split_decimal(number: str) -> tuple[str, str | None]:
    integer, _, fraction = number.partition(".")
    return integer, fraction or None

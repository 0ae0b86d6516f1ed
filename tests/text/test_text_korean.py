"""Korean expansion: sino-Korean vs native numbers, dates, times, money, units; and the
whole normalization for a voice whose symbols are Hangul syllables."""

from __future__ import annotations

import pytest

from voicepocket.errors import EmptyText
from voicepocket.text import EXPANDERS, expand, expand_korean, normalize, prepare
from voicepocket.text.korean import native_korean, read_digits, sino_korean

HANGUL_VOICE = frozenset(chr(c) for c in range(0xAC00, 0xD7A4)) | set(" .,!?")


@pytest.mark.parametrize(
    ("number", "words"),
    [
        (0, "영"), (1, "일"), (10, "십"), (11, "십일"), (21, "이십일"), (100, "백"),
        (110, "백십"), (1000, "천"), (2023, "이천이십삼"), (10_000, "만"), (10_001, "만일"),
        (12_000, "만이천"), (35_000, "삼만오천"), (100_000_000, "일억"),
        (123_456_789, "일억이천삼백사십오만육천칠백팔십구"), (10**12, "일조"), (-5, "마이너스 오"),
    ],
)  # fmt: skip
def test_sino_korean(number: int, words: str) -> None:
    assert sino_korean(number) == words


@pytest.mark.parametrize(
    ("number", "plain", "before_counter"),
    [
        (1, "하나", "한"), (2, "둘", "두"), (3, "셋", "세"), (4, "넷", "네"), (5, "다섯", "다섯"),
        (10, "열", "열"), (11, "열하나", "열한"), (20, "스물", "스무"), (21, "스물하나", "스물한"),
        (34, "서른넷", "서른네"), (99, "아흔아홉", "아흔아홉"),
    ],
)  # fmt: skip
def test_native_korean(number: int, plain: str, before_counter: str) -> None:
    assert native_korean(number) == plain
    assert native_korean(number, attributive=True) == before_counter


def test_native_beyond_99_is_sino() -> None:
    assert native_korean(100) == "백"


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        # Dates: sino-Korean, with the irregular months 유월 and 시월.
        ("2023년 5월 3일", "이천이십삼년 오월 삼일"),
        ("6월 10일과 10월 1일", "유월 십일과 시월 일일"),
        ("2023-05-03", "이천이십삼년 오월 삼일"),
        ("2024.6.25.", "이천이십사년 유월 이십오일"),
        # Seconds and minutes: sino; hours: native.
        ("21초", "이십일초"),
        ("3시 30분", "세시 삼십분"),
        ("14:05", "열네 시 오 분"),
        ("0시 5분", "영시 오분"),
        # Counters of things, people, ages: native, attributive forms.
        ("사과 3개와 우유 2병", "사과 세개와 우유 두병"),
        ("학생 4명", "학생 네명"),
        ("20살, 21살", "스무살, 스물한살"),
        ("1번째와 2번째", "첫번째와 두번째"),
        ("3 마리", "세 마리"),
        ("5시간", "다섯시간"),
        # Large counts fall back to sino-Korean.
        ("100명", "백명"),
        # Money, percentages, units, decimals, negatives: sino.
        ("3,500원", "삼천오백원"),
        ("₩12,000", "만이천원"),
        ("50% 할인", "오십 퍼센트 할인"),
        ("3.5km", "삼 점 오 킬로미터"),
        ("영하 -5도", "영하 마이너스 오도"),
        ("3개월", "삼개월"),
        # Digit strings: one by one, zero as 공.
        ("010-1234-5678", "공일공 일이삼사 오육칠팔"),
        # No number: unchanged.
        ("안녕하세요.", "안녕하세요."),
    ],
)
def test_expand_korean(text: str, spoken: str) -> None:
    assert expand_korean(text) == spoken


def test_korean_is_an_expander() -> None:
    assert EXPANDERS["ko"] is expand_korean
    assert expand("3개", language="ko-KR") == "세개"
    assert expand("3개", language="ko_KR") == "세개"


def test_normalize_for_a_hangul_voice_keeps_hangul_drops_the_rest() -> None:
    text = "2023년 5월 3일, ABC 회의는 21초 만에 끝났다! 😀"
    assert normalize(text, symbols=HANGUL_VOICE, language="ko") == (
        "이천이십삼년 오월 삼일, 회의는 이십일초 만에 끝났다!"
    )


def test_prepare_splits_korean_sentences() -> None:
    chunks = prepare(
        "오늘은 친구들과 3시에 공원에서 만났습니다. 내일은 10시에 도서관 앞에서 만나요!",
        symbols=HANGUL_VOICE,
        max_chunk_chars=300,
        language="ko",
    )
    assert chunks == [
        "오늘은 친구들과 세시에 공원에서 만났습니다.",
        "내일은 열시에 도서관 앞에서 만나요!",
    ]


def test_nothing_speakable_is_empty_text() -> None:
    with pytest.raises(EmptyText):
        normalize("Hello 😀", symbols=HANGUL_VOICE, language="ko")


def test_decomposed_jamo_compose_to_syllables() -> None:
    decomposed = "\u1112\u1161\u11ab\u1100\u1173\u11af"  # 한글 as conjoining jamo
    assert normalize(decomposed, symbols=HANGUL_VOICE, language="ko") == "한글"


def test_read_digits() -> None:
    assert read_digits("0109") == "공일공구"

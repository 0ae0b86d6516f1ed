"""Our torch-free port of coqui's tokenizer gives coqui's ids, for every cleaner we support,
with and without blanks and bos/eos, for both character classes, on awkward text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from coqui_support import run_coqui

from voicepocket.voices.coqui_config import CoquiManifest
from voicepocket.voices.coqui_text import CLEANERS

ENGLISH = [
    "Hello, World!",
    "Dr. Smith paid $1,234.56 to Mr. Jones & Co. at 10:05 pm on the 21st.",
    "It was 1999, then 2005, then 2000; the year 1500 and 2013 (really).",
    "Temperatures fell to -5, then 3.14 \"degrees\" [sic] <tag>.",
    "£3.50, ¥2000 and $0.99, or 12 nights at 7:30am; 12:00.",
    "  Many   spaces\tand\nnewlines  ",
    "Café naïve façade — ünïcödé; semi;colons: and-hyphens.",
    "Capt. Lt. Sgt. St. Ft. Hon. Rev. Esq. Ltd. Jr. Maj. Gen. Col. Drs. Mrs.",
    "A number too big: 123456789012345678901234567890123456789.",
    "😀 emoji, 한국어 and Ελληνικά mixed in.",
]
KOREAN = [
    "안녕하세요, 만나서 반갑습니다!",
    "오늘은 2023년 5월 3일; 날씨-맑음: (좋음) & \"최고\".",
    "ABC 한글 섞인 문장이에요?",
    "\u1112\u1161\u11ab\u1100\u1173\u11af 자모도 NFC로.",
]

VARIANTS = [
    {"language": "en", "overrides": {"text_cleaner": cleaner}}
    for cleaner in [None, *CLEANERS]
] + [
    {"language": "en", "overrides": {"text_cleaner": "english_cleaners", "add_blank": False}},
    {"language": "en", "overrides": {"text_cleaner": "basic_cleaners",
                                     "enable_eos_bos_chars": True}},
    {"language": "en", "overrides": {"text_cleaner": "english_cleaners", "add_blank": False,
                                     "enable_eos_bos_chars": True}},
    {"language": "en", "overrides": {"text_cleaner": "english_cleaners", "languages": ["en-us"]}},
    {"language": "en", "overrides": {"text_cleaner": "english_cleaners", "languages": ["de"]}},
    {"language": "ko", "overrides": {}},
    {"language": "ko", "overrides": {"text_cleaner": "multilingual_cleaners"}},
    {"language": "ko", "overrides": {"add_blank": False}},
]  # fmt: skip


@pytest.fixture(scope="module")
def coqui_answers(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    jobs = [
        {**variant, "texts": KOREAN + ENGLISH[:2] if variant["language"] == "ko" else ENGLISH}
        for variant in VARIANTS
    ]
    path: Path = tmp_path_factory.mktemp("tokenize") / "jobs.json"
    path.write_text(json.dumps(jobs))
    return [{**job, **answer} for job, answer in zip(jobs, run_coqui("tokenize", str(path)),
                                                      strict=True)]  # fmt: skip


@pytest.mark.parametrize("index", range(len(VARIANTS)), ids=lambda i: json.dumps(VARIANTS[i]))
def test_ids_equal_coquis(coqui_answers: list[dict], index: int) -> None:
    answer = coqui_answers[index]
    tokenizer = CoquiManifest.from_dict(answer["manifest"]).tokenizer()
    for text, expected in zip(answer["texts"], answer["ids"], strict=True):
        assert tokenizer.text_to_ids(text) == expected, text


def test_variants_really_differ(coqui_answers: list[dict]) -> None:
    """The variants exercise different paths (not all the same ids)."""
    first_texts = {json.dumps(answer["ids"][1]) for answer in coqui_answers}
    assert len(first_texts) >= 6


def manifest(vocab: list[str], language: str | None) -> CoquiManifest:
    return CoquiManifest(
        sample_rate=22050, vocab=tuple(vocab), pad="<PAD>", blank="<BLNK>", bos=None,
        eos=None, blank_id=len(vocab) - 1, bos_id=len(vocab), eos_id=len(vocab),
        add_blank=True, use_eos_bos=False, text_cleaner="basic_cleaners", language=language,
        noise_scale=0.667, length_scale=1.0, noise_scale_dp=1.0, trim_silence=None,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("vocab", "language", "text_language"),
    [
        (["<PAD>", " ", "가", "나", "<BLNK>"], "ko", "ko"),
        (["<PAD>", " ", "가", "나", "<BLNK>"], "en", "ko"),  # coqui's fallback name
        (["<PAD>", " ", "가", "나", "<BLNK>"], None, "ko"),
        (["<PAD>", " ", "a", "가", "<BLNK>"], "en-us", "en"),
        (["<PAD>", " ", "a", "b", "<BLNK>"], None, "en"),
        (["<PAD>", " ", "a", "b", "<BLNK>"], "de", "de"),
    ],
)
def test_text_language(vocab: list[str], language: str | None, text_language: str) -> None:
    assert manifest(vocab, language).text_language == text_language


def test_symbols_leave_out_special_tokens() -> None:
    assert manifest(["<PAD>", " ", "가", "나", "<BLNK>"], "ko").symbols == {" ", "가", "나"}

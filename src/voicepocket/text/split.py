"""Splitting normalized text into chunks: one sentence each, none longer than a limit."""

from __future__ import annotations

import re

_CLOSERS = (
    r"[\"'\u201d\u2019)\]\u300d\u300f]*"  # closing quotes (straight, curly, CJK) and brackets
)
_STOPS = r"[.!?\u2026]+"  # . ! ? and the ellipsis
_CJK_STOPS = r"[\u3002\uff01\uff1f]+"  # ideographic full stop, fullwidth ! and ?

SENTENCE_END = re.compile(rf"{_STOPS}{_CLOSERS}(?=\s|$)|{_CJK_STOPS}{_CLOSERS}")
"""The end of a sentence, closing quotes and brackets included. ASCII stops need a space (or
the end) after them, so "3.14" and "example.com" stay whole; CJK stops do not, as CJK text
has no spaces."""

_CLAUSE_MARKS = r"[,;:)\]]+[\"'\u201d\u2019]?(?=\s)"  # , ; : ) ] before a space
_SPACED_DASH = r"\s[-\u2013\u2014](?=\s)"  # a hyphen, en or em dash with spaces around
_DASH = r"[\u2013\u2014]"  # en and em dashes, even unspaced
_CJK_CLAUSE_MARKS = (
    r"[\uff0c\u3001\uff1b\uff1a]"  # fullwidth comma, ideographic comma, fullwidth ; and :
)

CLAUSE_END = re.compile(f"{_CLAUSE_MARKS}|{_SPACED_DASH}|{_DASH}|{_CJK_CLAUSE_MARKS}")
"""The end of a clause, where a long sentence may be cut: after , ; : ) ] and dashes."""

SHORT_SENTENCE_CHARS = 20
"""Sentences shorter than this ("Yes.", "Hi there!") join the next one: alone they make a
choppy stream and cost a model call each for a fraction of a second of audio."""


def split_sentences(text: str) -> list[str]:
    """``text`` cut after each sentence end, each piece stripped; nothing else is changed."""
    sentences: list[str] = []
    start = 0
    for end in SENTENCE_END.finditer(text):
        _append_stripped(sentences, text[start : end.end()])
        start = end.end()
    _append_stripped(sentences, text[start:])
    return sentences


def _append_stripped(pieces: list[str], piece: str) -> None:
    if stripped := piece.strip():
        pieces.append(stripped)


def split_chunks(
    text: str, *, max_chunk_chars: int, first_chunk_chars: int | None = None
) -> list[str]:
    """Cut normalized ``text`` into the chunks a voice speaks one at a time, in order.

    One sentence per chunk; a sentence shorter than ``SHORT_SENTENCE_CHARS`` joins the next
    when the two fit together. A sentence over ``max_chunk_chars`` is cut at clause ends, a
    clause still too long at the last space before the limit, and a word still too long
    anywhere. If ``first_chunk_chars`` is given, the first sentence opens with a ramp of
    chunks, each cut at a clause end or space (never inside a word: no cut if there is
    none) to at most ``first_chunk_chars``, then ``RAMP`` times the one before: the first
    audio comes back sooner, and each chunk is synthesized before the one before it has
    finished playing. No chunk is ever longer than ``max_chunk_chars``, and joining the
    chunks with spaces gives back ``text`` up to whitespace.
    """
    if max_chunk_chars < 1:
        raise ValueError(f"max_chunk_chars must be at least 1, not {max_chunk_chars}.")
    if first_chunk_chars is not None and first_chunk_chars < 1:
        raise ValueError(f"first_chunk_chars must be at least 1, not {first_chunk_chars}.")
    sentences = _join_short_sentences(split_sentences(text), max_chunk_chars)
    chunks: list[str] = []
    if first_chunk_chars is not None and sentences:
        chunks, sentences[0] = _ramp(sentences[0], first_chunk_chars, max_chunk_chars)
    for sentence in sentences:
        chunks.extend(split_to_fit(sentence, max_chunk_chars))
    return chunks


RAMP = 4
"""Growth of the opening chunks. Speech takes about 60 ms per character and its inference
under 10 ms at one thread, so a chunk 4 times longer is still ready in time."""


def _ramp(sentence: str, first_limit: int, max_chunk_chars: int) -> tuple[list[str], str]:
    """The opening chunks of ``sentence`` (see ``split_chunks``) and the rest of it."""
    heads: list[str] = []
    limit = min(first_limit, max_chunk_chars)
    while len(sentence) > limit and limit < max_chunk_chars:
        at = _last_break_within(sentence, limit) or _last_space_within(sentence, limit)
        if not at:
            break
        heads.append(sentence[:at].rstrip())
        sentence = sentence[at:].lstrip()
        limit = min(limit * RAMP, max_chunk_chars)
    return heads, sentence


def _join_short_sentences(sentences: list[str], max_chunk_chars: int) -> list[str]:
    joined: list[str] = []
    pending = ""
    for sentence in sentences:
        if pending and len(pending) + 1 + len(sentence) <= max_chunk_chars:
            sentence = f"{pending} {sentence}"
        elif pending:
            joined.append(pending)
        pending = sentence
        if len(pending) >= SHORT_SENTENCE_CHARS:
            joined.append(pending)
            pending = ""
    if pending:
        joined.append(pending)
    return joined


def split_to_fit(text: str, limit: int) -> list[str]:
    """``text`` cut into pieces of at most ``limit`` characters: at the last clause end that
    fits, else the last space, else anywhere."""
    pieces: list[str] = []
    while len(text) > limit:
        head, text = _cut(text, limit)
        pieces.append(head)
    if text:
        pieces.append(text)
    return pieces


def _cut(text: str, limit: int) -> tuple[str, str]:
    """The longest head of at most ``limit`` characters ending at a clause or sentence end,
    else at a space, else exactly ``limit`` characters; and the rest. Both are stripped and
    the head is never empty."""
    at = _last_break_within(text, limit) or _last_space_within(text, limit) or limit
    return text[:at].rstrip(), text[at:].lstrip()


def _last_break_within(text: str, limit: int) -> int:
    ends = [
        match.end()
        for pattern in (SENTENCE_END, CLAUSE_END)
        for match in pattern.finditer(text, 0, limit + 1)
        if match.end() <= limit
    ]
    # A break right at the start would make an empty head.
    return max((end for end in ends if text[:end].strip()), default=0)


def _last_space_within(text: str, limit: int) -> int:
    # A space at index ``limit`` still leaves a head of exactly ``limit`` characters.
    return max(text.rfind(" ", 0, limit + 1), 0)

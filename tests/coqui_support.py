"""Running coqui's side of the coqui tests: the coqui environment and ``coqui_tools.py``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from voicepocket.settings import Settings

COQUI_TOOLS = Path(__file__).resolve().parent / "coqui_tools.py"

PARITY_TEXTS = {
    "en": [
        "The quick brown fox jumps over the lazy dog.",
        "Doctor Smith paid three dollars and fifty cents on May fifth, then walked home.",
        "Well, is this (really) the voice you trained, my friend?",
    ],
    "ko": [
        "안녕하세요, 만나서 반갑습니다.",
        "오늘은 날씨가 맑고 바람이 시원해서 공원을 천천히 걸었습니다.",
        "이천이십삼년 오월 삼일에 다시 만나요!",
    ],
}
"""Single sentences (Synthesizer splits with pysbd; one sentence each keeps it out of it)."""


def coqui_python() -> Path:
    """The coqui environment's Python (``make coqui``); the coqui tests need it in CI."""
    python = Settings().coqui_python
    if not python.exists():
        pytest.fail(f"{python} is missing: run `make coqui` (make test does)")
    return python


def run_coqui(*args: str, timeout: float = 600) -> Any:
    """Run ``tests/coqui_tools.py`` in the coqui environment; its JSON answer."""
    completed = subprocess.run(
        [str(coqui_python()), str(COQUI_TOOLS), *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    if completed.returncode != 0:
        raise AssertionError(f"coqui_tools {args[0]} failed:\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])

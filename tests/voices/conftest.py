"""coqui fixtures: the coqui environment, small checkpoints saved as coqui's trainer saves
them, an engine with the English and Korean ones registered, and coqui's own reference
ids and audio (``Synthesizer.tts`` with noise 0) for the parity tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import make_settings
from coqui_support import PARITY_TEXTS, run_coqui

from voicepocket.engine import Engine
from voicepocket.registry import VoiceRecord


@pytest.fixture(scope="session")
def coqui_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """Small English and Korean VITS checkpoints + configs, a payload checkpoint, and
    another architecture's checkpoint (see ``coqui_tools.build``)."""
    out = tmp_path_factory.mktemp("coqui-checkpoints")
    made = run_coqui("build", str(out))
    return {name: [Path(p) for p in paths] for name, paths in made.items()}


@pytest.fixture(scope="session")
def coqui_engine(
    tmp_path_factory: pytest.TempPathFactory, coqui_checkpoints: dict[str, list[Path]]
) -> Iterator[tuple[Engine, dict[str, VoiceRecord]]]:
    """An engine with the English and Korean checkpoints registered (``alice/en``, ``/ko``)."""
    engine = Engine(make_settings(tmp_path_factory.mktemp("coqui-home")))
    engine.registry.migrate()
    records = {}
    for language in ("en", "ko"):
        model, config = coqui_checkpoints[language]
        records[language] = engine.add_voice(
            owner="alice", slug=language, kind="coqui", model_file=model,
            config_file=config, prewarm=False,
        )  # fmt: skip
    yield engine, records
    engine.close()


@pytest.fixture(scope="session")
def coqui_reference(
    tmp_path_factory: pytest.TempPathFactory, coqui_checkpoints: dict[str, list[Path]]
) -> dict[str, list[tuple[list[int], np.ndarray]]]:
    """coqui's ids and ``Synthesizer.tts`` audio (noise scales 0) per parity text."""
    out = tmp_path_factory.mktemp("coqui-reference")
    jobs = []
    for language, texts in PARITY_TEXTS.items():
        model, config = coqui_checkpoints[language]
        jobs.append({"checkpoint": str(model), "config": str(config), "texts": texts,
                     "out": str(out / f"{language}.npz")})  # fmt: skip
    jobs.append({**jobs[0], "texts": [" ".join(PARITY_TEXTS["en"])],
                 "out": str(out / "en-paragraph.npz")})  # fmt: skip
    (out / "jobs.json").write_text(json.dumps(jobs))
    run_coqui("reference", str(out / "jobs.json"))
    reference = {}
    for job, name in zip(jobs, ("en", "ko", "en-paragraph"), strict=True):
        arrays = np.load(job["out"])
        reference[name] = [
            (arrays[f"ids{i}"].tolist(), arrays[f"wav{i}"]) for i in range(len(job["texts"]))
        ]
    return reference

"""A real service that trains voices: a tiny coqui base built here, registered with the
CLI as ``tiny`` (English), and recordings made by the bundled joe voice."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from coqui_support import run_coqui
from server import VOICEPOCKET, Server, start_server
from training_support import TRAINING_SETTINGS, Joe


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tests' training base, saved as coqui's trainer saves (discriminator too)."""
    model, config = run_coqui("base", str(tmp_path_factory.mktemp("base") / "tiny"))
    return Path(model), Path(config)


@pytest.fixture(scope="session")
def training_server(
    tmp_path_factory: pytest.TempPathFactory, tiny_base: tuple[Path, Path]
) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("training") / "home", **TRAINING_SETTINGS)
    try:
        subprocess.run(
            [*VOICEPOCKET, "bases", "add", str(tiny_base[0]), str(tiny_base[1]),
             "--name", "tiny", "--language", "en"],
            env=running.env, check=True, capture_output=True, timeout=300,
        )  # fmt: skip
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def joe() -> Joe:
    return Joe()

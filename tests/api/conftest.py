from __future__ import annotations

from collections.abc import Iterator

import pytest
from server import Server, start_server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real service for the API tests (default settings, 2 workers)."""
    running = start_server(tmp_path_factory.mktemp("api") / "home", workers=2)
    yield running
    running.stop()

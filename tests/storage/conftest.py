"""Storage backends for the storage suite: a local folder, GCS (emulator), S3 (SeaweedFS).

``backend`` is parametrized over all three, so every test that takes it runs unchanged on
each. The two servers are session-scoped and started only if a selected test needs one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from storage.backends import BACKENDS, Backend, make_backend
from storage.servers import Server, start_gcs_emulator, start_seaweedfs


def _announce(request: pytest.FixtureRequest, server: Server) -> None:
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"[storage] {server.name} on {server.endpoint} ready in {server.started_s:.2f} s"
        )


@pytest.fixture(scope="session")
def seaweedfs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """SeaweedFS ``weed mini`` serving S3 on 127.0.0.1, for the whole session."""
    server = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    _announce(request, server)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gcs_emulator(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """gcp-storage-emulator serving the GCS JSON API on 127.0.0.1, for the whole session."""
    server = start_gcs_emulator(tmp_path_factory.mktemp("gcs-emulator"))
    _announce(request, server)
    yield server
    server.stop()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """A fresh, empty storage root on each backend in turn."""
    return make_backend(request.param, request, tmp_path)


@pytest.fixture(params=["gs", "s3"])
def remote_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """A fresh, empty storage root on each object store in turn."""
    return make_backend(request.param, request, tmp_path)

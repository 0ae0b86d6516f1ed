"""A real ``voicepocket serve`` process on a free loopback port, for API tests; and
``KeyedService``, what every running service the tests call (this one, the cluster)
shares: API keys made with the CLI, and clients that send them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import httpx
from helpers import wait_serving

VOICEPOCKET = [sys.executable, "-m", "voicepocket.cli"]
READY_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class KeyedService(ABC):
    """A running service the tests call as API-key owners: ``key(owner)`` is made once
    per owner with ``voicepocket keys create`` (as an operator would), ``client(owner)``
    sends it. Subclasses (dataclasses) hold ``env`` and ``keys`` and say where the
    service is."""

    env: dict[str, str]
    """The environment the service runs under, and the CLI makes keys under."""
    keys: dict[str, str]
    """Keys made so far, by owner."""
    client_timeout_s: ClassVar[float] = 120
    """A client's timeout, in seconds."""

    @property
    @abstractmethod
    def base_url(self) -> str:
        """What a client's relative URLs are relative to."""

    @abstractmethod
    def _transport(self) -> httpx.BaseTransport | None:
        """How a client reaches the service (``None``: httpx's own, over TCP)."""

    def key(self, owner: str) -> str:
        """A live API key for ``owner``."""
        if owner not in self.keys:
            self.keys[owner] = create_key(owner, self.env)
        return self.keys[owner]

    def client(self, owner: str | None = "alice", **options: Any) -> httpx.Client:
        """A client calling as ``owner`` (``None``: with no key)."""
        headers = {"Authorization": f"Bearer {self.key(owner)}"} if owner else {}
        return httpx.Client(
            base_url=self.base_url, transport=self._transport(), headers=headers,
            timeout=self.client_timeout_s, **options,
        )  # fmt: skip


@dataclass
class Server(KeyedService):
    home: Path
    port: int
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    log: Path
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url

    def _transport(self) -> None:
        return None

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


def create_key(owner: str, env: dict[str, str]) -> str:
    """A new API key for ``owner``, made with ``voicepocket keys create`` under ``env``."""
    created = subprocess.run(
        [*VOICEPOCKET, "keys", "create", "--owner", owner],
        env=env, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return created.stdout.strip()


def start_server(home: Path, **settings: object) -> Server:
    """Start ``voicepocket serve`` with ``VOICEPOCKET_<NAME>`` for each setting; wait ready."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEPOCKET_")}
    env.update({"VOICEPOCKET_HOME": str(home), "VOICEPOCKET_PORT": str(port)})
    env.update({f"VOICEPOCKET_{k.upper()}": str(v) for k, v in settings.items()})
    log = home.parent / f"{home.name}-server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen([*VOICEPOCKET, "serve"], env=env, stdout=sink, stderr=sink)
    server = Server(home=home, port=port, process=process, env=env, log=log)
    try:
        wait_serving(
            process,
            lambda: httpx.get(f"{server.url}/readyz", timeout=1).status_code == 200,
            timeout_s=READY_TIMEOUT_S, what="voicepocket serve", log=log,
            not_yet=(httpx.TransportError,), interval_s=0.1,
        )  # fmt: skip
    except BaseException:
        server.stop()
        raise
    return server

"""A real ``voicepocket serve`` process on a free loopback port, for API tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

VOICEPOCKET = [sys.executable, "-m", "voicepocket.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    home: Path
    port: int
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def key(self, owner: str) -> str:
        """A live API key for ``owner`` (created through the CLI, as an operator would)."""
        if owner not in self.keys:
            self.keys[owner] = create_key(owner, self.env)
        return self.keys[owner]

    def client(self, owner: str | None = "alice", **options: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.key(owner)}"} if owner else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120, **options)

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
    log = (home.parent / f"{home.name}-server.log").open("wb")
    process = subprocess.Popen([*VOICEPOCKET, "serve"], env=env, stdout=log, stderr=log)
    server = Server(home=home, port=port, process=process, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {(home.parent / f'{home.name}-server.log')}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError("server did not become ready")

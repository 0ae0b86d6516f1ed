"""One Ray Serve cluster for the session, on loopback only.

The service (``voicepocket serve --cluster auto``: Ray, Serve's HTTP proxy, 2 ingress and
2 voice-worker replicas, and a training replica that trains as the training tests do)
runs in a private network namespace (``unshare -n``, then ``lo`` up), so whatever Ray
binds, on any interface, is reachable from nowhere but that namespace. Everything the test
needs crosses over through files: PostgreSQL and Redis on Unix sockets, and the HTTP port
bridged to a Unix socket by ``netns_main.py``; ``ray_probe.py`` asks Ray from inside.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import httpx
import psycopg
import pytest
from helpers import eventually, wait_serving
from server import KeyedService
from training_support import TRAINING_SETTINGS

from voicepocket.cluster.shared import ReplicaStats, SharedState

POSTGRES_SOCKET_DIR = "/var/run/postgresql"
HERE = Path(__file__).parent
READY_TIMEOUT_S = 240

TRAINING_ENV = {
    **{f"VOICEPOCKET_{name.upper()}": str(value) for name, value in TRAINING_SETTINGS.items()
       if name.startswith("train")},
    "VOICEPOCKET_TRAIN_MIN_SECONDS": "1",
    "VOICEPOCKET_TRAIN_MAX_STEPS": "1",
}  # fmt: skip
"""The training tests' settings (a tiny base, one thread), a dataset of two prompts and
one step: what the cluster's training replica runs."""


@dataclass
class Cluster(KeyedService):
    socket: Path
    env: dict[str, str]
    shared: SharedState
    voice_cost: int
    """Resident cost of one copy of the bundled voice, in bytes."""
    pool_bytes: int
    """Each worker replica's budget, in bytes."""
    process: subprocess.Popen[bytes]
    log: Path
    keys: dict[str, str] = field(default_factory=dict)
    started_s: float = 0.0
    client_timeout_s: ClassVar[float] = 180

    @property
    def base_url(self) -> str:
        return "http://cluster"

    def _transport(self) -> httpx.HTTPTransport:
        """HTTP over the Unix socket ``netns_main.py`` bridges the namespace's port to."""
        return httpx.HTTPTransport(uds=str(self.socket))

    def replicas(self) -> list[ReplicaStats]:
        """Worker replicas' latest reports."""
        return self.shared.replicas()

    def ray_probe(self) -> dict[str, Any]:
        """What Ray runs, asked from inside the cluster's namespace (``ray_probe.py``)."""
        ports = Path(self.env["VOICEPOCKET_CLUSTER_TEMP_DIR"], "session_latest")
        port = next(ports.glob("gcs_server_port_*")).read_text().strip()
        # A local ray.init() turns token authentication on (~/.ray/auth_token, which the
        # service makes mode 600); a driver joining it does not, unless told. The instance
        # is on loopback: so is the driver's node address only with cluster mode off.
        env = {"RAY_AUTH_MODE": "token", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", **self.env}
        return self._inside([str(HERE / "ray_probe.py"), f"127.0.0.1:{port}"], env=env)

    def listeners(self) -> dict[str, Any]:
        """Every listening TCP socket in the cluster's namespace, by process, and the
        namespace's addresses (``ray_probe.py --listeners``)."""
        return self._inside([str(HERE / "ray_probe.py"), "--listeners"], env=self.env)

    def _inside(self, args: list[str], *, env: dict[str, str]) -> dict[str, Any]:
        probed = subprocess.run(
            ["nsenter", f"--net=/proc/{self.process.pid}/ns/net", "--", sys.executable, *args],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert probed.returncode == 0, probed.stderr[-4000:]
        return json.loads(probed.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _postgres_admin() -> psycopg.Connection:
    return psycopg.connect(f"host={POSTGRES_SOCKET_DIR} user=postgres dbname=postgres",
                           autocommit=True)  # fmt: skip


@pytest.fixture(scope="session")
def redis_socket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A throwaway Redis on a Unix socket only (it listens on no TCP port at all)."""
    folder = tmp_path_factory.mktemp("redis")
    sock = folder / "redis.sock"
    process = subprocess.Popen(
        ["redis-server", "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
         "--save", "", "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def started() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server did not start: it exited with {process.returncode}")
        return sock.exists()

    try:
        eventually(started, timeout_s=20, what=f"redis-server's socket {sock}")
    except BaseException:
        process.kill()
        raise
    yield sock
    process.terminate()
    process.wait(10)


@pytest.fixture(scope="session")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, redis_socket: Path, engine: object
) -> Iterator[Cluster]:
    from voicepocket.engine import Engine

    assert isinstance(engine, Engine)
    cost = engine.registry.voices.resolve("demo/joe", caller=None).cost_bytes
    # The pinned default voice plus 4.5 copies: the six test voices (6 copies) need both
    # replicas, and fit them even if Ray places four on one.
    pool_bytes = int(5.5 * cost)
    root = tmp_path_factory.mktemp("cluster")
    database = f"voicepocket_cluster_{uuid.uuid4().hex[:12]}"
    with _postgres_admin() as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    prefix = f"voicepocket-test-{uuid.uuid4().hex[:8]}:"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEPOCKET_")}
    env.update({
        "RAY_USAGE_STATS_ENABLED": "0",
        "VOICEPOCKET_HOME": str(root / "home"),
        "VOICEPOCKET_DATABASE_URL":
            f"postgresql+psycopg://postgres@/{database}?host={POSTGRES_SOCKET_DIR}",
        "VOICEPOCKET_REDIS_URL": f"unix://{redis_socket}",
        "VOICEPOCKET_REDIS_PREFIX": prefix,
        "VOICEPOCKET_POOL_BYTES": str(pool_bytes),
        "VOICEPOCKET_WORKERS": "1",
        "VOICEPOCKET_CLUSTER_WORKERS": "2",
        "VOICEPOCKET_CLUSTER_INGRESS_REPLICAS": "2",
        # 2 x 0.25 (workers) + 2 x 0.25 (ingress) + 1 (the training replica): the 2 cores
        "VOICEPOCKET_CLUSTER_WORKER_CPUS": "0.25",
        "VOICEPOCKET_CLUSTER_TRAIN_WORKERS": "1",
        **TRAINING_ENV,
        "VOICEPOCKET_CLUSTER_TEMP_DIR": str(tmp_path_factory.mktemp("ray")),
        "VOICEPOCKET_CLUSTER_OBJECT_STORE_BYTES": str(200 * 1024**2),
        "VOICEPOCKET_DRAIN_S": "5",
    })  # fmt: skip
    if "SOAK_POOL_WAIT_S" in os.environ:  # soak_worker_loss.py: a slower machine's pool wait
        env["VOICEPOCKET_POOL_WAIT_S"] = os.environ["SOAK_POOL_WAIT_S"]
    socket = root / "http.sock"
    log = root / "cluster.log"
    started = time.perf_counter()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            ["unshare", "-n", "--", sys.executable, str(HERE / "netns_main.py"), str(socket),
             "8000"],
            env=env, stdout=sink, stderr=sink, start_new_session=True,
        )  # fmt: skip
    shared = SharedState(f"unix://{redis_socket}", prefix=prefix)
    running = Cluster(socket=socket, env=env, shared=shared, voice_cost=cost,
                      pool_bytes=pool_bytes, process=process, log=log)  # fmt: skip
    try:
        _wait_ready(running)
        running.started_s = time.perf_counter() - started
        yield running
    finally:
        _stop(process)
        shared.close()
        with _postgres_admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _wait_ready(cluster: Cluster) -> None:
    """Until the service is ready and both worker replicas have reported."""
    with cluster.client(owner=None) as client:
        wait_serving(
            cluster.process,
            lambda: client.get("/readyz", timeout=2).status_code == 200
            and len(cluster.replicas()) == 2,
            timeout_s=READY_TIMEOUT_S, what="cluster", log=cluster.log,
            not_yet=(httpx.TransportError,), interval_s=0.2,
        )  # fmt: skip


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (Serve and Ray shut down), then whatever is left of the process group."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(90)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)

"""Real storage servers on 127.0.0.1 for the tests: SeaweedFS (S3) and the GCS emulator.

Each runs as a child process on free loopback ports, with its data and logs in a folder
the test session owns, and is stopped (terminated, then killed) by the fixture that
started it. Nothing binds another interface and nothing phones home.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from helpers import wait_serving

S3_KEY = "voicepocket-test"
S3_SECRET = "voicepocket-test-secret"
BUCKET = "voicepocket-test"
START_TIMEOUT_S = 60.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _bin(name: str) -> str:
    """An executable installed beside this Python (the venv's bin), else on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed: run `make test` (pip install -e '.[test]')")
    return found


@dataclass
class Server:
    """One running server process."""

    name: str
    endpoint: str
    """``http://127.0.0.1:<port>``."""

    process: subprocess.Popen[bytes]
    workdir: Path
    started_s: float = 0.0
    """Seconds from spawning to the first successful request."""

    cleanup: list[Path] = field(default_factory=list)
    """Files the server leaves outside ``workdir`` (removed after it stops)."""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for path in self.cleanup:
            path.unlink(missing_ok=True)

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """The server stopped dead (SIGSTOP): it accepts connections but never answers."""
        self.process.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self.process.send_signal(signal.SIGCONT)


def _wait_until(
    ready: Callable[[], bool], process: subprocess.Popen[bytes], log: Path, *, name: str
) -> float:
    """Seconds until ``ready()`` holds; a server that is not ready in time is killed."""
    try:
        return wait_serving(
            process, ready, timeout_s=START_TIMEOUT_S, what=name, log=log,
            not_yet=(OSError, urllib.error.URLError),
        )  # fmt: skip
    except RuntimeError:
        process.kill()
        raise


def start_seaweedfs(workdir: Path) -> Server:
    """``weed mini`` (SeaweedFS: master, volume, filer and S3 gateway in one process) with
    one bucket and one access key, every port on 127.0.0.1, telemetry off."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "data").mkdir(exist_ok=True)
    ports = {name: free_port() for name in (
        "s3", "s3.grpc", "master", "master.grpc", "volume", "volume.grpc",
        "filer", "filer.grpc", "admin", "admin.grpc",
    )}  # fmt: skip
    log = workdir / "weed.out"
    command = [
        _bin("weed"), f"-logdir={workdir}", "mini",
        f"-dir={workdir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        "-master.telemetry=false", "-webdav=false", "-admin.ui=false",
        "-s3.port.iceberg=0", "-s3.port.lance=0", "-volume.preStopSeconds=0",
        f"-s3.localSocket={workdir / 's3.sock'}", f"-filer.localSocket={workdir / 'filer.sock'}",
        *(f"-{name.replace('.grpc', '.port.grpc')}={port}" if name.endswith(".grpc")
          else f"-{name}.port={port}" for name, port in ports.items()),
    ]  # fmt: skip
    # weed mini takes its admin identity from the AWS_* variables of its own process.
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": S3_KEY,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET,
        "TMPDIR": str(workdir),
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=workdir,
            start_new_session=True,
        )  # fmt: skip
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    client = s3_client(endpoint)

    def ready() -> bool:
        with suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=BUCKET)
        client.head_bucket(Bucket=BUCKET)
        return True

    server = Server(
        name="seaweedfs",
        endpoint=endpoint,
        process=process,
        workdir=workdir,
        # Unix sockets weed puts in /tmp whatever it is told (TMPDIR included), and does
        # not always remove.
        cleanup=[
            Path(f"/tmp/seaweedfs-{name.removesuffix('.grpc')}-grpc-{port}.sock")
            for name, port in ports.items()
            if name.endswith(".grpc")
        ],
    )
    try:
        server.started_s = _wait_until(_quiet(ready), process, log, name=server.name)
    except BaseException:
        server.stop()
        raise
    return server


def s3_client(endpoint: str):  # type: ignore[no-untyped-def]
    """A boto3 client: a second, independent way to look at what the S3 server holds."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_KEY,
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
        config=Config(connect_timeout=2, read_timeout=10, retries={"total_max_attempts": 1}),
    )


def _quiet(ready: Callable[[], bool]) -> Callable[[], bool]:
    """``ready`` with any exception meaning "not yet"."""

    def attempt() -> bool:
        try:
            return bool(ready())
        except Exception:
            return False

    return attempt


def start_gcs_emulator(workdir: Path) -> Server:
    """``gcp-storage-emulator`` (the GCS JSON API, in memory) with one bucket."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = workdir / "gcs.out"
    command = [
        _bin("gcp-storage-emulator"), "-d", str(workdir / "data"), "start",
        "--host", "127.0.0.1", "--port", str(port), "--default-bucket", BUCKET, "--in-memory",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True
        )
    endpoint = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        with urllib.request.urlopen(f"{endpoint}/storage/v1/b/{BUCKET}", timeout=1) as reply:
            return bool(json.load(reply)["name"] == BUCKET)

    server = Server(name="gcs-emulator", endpoint=endpoint, process=process, workdir=workdir)
    try:
        server.started_s = _wait_until(ready, process, log, name=server.name)
    except BaseException:
        server.stop()
        raise
    return server


def gcs_object_names(endpoint: str, prefix: str) -> list[str]:
    """Names of the objects under ``prefix``, straight from the emulator's JSON API."""
    url = f"{endpoint}/storage/v1/b/{BUCKET}/o?prefix={urllib.request.quote(prefix)}"
    with urllib.request.urlopen(url, timeout=5) as reply:
        return sorted(item["name"] for item in json.load(reply).get("items", []))


class CuttingProxy:
    """A TCP proxy on 127.0.0.1 that forwards to ``upstream`` until ``cut_after`` bytes
    have gone from clients to the server, then cuts every connection and stops listening:
    the network failing in the middle of an upload, with nothing getting through after."""

    def __init__(self, upstream: str, *, cut_after: int) -> None:
        self._upstream = ("127.0.0.1", int(upstream.rsplit(":", 1)[1]))
        self._budget = cut_after
        self._lock = threading.Lock()  # guards _budget, _sockets and cut
        self._sockets: list[socket.socket] = []
        self.cut = False
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed: cut, or stopped
            server = socket.create_connection(self._upstream)
            with self._lock:
                self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, upstream: bool) -> None:
        try:
            while data := source.recv(65536):
                if upstream:
                    with self._lock:
                        allowed = max(0, min(len(data), self._budget))
                        self._budget -= len(data)
                    if allowed < len(data):
                        sink.sendall(data[:allowed])
                        self._cut()
                        return
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def _cut_locked(self) -> None:
        self.cut = True
        with suppress(OSError):
            self._listener.close()
        for sock in self._sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with suppress(OSError):
                sock.close()

    def _cut(self) -> None:
        with self._lock:
            self._cut_locked()

    def stop(self) -> None:
        self._cut()

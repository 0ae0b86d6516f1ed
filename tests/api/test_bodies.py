"""Requests cannot hold the server: without a valid key a body is refused before a byte of
it is read (401), past its route's limit it is refused as it streams in (413), a body or
headers that trickle in are cut off at their deadline (408), and connections beyond the
limit are turned away (503). Raw sockets, a real server."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator

import psutil
import pytest
from helpers import eventually
from server import Server, start_server

GIB = 1024**3
BODY_TIMEOUT_S = 2.0
HEADER_TIMEOUT_S = 2.0
MAX_CONNECTIONS = 6


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("bodies") / "home",
                           body_timeout_s=BODY_TIMEOUT_S, header_timeout_s=HEADER_TIMEOUT_S,
                           max_connections=MAX_CONNECTIONS)  # fmt: skip
    yield running
    running.stop()


def request_head(method: str, path: str, *, key: str | None, length: int | None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    if key is not None:
        lines.append(f"Authorization: Bearer {key}")
    framing = "Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}"
    lines.append(framing)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def answer_while_sending(
    server: Server, head: bytes, blocks: Iterator[bytes], *, within_s: float
) -> tuple[bytes, int]:
    """Send ``head`` then ``blocks`` until the server answers; (its first bytes, body bytes
    sent). ``b""`` if nothing came within ``within_s``."""
    sent = 0
    deadline = time.monotonic() + within_s
    with socket.create_connection(("127.0.0.1", server.port), timeout=within_s) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        for block in blocks:
            if time.monotonic() > deadline:
                return b"", sent
            try:
                return whole_answer(sock, sock.recv(65536)), sent
            except BlockingIOError:
                pass
            try:
                sock.sendall(block)
            except BlockingIOError:
                time.sleep(0.01)  # the server is not reading: wait for its answer
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(block)
        sock.setblocking(True)
        sock.settimeout(max(deadline - time.monotonic(), 0.1))
        try:
            return whole_answer(sock, sock.recv(65536)), sent
        except (TimeoutError, ConnectionResetError):
            return b"", sent


def whole_answer(sock: socket.socket, first: bytes) -> bytes:
    """``first`` and the rest of its response (head, then ``content-length`` bytes)."""
    sock.setblocking(True)
    sock.settimeout(5)
    answer = first
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(65536)
    head, _, body = answer.partition(b"\r\n\r\n")
    length = int(next((line.split(b":")[1] for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), b"0"))  # fmt: skip
    while len(body) < length:
        more = sock.recv(65536)
        if not more:
            break
        body += more
    return head + b"\r\n\r\n" + body


def zeros(block: int = 65536, *, pause_s: float = 0.0) -> Iterator[bytes]:
    while True:
        yield b"0" * block
        time.sleep(pause_s)


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/v1/audio/speech"), ("POST", "/v1/syntheses"), ("PATCH", "/v1/voices/demo/joe"),
    ("POST", "/v1/voices"), ("POST", "/v1/voices/demo/joe/samples"),
])  # fmt: skip
@pytest.mark.parametrize("key", [None, "vp-not-a-key"])
def test_without_a_valid_key_the_body_is_not_read(
    guarded: Server, method: str, path: str, key: str | None
) -> None:
    process = psutil.Process(guarded.process.pid)
    before = process.memory_info().rss
    head = request_head(method, path, key=key, length=GIB)
    answer, sent = answer_while_sending(guarded, head, zeros(), within_s=10)
    assert answer.startswith(b"HTTP/1.1 401"), (answer[:300], sent)
    assert b"API key" in answer
    assert sent < 64 * 1024**2
    assert process.memory_info().rss - before < 50 * 1024**2


def test_a_declared_oversize_body_is_refused_at_once(guarded: Server) -> None:
    head = request_head("POST", "/v1/audio/speech", key=guarded.key("hana"), length=GIB)
    answer, sent = answer_while_sending(guarded, head, zeros(), within_s=10)
    assert answer.startswith(b"HTTP/1.1 413"), (answer[:300], sent)
    assert b'"payload_too_large"' in answer


def test_a_chunked_body_is_refused_once_past_the_limit(guarded: Server) -> None:
    head = request_head("POST", "/v1/audio/speech", key=guarded.key("hana"), length=None)
    chunks = (b"%x\r\n" % len(block) + block + b"\r\n" for block in zeros())
    answer, sent = answer_while_sending(guarded, head, chunks, within_s=10)
    assert answer.startswith(b"HTTP/1.1 413"), (answer[:300], sent)
    assert sent < 8 * 1024**2


def test_a_body_sent_a_byte_a_second_is_cut_off(guarded: Server) -> None:
    head = request_head("POST", "/v1/audio/speech", key=guarded.key("hana"), length=200)
    started = time.monotonic()
    answer, sent = answer_while_sending(guarded, head, zeros(1, pause_s=1.0), within_s=10)
    assert answer.startswith(b"HTTP/1.1 408"), (answer[:300], sent)
    assert b'"request_timeout"' in answer
    assert time.monotonic() - started < BODY_TIMEOUT_S + 3
    # and the server is serving the others
    with guarded.client("hana") as hana:
        spoken = hana.post("/v1/audio/speech", json={"voice": "joe", "input": "Still here."})
    assert spoken.status_code == 200


def test_headers_sent_a_byte_a_second_are_cut_off(guarded: Server) -> None:
    head = request_head("GET", "/v1/voices", key=guarded.key("hana"), length=0)
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", guarded.port), timeout=10) as sock:
        answer = b""
        for byte in head:
            sock.sendall(bytes([byte]))
            ready = select.select([sock], [], [], 1.0)[0]
            if ready:
                answer = sock.recv(65536)
                break
        assert sock.recv(65536) == b""  # and closed
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert time.monotonic() - started < HEADER_TIMEOUT_S + 2


def test_a_connection_that_sends_nothing_is_closed(guarded: Server) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", guarded.port), timeout=10) as sock:
        assert sock.recv(65536).startswith(b"HTTP/1.1 408")
        assert sock.recv(65536) == b""
    assert time.monotonic() - started < HEADER_TIMEOUT_S + 2


def test_connections_beyond_the_limit_are_turned_away(guarded: Server) -> None:
    holders = [socket.create_connection(("127.0.0.1", guarded.port), timeout=10)
               for _ in range(MAX_CONNECTIONS)]  # fmt: skip
    try:
        with guarded.client("hana") as hana:
            assert hana.get("/v1/voices").status_code == 503
    finally:
        for holder in holders:
            holder.close()
    with guarded.client("hana") as hana:  # and once they are gone, served again
        eventually(lambda: hana.get("/v1/voices").status_code == 200, timeout_s=10,
                   what="the server to notice the closed connections")  # fmt: skip

"""Every admitted synthesis is released, however its client leaves: right after sending
(before the stream starts), mid-stream, or never reading at all. A leak would hold the
key's admission (429 for good) and, with enough keys, the whole server's."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import make_settings
from helpers import eventually, metric
from server import Server
from starlette.types import Message

from voicepocket.api.app import build_services, create_app
from voicepocket.api.state import Lifecycle, Services
from voicepocket.chunks import SynthesisParams
from voicepocket.errors import AudioTooLong
from voicepocket.synthesizer import OpenSynthesis

LEAVERS = 12
"""More requests than a key may have in flight (8): a leak of each would lock it out."""


@pytest.fixture(scope="module")
def in_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, Services]]:
    """The app and its services, built as the lifespan builds them, called directly."""
    settings = make_settings(tmp_path_factory.mktemp("release") / "home", workers=1)
    app = create_app(settings)
    services = build_services(settings)
    services.lifecycle = Lifecycle.READY
    app.state.services = services
    try:
        yield app, services
    finally:
        services.engine.close()


def _body(text: str, stream_format: str) -> bytes:
    body = {"model": "tts-1", "voice": "joe", "input": text, "response_format": "pcm",
            "stream_format": stream_format}  # fmt: skip
    return json.dumps(body).encode()


def _scope(path: str, key: str, body: bytes, *, spec_version: str) -> dict[str, object]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": spec_version},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "headers": [
            (b"host", b"test"),
            (b"authorization", f"Bearer {key}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }


async def _leave_after_sending(app: object, scope: dict[str, object], body: bytes) -> list[str]:
    """Send the body, then report the client gone at once; sending to it fails as a
    closed socket does (ASGI 2.4: ``OSError``). Returns the message types sent."""
    delivered = False
    sent: list[str] = []

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message["type"])
        if message["type"] == "http.response.body":
            raise OSError("the client closed the socket")

    try:
        await app(scope, receive, send)  # type: ignore[operator]
    except OSError:
        pass
    except Exception as error:  # Starlette's ClientDisconnect
        if type(error).__name__ != "ClientDisconnect":
            raise
    return sent


@pytest.mark.anyio
@pytest.mark.parametrize("spec_version", ["2.0", "2.4"])
@pytest.mark.parametrize("stream_format", ["audio", "sse"])
async def test_a_client_gone_before_the_stream_starts_leaks_nothing(
    in_process: tuple[object, Services], spec_version: str, stream_format: str
) -> None:
    app, services = in_process
    owner = f"leaver-{stream_format}-{spec_version.replace('.', '')}"
    _, key = services.engine.registry.keys.create(owner)
    body = _body("Gone before I listen.", stream_format)
    scope = _scope("/v1/audio/speech", key, body, spec_version=spec_version)
    for _ in range(LEAVERS):
        sent = await _leave_after_sending(app, scope, body)
        assert sent[:1] in ([], ["http.response.start"]), sent
    assert services.synthesizer.admission.admitted == 0
    assert services.residency.stats().in_use == 0
    assert "voicepocket_admitted_requests 0.0" in _metrics(services)
    # The key still has all of its slots.
    stayed = await _leave_after_sending(app, scope, body)
    assert stayed[:1] == ["http.response.start"]


def _metrics(services: Services) -> str:
    from prometheus_client import generate_latest

    return generate_latest(services.metrics.registry).decode()


def _send_and_close(server: Server, key: str, body: bytes) -> None:
    request = (
        f"POST /v1/audio/speech HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)


def _admitted(server: Server) -> float:
    with server.client(owner=None) as client:
        return metric(client, "voicepocket_admitted_requests")


@pytest.mark.parametrize("stream_format", ["audio", "sse"])
def test_clients_that_close_right_after_sending_release_their_admission(
    server: Server, stream_format: str, tmp_path: Path
) -> None:
    """Raw sockets closed right after the request: the key keeps its slots, the server
    ends with nothing admitted."""
    owner = f"mobile-{stream_format}"
    body = _body("I hang up at once.", stream_format)
    for _ in range(LEAVERS):
        _send_and_close(server, server.key(owner), body)
    eventually(lambda: _admitted(server) == 0, timeout_s=60, what="every admission released")
    with server.client(owner) as client:
        response = client.post("/v1/audio/speech", json={"voice": "joe", "input": "Still here."})
        assert response.status_code == 200, response.text


def test_audio_past_its_bound_is_refused_or_cut(in_process: tuple[object, Services]) -> None:
    """The estimate (10 characters a second) refuses what is clearly too long before any
    inference; short exclamations speak slower than that, so the per-chunk count cuts
    what the estimate let through."""
    _, services = in_process
    synthesizer = services.synthesizer

    def open_job(text: str, most_s: float) -> OpenSynthesis:
        return synthesizer.open_job(
            owner="bounded", voice="joe", text=text, fmt="pcm", params=SynthesisParams(),
            limit=4096, max_audio_s=most_s,
        )  # fmt: skip

    with pytest.raises(AudioTooLong, match="would take about"):
        open_job("A sentence of some length, clearly longer than one second.", 1.0)
    exclamations = "Hi! " * 7  # estimated 2.7 s; spoken, about 3.8 s
    job = open_job(exclamations, 3.0)
    with pytest.raises(AudioTooLong, match="ran past the limit"):
        for _ in synthesizer.audio(job):
            pass
    assert 3.0 < job.audio_s < 5.0
    assert services.residency.stats().in_use == 0

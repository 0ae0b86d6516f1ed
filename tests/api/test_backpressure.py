"""Back-pressure, fairness, cancellation on disconnect, and the SIGTERM drain."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import soundfile as sf
from helpers import eventually, metric
from server import Server, start_server

from voicepocket.admission import Admission, FairScheduler
from voicepocket.errors import RateLimited

LONG = " ".join(f"This is sentence number {n} of a long reading, spoken slowly." for n in
                range(1, 41))  # fmt: skip


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One inference worker, one queued request, one request per key."""
    running = start_server(tmp_path_factory.mktemp("tight") / "home",
                           workers=1, queue_size=1, per_key_requests=1)  # fmt: skip
    yield running
    running.stop()


def open_stream(client: httpx.Client, text: str = LONG) -> httpx.Response:
    request = client.build_request("POST", "/v1/audio/speech",
                                   json={"input": text, "voice": "joe", "response_format": "pcm"})
    response = client.send(request, stream=True)
    assert response.status_code == 200, response.read()
    return response


def test_429_per_key_and_when_the_queue_is_full(tight: Server) -> None:
    with tight.client("alice") as alice, tight.client("bob") as bob, \
            tight.client("carol") as carol:  # fmt: skip
        first = open_stream(alice)
        try:
            again = alice.post("/v1/audio/speech", json={"input": "Hi.", "voice": "joe"})
            assert again.status_code == 429
            assert again.headers["retry-after"] == "1"
            assert again.json()["error"]["type"] == "rate_limit_error"
            second = open_stream(bob)  # fills workers + queue
            try:
                full = carol.post("/v1/audio/speech", json={"input": "Hi.", "voice": "joe"})
                assert full.status_code == 429 and "busy" in full.json()["error"]["message"]
            finally:
                second.close()
        finally:
            first.close()
        eventually(lambda: metric(carol, "voicepocket_pool_leases") == 0,
                   timeout_s=60, what="every pool lease given back")  # fmt: skip
        ok = carol.post("/v1/audio/speech", json={"input": "Now it fits.", "voice": "joe"})
        assert ok.status_code == 200


def test_disconnect_cancels_the_rest_of_the_synthesis(tight: Server) -> None:
    with tight.client("dora") as dora:
        before = metric(dora, "voicepocket_chunks_synthesized_total")
        response = open_stream(dora)
        next(response.iter_raw())
        response.close()  # the client goes away after the first audio
        eventually(lambda: metric(dora, "voicepocket_pool_leases") == 0,
                   timeout_s=60, what="every pool lease given back")  # fmt: skip
        after = metric(dora, "voicepocket_chunks_synthesized_total")
    assert after - before < 10  # of 40 sentences: synthesis stopped soon after


def _send_and_leave(server: Server, key: str, body: dict[str, object]) -> socket.socket:
    payload = json.dumps(body).encode()
    head = (f"POST /v1/audio/speech HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}"
            f"\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n")
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(head.encode() + payload)
    return sock


def test_a_flac_client_that_leaves_stops_its_synthesis(tight: Server) -> None:
    """flac sends nothing before its last chunk, so only a disconnect watcher notices the
    client is gone; the synthesis stops at its next chunk (on the commit before, all 40)."""
    with tight.client("flora") as flora:
        before = metric(flora, "voicepocket_chunks_synthesized_total")
        sock = _send_and_leave(tight, tight.key("flora"),
                               {"input": LONG, "voice": "joe", "response_format": "flac"})
        eventually(lambda: metric(flora, "voicepocket_chunks_synthesized_total") > before,
                   timeout_s=60, what="the synthesis to start")  # fmt: skip
        sock.close()
        eventually(lambda: metric(flora, "voicepocket_admitted_requests") == 0,
                   timeout_s=60, what="the synthesis released")  # fmt: skip
        after = metric(flora, "voicepocket_chunks_synthesized_total")
    assert after - before < 10  # of 40 sentences


def test_audio_is_bounded_before_and_while_it_is_synthesized(tight: Server) -> None:
    """4,096 digits read out at a quarter speed would be over an hour: refused at once."""
    digits = " ".join(f"{n:09d}" for n in range(410))[:4096]
    with tight.client("greta") as greta:
        refused = greta.post("/v1/audio/speech",
                             json={"input": digits, "voice": "joe", "speed": 0.25}, timeout=30)
        assert refused.status_code == 400, refused.status_code
        error = refused.json()["error"]
        assert error["code"] == "audio_above_max_duration" and error["param"] == "input"
        assert "900 seconds" in error["message"]
        fine = greta.post("/v1/audio/speech", json={"input": LONG[:400], "voice": "joe"})
        assert fine.status_code == 200


def test_drain_on_sigterm(tmp_path_factory: pytest.TempPathFactory) -> None:
    """In-flight requests finish within the drain; what would outlast it is stopped at
    ``DRAIN_S`` (a long flac: on the commit before, the server ran it to its end)."""
    server = start_server(tmp_path_factory.mktemp("drain") / "home", drain_s=8)
    body: list[bytes] = []
    started = threading.Event()

    def in_flight() -> None:
        with server.client("eve") as eve, eve.stream("POST", "/v1/audio/speech", json={
                "input": LONG[:600], "voice": "joe", "response_format": "wav"}) as r:  # fmt: skip
            started.set()
            body.append(r.read())

    long_flac = {"input": (LONG * 2)[:4000], "voice": "joe", "response_format": "flac"}

    # frank's key is made first: the CLI takes seconds on a busy machine, and the drain
    # only lasts as long as eve's request.
    with server.client("frank") as frank:
        outlasting = _send_and_leave(server, server.key("frank"), long_flac)
        eventually(lambda: metric(frank, "voicepocket_chunks_synthesized_total") > 0,
                   timeout_s=60, what="the long synthesis to start")  # fmt: skip
        thread = threading.Thread(target=in_flight)
        thread.start()
        assert started.wait(60)
        server.process.send_signal(15)  # SIGTERM
        signalled = time.monotonic()
        eventually(lambda: frank.get("/readyz").status_code == 503,
                   timeout_s=10, what="/readyz to say draining")  # fmt: skip
        refused = frank.post("/v1/audio/speech", json={"input": "Hi.", "voice": "joe"})
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "shutting_down"
    assert refused.headers["retry-after"]
    thread.join(120)
    assert server.process.wait(60) == 0
    assert time.monotonic() - signalled < 8 + 10  # DRAIN_S, then a chunk and the exit
    info = sf.info(io.BytesIO(body[0]))
    assert info.frames > 22050 * 20  # the in-flight request finished in full
    outlasting.settimeout(5)
    answer = b"".join(iter(lambda: outlasting.recv(65536), b""))
    outlasting.close()
    assert b"200 OK" in answer.split(b"\r\n")[0]
    assert not answer.endswith(b"0\r\n\r\n")  # cut: no last chunk, never taken for whole


# -- the admission and scheduling logic itself (threads and events, no server) ---------


def test_admission_limits_per_owner_and_globally() -> None:
    admission = Admission(capacity=3, per_owner=2)
    a1, a2 = admission.admit("a"), admission.admit("a")
    with pytest.raises(RateLimited, match="this API key"):
        admission.admit("a")
    b1 = admission.admit("b")
    with pytest.raises(RateLimited, match="busy"):
        admission.admit("c")
    admission.release(a1)
    admission.release(a1)  # idempotent
    admission.admit("c")
    for ticket in (a2, b1):
        admission.release(ticket)
    assert admission.admitted == 1


def test_scheduler_hands_slots_round_robin_across_owners() -> None:
    """alice queues 4 chunks before bob's 1: bob runs second, not fifth."""
    scheduler = FairScheduler(workers=1)
    order: list[str] = []
    order_lock = threading.Lock()
    gate = threading.Event()
    holder_in = threading.Event()

    def holder() -> None:
        with scheduler.slot("holder"):
            holder_in.set()
            gate.wait(10)

    def chunk(owner: str) -> None:
        with scheduler.slot(owner), order_lock:
            order.append(owner)

    first = threading.Thread(target=holder)
    first.start()
    assert holder_in.wait(10)
    threads = []
    for owner in ["alice"] * 4 + ["bob"]:
        thread = threading.Thread(target=chunk, args=(owner,))
        thread.start()
        threads.append(thread)
        # Queued in this exact order: each waits before the next one starts.
        eventually(lambda: scheduler.waiting == len(threads), timeout_s=10,
                   what=f"{owner}'s chunk queued", interval_s=0.001)  # fmt: skip
    assert not scheduler.slot_free
    gate.set()
    for thread in [first, *threads]:
        thread.join(10)
    assert order == ["alice", "bob", "alice", "alice", "alice"]
    assert scheduler.running == 0 and scheduler.waiting == 0 and scheduler.slot_free

"""Back-pressure, fairness, cancellation on disconnect, and the SIGTERM drain."""

from __future__ import annotations

import io
import threading
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


def test_drain_on_sigterm(tmp_path_factory: pytest.TempPathFactory) -> None:
    server = start_server(tmp_path_factory.mktemp("drain") / "home")
    body: list[bytes] = []
    started = threading.Event()

    def in_flight() -> None:
        with server.client("eve") as eve, eve.stream("POST", "/v1/audio/speech", json={
                "input": LONG[:600], "voice": "joe", "response_format": "wav"}) as r:  # fmt: skip
            started.set()
            body.append(r.read())

    # frank's key is made first: the CLI takes seconds on a busy machine, and the drain
    # only lasts as long as eve's request.
    with server.client("frank") as frank:
        thread = threading.Thread(target=in_flight)
        thread.start()
        assert started.wait(60)
        server.process.send_signal(15)  # SIGTERM
        eventually(lambda: frank.get("/readyz").status_code == 503,
                   timeout_s=10, what="/readyz to say draining")  # fmt: skip
        refused = frank.post("/v1/audio/speech", json={"input": "Hi.", "voice": "joe"})
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "shutting_down"
    assert refused.headers["retry-after"]
    thread.join(120)
    assert server.process.wait(60) == 0
    info = sf.info(io.BytesIO(body[0]))
    assert info.frames > 22050 * 20  # the in-flight request finished in full


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

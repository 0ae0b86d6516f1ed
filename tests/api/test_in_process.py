"""The speech path in one process, through ``httpx.ASGITransport``, with the fake voice.

The app runs its real lifespan (services, job runner, drain) on an engine whose voices are
``fakes.FakeVoices``: the registry, admission, scheduler, encoders, output cache, archive
and job runner are all real, and every sample the voice says is known. A ``Gate`` holds
streams mid-synthesis so the test can look at what they hold; nothing sleeps.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
import httpx
import pytest
from conftest import make_settings
from fakes import FAILURE_MESSAGE, SAMPLE_RATE, SYMBOLS, FakeVoices, Gate, samples_of, tone
from fastapi import FastAPI
from helpers import eventually

from voicepocket import audio
from voicepocket.api.app import build_services, create_app
from voicepocket.api.state import Services
from voicepocket.chunks import AudioChunk
from voicepocket.engine import Engine
from voicepocket.settings import Settings
from voicepocket.text import prepare

SPEECH = "/v1/audio/speech"
WAV_HEADER_BYTES = 44
"""A streamed ``wav``'s RIFF header; its samples follow."""
NO_STORE = {"Cache-Control": "no-store"}
"""Synthesize, and keep the result out of the output cache."""

BOOK = (
    "The keeper climbed the stairs at dusk. He counted every step on the way. "
    "At the top he lit the lamp for the ships. Some nights the fog hid the water. "
    "On those nights he rang the bell until morning."
)
"""Five sentences: five chunks, whatever the chunking."""


@dataclass
class InProcess:
    """The app, its services and its fake voices, for the whole module."""

    app: FastAPI
    services: Services
    voices: FakeVoices
    keys: dict[str, str] = field(default_factory=dict)

    def client(self, owner: str) -> httpx.AsyncClient:
        """A client calling the app in this process as ``owner``."""
        if owner not in self.keys:
            _, self.keys[owner] = self.services.engine.registry.keys.create(owner)
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url="http://in-process",
            headers={"Authorization": f"Bearer {self.keys[owner]}"},
            timeout=30,
        )


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    """The app's lifespan, run on a portal's event loop for the module: two inference
    workers, two requests per key."""
    settings = make_settings(
        tmp_path_factory.mktemp("in-process") / "home", workers=2, per_key_requests=2
    )

    def build(settings: Settings) -> Services:
        engine = Engine(settings, voices=lambda registry: FakeVoices(registry))
        engine.start(prewarm=True, demo_key=False)
        return build_services(settings, engine=engine)

    app = create_app(settings, build=build)
    with (
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(app.router.lifespan_context(app)),
    ):
        services: Services = app.state.services
        voices = services.engine.voices
        assert isinstance(voices, FakeVoices)
        yield InProcess(app=app, services=services, voices=voices)


@pytest.fixture
def fake(running: InProcess) -> Iterator[FakeVoices]:
    """The module's fake voices, without a gate or a failure after the test."""
    yield running.voices
    running.voices.reset()


async def metric(client: httpx.AsyncClient, name: str) -> float:
    for line in (await client.get("/metrics")).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split(" ")[1])
    raise AssertionError(f"no metric {name}")


async def eventually_async(
    probe: Callable[[], Coroutine[Any, Any, object]], *, timeout_s: float, what: str
) -> float:
    """``eventually`` for a probe that awaits: polled from a worker thread, each try run
    on this event loop."""
    return await anyio.to_thread.run_sync(
        lambda: eventually(lambda: anyio.from_thread.run(probe), timeout_s=timeout_s, what=what)
    )


def speech(text: str, fmt: str = "wav") -> dict[str, object]:
    return {"model": "tts-1", "voice": "joe", "input": text, "response_format": fmt}


def assert_released(running: InProcess) -> None:
    """Nothing admitted, no stream open, no lease held."""
    assert running.services.synthesizer.admission.admitted == 0
    assert running.voices.open_streams == 0
    assert running.services.residency.stats().in_use == 0


# -- the synthesizer -------------------------------------------------------------------


@pytest.mark.anyio
async def test_speech_streams_exactly_the_fakes_samples(
    running: InProcess, fake: FakeVoices
) -> None:
    text = "Hello there. This is the fake voice, speaking in sines."
    async with running.client("sam") as client:
        before = len(fake.spoken)
        response = await client.post(SPEECH, json=speech(text), headers=NO_STORE)
        assert response.status_code == 200, response.text
        assert response.headers["x-voice"] == "demo/joe"
        chunks = fake.spoken[before:]
        # Nothing was queued, so the first chunk was the short one.
        assert chunks == prepare(text, symbols=SYMBOLS, max_chunk_chars=300, first_chunk_chars=16)
        assert len(chunks) == 2
        pcm16 = audio.float_to_pcm16(samples_of(chunks))
        assert len(response.content) == WAV_HEADER_BYTES + len(pcm16)
        assert response.content[WAV_HEADER_BYTES:] == pcm16

        before = len(fake.spoken)
        raw = await client.post(SPEECH, json=speech(text, "pcm"), headers=NO_STORE)
        assert raw.status_code == 200, raw.text
        frames = len(samples_of(fake.spoken[before:]))
        # pcm is 24 kHz: the fake's 22.05 kHz resampled, to within a frame.
        assert abs(len(raw.content) / 2 - frames * audio.PCM_RATE / SAMPLE_RATE) <= 1

        unknown = await client.post(SPEECH, json={**speech(text), "voice": "nobody/x"})
        assert unknown.status_code == 404  # resolved by the real registry
    assert_released(running)


@pytest.mark.anyio
async def test_429_while_held_streams_hold_the_keys_slots(
    running: InProcess, fake: FakeVoices
) -> None:
    gate = fake.gate = Gate(at=1)
    held: list[httpx.Response] = []
    async with running.client("hal") as hal:

        async def hold() -> None:
            held.append(await hal.post(SPEECH, json=speech(BOOK), headers=NO_STORE))

        async with anyio.create_task_group() as group:
            try:
                group.start_soon(hold)
                group.start_soon(hold)
                assert await anyio.to_thread.run_sync(lambda: gate.wait_held(2, timeout_s=10))
                assert running.services.synthesizer.admission.admitted == 2
                assert fake.open_streams == 2
                refused = await hal.post(SPEECH, json=speech("One more, please."))
                assert refused.status_code == 429, refused.text
                assert refused.headers["retry-after"] == "1"
                error = refused.json()["error"]
                assert error["type"] == "rate_limit_error" and "this API key" in error["message"]
            finally:
                gate.open()
        assert [r.status_code for r in held] == [200, 200]
        assert all(len(r.content) > WAV_HEADER_BYTES for r in held)
        assert_released(running)
        again = await hal.post(SPEECH, json=speech("My slots are back."))
        assert again.status_code == 200, again.text
    assert_released(running)


# -- the output cache ------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_output_cache_answers_identical_requests(
    running: InProcess, fake: FakeVoices
) -> None:
    body = speech("Say it once, hear it twice.")
    async with running.client("cora") as client:
        first = await client.post(SPEECH, json=body)
        assert first.status_code == 200, first.text
        etag, spoken = first.headers["etag"], len(fake.spoken)
        hits = await metric(client, "voicepocket_output_cache_hits_total")

        second = await client.post(SPEECH, json=body)
        assert second.status_code == 200 and second.headers["etag"] == etag
        assert second.content == first.content
        assert len(fake.spoken) == spoken  # the voice was not asked again
        assert await metric(client, "voicepocket_output_cache_hits_total") == hits + 1

        unchanged = await client.post(SPEECH, json=body, headers={"If-None-Match": etag})
        assert unchanged.status_code == 304 and unchanged.content == b""
        assert len(fake.spoken) == spoken

        fresh = await client.post(SPEECH, json=body, headers={"Cache-Control": "no-cache"})
        assert fresh.status_code == 200 and fresh.headers["etag"] == etag
        assert len(fake.spoken) > spoken and fresh.content == first.content
        assert await metric(client, "voicepocket_output_cache_hits_total") == hits + 1

        private = speech("Keep this one out of the cache.")
        kept_out = await client.post(SPEECH, json=private, headers=NO_STORE)
        assert kept_out.status_code == 200
        spoken = len(fake.spoken)
        again = await client.post(SPEECH, json=private)
        assert again.status_code == 200 and again.content == kept_out.content
        assert len(fake.spoken) > spoken  # synthesized again: nothing was stored
        assert await metric(client, "voicepocket_output_cache_hits_total") == hits + 1
    assert_released(running)


# -- the job runner --------------------------------------------------------------------


async def wait_for_job(client: httpx.AsyncClient, job_id: str) -> dict[str, object]:
    """The job once it is done or failed (the runner works in its own thread)."""
    last: dict[str, object] = {}

    async def finished() -> bool:
        last.update((await client.get(f"/v1/jobs/{job_id}")).json())
        return last["status"] in {"done", "failed"}

    await eventually_async(finished, timeout_s=10, what=f"job {job_id} to end")
    return last


@pytest.mark.anyio
async def test_an_async_synthesis_runs_through_the_job_runner(
    running: InProcess, fake: FakeVoices
) -> None:
    async with running.client("jo") as client:
        before = len(fake.spoken)
        response = await client.post("/v1/syntheses", json={**speech(BOOK), "async": True})
        assert response.status_code == 202, response.text
        job = await wait_for_job(client, response.json()["id"])
        assert job["status"] == "done", job
        # A job has no short first chunk.
        chunks = prepare(BOOK, symbols=SYMBOLS, max_chunk_chars=300)
        assert fake.spoken[before:] == chunks
        assert job["chunks_done"] == job["chunks_total"] == len(chunks) == 5
        synthesis = (await client.get(str(job["synthesis_url"]))).json()
        stored = await client.get(synthesis["url"])
        assert stored.status_code == 200
        expected = audio.encode_all(
            [AudioChunk(samples=tone(text), sample_rate=SAMPLE_RATE, text=text) for text in chunks],
            "wav",
        )
        assert int(stored.headers["content-length"]) == len(expected) == synthesis["bytes"]
        assert stored.content == expected
        assert synthesis["duration_s"] == round(len(samples_of(chunks)) / SAMPLE_RATE, 3)
    assert_released(running)


@pytest.mark.anyio
async def test_a_job_whose_voice_fails_midway_stores_nothing(
    running: InProcess, fake: FakeVoices
) -> None:
    fake.fail_at = 2
    async with running.client("flo") as client:
        response = await client.post("/v1/syntheses", json={**speech(BOOK), "async": True})
        assert response.status_code == 202, response.text
        job = await wait_for_job(client, response.json()["id"])
        assert job["status"] == "failed", job
        assert job["error"] == FAILURE_MESSAGE
        assert job["chunks_done"] == 2 and job["synthesis_url"] is None
        listed = (await client.get("/v1/syntheses")).json()["data"]
        assert listed == []
        row = running.services.engine.registry.jobs.get(str(job["id"]), owner="flo")
        assert (await client.get(f"/v1/syntheses/{row.synthesis_id}")).status_code == 404
    objects = running.services.archive.audio.objects
    assert objects.list("flo") == [] and objects.staging_keys() == []
    assert_released(running)


# -- failures after the first byte -----------------------------------------------------


@pytest.mark.anyio
async def test_a_failure_mid_stream_is_visible_never_complete_looking_audio(
    running: InProcess, fake: FakeVoices
) -> None:
    """Once audio went out the status cannot change: SSE ends with an ``error`` event in
    OpenAI's error shape, any other body is aborted (the app raises, so the server sends
    no terminating chunk)."""
    fake.fail_at = 1
    async with running.client("fay") as client:
        events = await client.post(SPEECH, json={**speech(BOOK), "stream_format": "sse"},
                                   headers=NO_STORE)  # fmt: skip
        assert events.status_code == 200
        parsed = [json.loads(line[6:]) for line in events.text.splitlines() if line]
        assert parsed[0]["type"] == "speech.audio.delta"
        assert parsed[-1] == {"type": "error", "error": {
            "message": FAILURE_MESSAGE, "type": "server_error", "param": None,
            "code": "engine_error"}}  # fmt: skip
        assert "speech.audio.done" not in [e["type"] for e in parsed]

        # Starlette re-raises the handled error as this once the response has started:
        # the ASGI server then drops the connection without the terminating chunk.
        with pytest.raises(RuntimeError, match="response already started"):
            async with client.stream("POST", SPEECH, json=speech(BOOK, "pcm"),
                                     headers=NO_STORE) as raw:  # fmt: skip
                assert raw.status_code == 200
                async for _ in raw.aiter_bytes():
                    pass
    assert_released(running)


# -- the caller's account ----------------------------------------------------------------


@pytest.mark.anyio
async def test_quotas_usage_and_keys_over_http(running: InProcess, fake: FakeVoices) -> None:
    """Past a quota, 429 ``insufficient_quota``; ``/v1/usage`` says where the caller
    stands; a caller lists and revokes their own keys, never another's."""
    usage = running.services.engine.registry.usage
    saved = usage.quotas
    usage.quotas = dataclasses.replace(saved, syntheses=1)
    try:
        async with running.client("quinn") as quinn, running.client("rita") as rita:
            kept = await quinn.post("/v1/syntheses", json=speech("Kept."))
            assert kept.status_code == 201, kept.text
            for body in (speech("One more."), {**speech(BOOK), "async": True}):
                refused = await quinn.post("/v1/syntheses", json=body)
                assert refused.status_code == 429, refused.text
                error = refused.json()["error"]
                assert error["type"] == "insufficient_quota" and "1 of 1" in error["message"]
            assert (await rita.post("/v1/syntheses", json=speech("Mine."))).status_code == 201
            standing = (await quinn.get("/v1/usage")).json()
            assert standing["quotas"]["syntheses"] == {"used": 1, "limit": 1}
            assert standing["quotas"]["synthesis_bytes"]["used"] == kept.json()["bytes"]
            assert standing["limits"]["requests_in_flight"] == 2
            keys = (await quinn.get("/v1/keys")).json()["data"]
            assert len(keys) == 1 and set(keys[0]) >= {"id", "prefix", "created_at"}
            assert (await rita.delete(f"/v1/keys/{keys[0]['id']}")).status_code == 404
            revoked = await quinn.delete(f"/v1/keys/{keys[0]['prefix']}")
            assert revoked.status_code == 200 and revoked.json()["revoked_at"]
            assert (await quinn.get("/v1/usage")).status_code == 401
    finally:
        usage.quotas = saved

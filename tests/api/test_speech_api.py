"""POST /v1/audio/speech against a real server: formats, streaming, SSE, the openai SDK,
errors in OpenAI's shape."""

from __future__ import annotations

import base64
import io
import json
import threading

import numpy as np
import openai
import pytest
import soundfile as sf
from server import Server
from speech_check import transcribe, word_error_rate

from voicepocket import audio

SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank."
PARAGRAPH = (
    "Dr. Smith paid $3.50 on May 5th. The train leaves at 10:30 in the morning. "
    "Please call me back when you get home. About 25% of the students chose science. "
    "The meeting was moved to the second floor."
)
DETERMINISTIC = {"noise_scale": 0, "noise_w": 0}
# One short sentence through Whisper tiny: a single misheard word is 8%, and tiny sometimes
# appends "Thank you." to trailing silence. The core suite holds the voice to 10% over 80
# words; here the check is that each response is the right, unmixed speech.
SENTENCE_MAX_WER = 0.2


def heard_wer(expected: str, samples: np.ndarray, rate: int) -> float:
    return word_error_rate(expected, transcribe(samples.astype(np.float32), rate))


def decode(data: bytes, fmt: str) -> tuple[np.ndarray, int]:
    if fmt == "pcm":
        samples, rate = sf.read(io.BytesIO(data), format="RAW", subtype="PCM_16",
                                samplerate=24000, channels=1, endian="LITTLE")  # fmt: skip
        return samples, rate
    samples, rate = sf.read(io.BytesIO(data))
    return samples, rate


@pytest.mark.parametrize("fmt", audio.FORMATS)
def test_every_format_streams_decodable_speech(server: Server, fmt: str) -> None:
    with server.client() as client:
        response = client.post(
            "/v1/audio/speech",
            json={"model": "tts-1", "input": SENTENCE, "voice": "joe", "response_format": fmt},
        )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == audio.MEDIA_TYPES[fmt]
    assert response.headers["x-voice"] == "demo/joe"
    samples, _ = decode(response.content, fmt)
    assert 2.0 < len(samples) / (24000 if fmt == "pcm" else 22050) < 8.0 or fmt == "opus"


def test_streamed_body_equals_a_whole_read(server: Server) -> None:
    body = {"input": PARAGRAPH, "voice": "joe", "response_format": "wav", **DETERMINISTIC}
    fresh = {"Cache-Control": "no-cache"}  # both synthesized, neither from the cache
    with server.client() as client:
        whole = client.post("/v1/audio/speech", json=body, headers=fresh).content
        with client.stream("POST", "/v1/audio/speech", json=body, headers=fresh) as response:
            pieces = list(response.iter_raw())
    assert len(pieces) > 1  # progressive: several body chunks, not one buffer
    streamed, _ = decode(b"".join(pieces), "wav")
    np.testing.assert_array_equal(streamed, decode(whole, "wav")[0])


def test_first_bytes_leave_before_the_last_sentence_is_synthesized(server: Server) -> None:
    body = {"input": PARAGRAPH * 3, "voice": "joe", "response_format": "pcm"}
    with server.client() as client, client.stream("POST", "/v1/audio/speech", json=body) as r:
        body_parts = r.iter_raw()
        first = next(body_parts)
        metrics_during = client.get("/metrics").text
        rest = b"".join(body_parts)
    assert len(first) > 0 and len(rest) > len(first)
    chunks_then = _metric(metrics_during, "voicepocket_chunks_synthesized_total")
    with server.client() as client:
        chunks_after = _metric(client.get("/metrics").text, "voicepocket_chunks_synthesized_total")
    assert chunks_after > chunks_then  # synthesis was still going when the first bytes came


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in metrics")


def test_sse_events(server: Server) -> None:
    body = {"input": SENTENCE, "voice": "joe", "response_format": "pcm", "stream_format": "sse"}
    with server.client() as client:
        response = client.post("/v1/audio/speech", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line[6:]) for line in response.text.splitlines() if line]
    assert [e["type"] for e in events[:-1]] == ["speech.audio.delta"] * (len(events) - 1)
    assert events[-1]["type"] == "speech.audio.done"
    assert events[-1]["usage"]["input_tokens"] == len(SENTENCE)
    pcm = b"".join(base64.b64decode(e["audio"]) for e in events[:-1])
    samples, rate = decode(pcm, "pcm")
    assert heard_wer(SENTENCE, samples, rate) <= SENTENCE_MAX_WER


def test_openai_sdk_create_and_streaming(server: Server) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.key("alice"))
    response = client.audio.speech.create(
        model="gpt-4o-mini-tts", voice="joe", input=SENTENCE, response_format="wav",
        instructions="Speak cheerfully.",  # accepted and ignored
    )  # fmt: skip
    samples, rate = decode(response.read(), "wav")
    assert heard_wer(SENTENCE, samples, rate) <= SENTENCE_MAX_WER
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="demo/joe", input=PARAGRAPH, response_format="mp3", speed=1.25
    ) as streaming:
        parts = list(streaming.iter_bytes(4096))
    assert len(parts) > 1
    mp3, _ = decode(b"".join(parts), "mp3")
    assert len(mp3) > 22050 * 3
    with pytest.raises(openai.NotFoundError) as info:
        client.audio.speech.create(model="tts-1", voice="nobody/none", input="Hello.")
    assert info.value.body["code"] == "voice_not_found"  # type: ignore[index]


def test_speed_is_honoured(server: Server) -> None:
    durations = {}
    with server.client() as client:
        for speed in (0.5, 1.0, 2.0):
            response = client.post("/v1/audio/speech", json={
                "input": SENTENCE, "voice": "joe", "response_format": "wav", "speed": speed,
                **DETERMINISTIC})  # fmt: skip
            durations[speed] = len(decode(response.content, "wav")[0])
    assert durations[0.5] > durations[1.0] * 1.5 and durations[2.0] < durations[1.0] * 0.75


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"input": "", "voice": "joe"}, 400, "empty_input", "input"),
        ({"input": "🙂🙂", "voice": "joe"}, 400, "empty_input", "input"),
        ({"input": "a" * 4097, "voice": "joe"}, 400, "string_above_max_length", "input"),
        ({"input": "Hi.", "voice": "joe", "response_format": "aiff"}, 400,
         "unsupported_format", "response_format"),
        ({"input": "Hi.", "voice": "joe", "speed": 9}, 400, "invalid_request", "speed"),
        ({"input": "Hi.", "voice": "nobody/x"}, 404, "voice_not_found", "voice"),
        ({"input": "Hi.", "voice": "../../etc/passwd"}, 400, "invalid_voice_id", "voice"),
        ({"voice": "joe"}, 400, "invalid_request", "input"),
        ({"input": "Hi.", "voice": "joe", "stream_format": "ws"}, 400, "invalid_request",
         "stream_format"),
    ],
)
def test_bad_requests_get_openai_errors(
    server: Server, body: dict[str, object], status: int, code: str, param: str
) -> None:
    with server.client() as client:
        response = client.post("/v1/audio/speech", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["code"], error["param"]) == (code, param)
    assert error["message"]


def test_malformed_json_is_a_400(server: Server) -> None:
    with server.client() as client:
        response = client.post("/v1/audio/speech", content=b"{not json",
                               headers={"content-type": "application/json"})  # fmt: skip
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("authorization", [None, "Bearer nope", "Basic abc", "Bearer vp_x"])
def test_missing_or_bad_key_is_401(server: Server, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    with server.client(owner=None) as client:
        response = client.post("/v1/audio/speech", headers=headers,
                               json={"input": "Hi.", "voice": "joe"})  # fmt: skip
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_revoked_key_stops_working(server: Server) -> None:
    import subprocess

    from server import VOICEPOCKET

    key = server.key("revokee")
    with server.client("revokee") as client:
        assert client.get("/v1/voices").status_code == 200
        subprocess.run([*VOICEPOCKET, "keys", "revoke", key[:10]], env=server.env, check=True,
                       capture_output=True, timeout=60)  # fmt: skip
        assert client.get("/v1/voices").status_code == 401


def test_health_answers_while_synthesis_runs(server: Server) -> None:
    started = threading.Event()
    result: list[int] = []

    def long_request() -> None:
        with server.client() as client, client.stream("POST", "/v1/audio/speech", json={
            "input": PARAGRAPH * 4, "voice": "joe", "response_format": "pcm"}) as response:
            started.set()
            result.append(sum(len(b) for b in response.iter_raw()))

    thread = threading.Thread(target=long_request)
    thread.start()
    assert started.wait(60)
    with server.client(owner=None) as client:
        for _ in range(5):
            assert client.get("/healthz").json() == {"status": "ok"}
    thread.join(120)
    assert thread.is_alive() is False and result[0] > 0


def test_two_texts_at_once_on_one_voice_are_both_right(server: Server) -> None:
    texts = ["Please call me back when you get home tonight.",
             "The meeting was moved to the second floor of the library."]  # fmt: skip
    outputs: dict[str, bytes] = {}

    def speak(text: str) -> None:
        with server.client() as client:
            outputs[text] = client.post("/v1/audio/speech", json={
                "input": text, "voice": "joe", "response_format": "wav"}).content  # fmt: skip

    threads = [threading.Thread(target=speak, args=(t,)) for t in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for text in texts:
        samples, rate = decode(outputs[text], "wav")
        assert heard_wer(text, samples, rate) <= SENTENCE_MAX_WER


def test_metrics_expose_requests_ttfa_rtf_queue_and_pool(server: Server) -> None:
    with server.client() as client:
        client.post("/v1/audio/speech", json={"input": SENTENCE, "voice": "joe"})
        text = client.get("/metrics").text
    for name in ("voicepocket_http_requests_total", "voicepocket_http_request_seconds_bucket",
                 "voicepocket_time_to_first_audio_seconds_count",
                 "voicepocket_real_time_factor_count", "voicepocket_queue_depth",
                 "voicepocket_pool_hits_total", "voicepocket_pool_misses_total",
                 "voicepocket_pool_loads_total", "voicepocket_pool_evictions_total",
                 "voicepocket_pool_resident_bytes"):  # fmt: skip
        assert name in text, name
    assert 'route="/v1/audio/speech"' in text


def test_request_id_is_echoed(server: Server) -> None:
    with server.client(owner=None) as client:
        response = client.get("/healthz", headers={"X-Request-ID": "trace-123"})
    assert response.headers["x-request-id"] == "trace-123"


def test_identical_request_is_answered_from_the_cache(server: Server) -> None:
    body = {"input": "A sentence worth caching, said once.", "voice": "joe",
            "response_format": "opus"}  # fmt: skip
    with server.client("nina") as nina, server.client("omar") as omar:
        chunks_before = _metric(nina.get("/metrics").text, "voicepocket_chunks_synthesized_total")
        first = nina.post("/v1/audio/speech", json=body)
        etag = first.headers["etag"]
        assert first.headers["cache-control"].startswith("private, max-age=")
        middle = _metric(nina.get("/metrics").text, "voicepocket_chunks_synthesized_total")
        again = nina.post("/v1/audio/speech", json=body)
        after = _metric(nina.get("/metrics").text, "voicepocket_chunks_synthesized_total")
        assert middle > chunks_before and after == middle  # no synthesis for the repeat
        assert again.content == first.content and again.headers["etag"] == etag
        assert nina.post("/v1/audio/speech", json=body,
                         headers={"If-None-Match": etag}).status_code == 304
        # Another owner's identical request is theirs alone: synthesized, not shared.
        other = omar.post("/v1/audio/speech", json=body)
        assert other.headers["etag"] != etag
        assert _metric(nina.get("/metrics").text, "voicepocket_output_cache_hits_total") >= 1

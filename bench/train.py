"""Training, measured: seconds per step, and what a running training costs serving.

1. Seconds per optimizer step of ``voicepocket.training.coqui_train`` (the product's own
   training process, coqui's Trainer) on this CPU, for the tests' tiny base and for coqui's
   full-size VITS, on joe reading the prompts (median of the steps after the first).
2. A real ``voicepocket serve`` with a training worker: time to first audio of the warm
   default voice, one client, one sentence at a time, with no training and then with one
   running (the tiny base, ``VOICEPOCKET_TRAIN_THREADS`` at idle priority), side by side
   in one run: p50, p99 and their ratio (goal: p99 within 1.25x), and again once the
   training is cancelled, so the order of the rows is seen too.

Run: ``voicepocket bench --suite train`` (or ``python -m bench.train`` from the checkout
root with ``tests`` and ``tests/api`` on ``PYTHONPATH``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf
import soxr
from coqui_support import run_coqui
from server import VOICEPOCKET, Server, start_server
from training_support import JOE_RATE, TRAINING_SETTINGS, Joe, prompts, wav

from voicepocket.settings import Settings
from voicepocket.training.coqui_train import EVENT_PREFIX
from voicepocket.training.prompts import prompt_set

SENTENCE = "The old lighthouse keeper climbed the stairs each evening at dusk."


def dataset(folder: Path, joe: Joe, texts: list[str], rate: int) -> int:
    """Joe reading ``texts`` in coqui's LJSpeech layout at ``rate``; the train clip count."""
    (folder / "wavs").mkdir(parents=True)
    lines = []
    for i, text in enumerate(texts):
        audio = soxr.resample(joe.read(text, pad_s=0.1), JOE_RATE, rate)
        sf.write(folder / "wavs" / f"c{i}.wav", audio, rate, subtype="PCM_16")
        lines.append(f"c{i}|{text}|{text}\n")
    (folder / "metadata_train.csv").write_text("".join(lines[:-2]))
    (folder / "metadata_eval.csv").write_text("".join(lines[-2:]))
    return len(lines) - 2


def seconds_per_step(
    tmp: Path, joe: Joe, texts: list[str], *, full: bool, steps: int, threads: int
) -> list[float]:
    base = tmp / ("full" if full else "tiny")
    model, config = run_coqui("base", str(base), *(["--full"] if full else []), timeout=900)
    rate = json.loads(Path(config).read_text())["audio"]["sample_rate"]
    train_clips = dataset(base / "dataset", joe, texts, rate)
    spec = {
        "start_checkpoint": model, "base_config": config, "dataset": str(base / "dataset"),
        "run_dir": str(base / "run"), "train_clips": train_clips, "eval_clips": 2,
        "steps": steps, "checkpoint_steps": 10**6, "batch_size": train_clips,
        "learning_rate": 5e-5, "seed": 1, "threads": threads,
    }  # fmt: skip
    (base / "spec.json").write_text(json.dumps(spec))
    completed = subprocess.run(
        [str(Settings().coqui_python), "-m", "voicepocket.training.coqui_train",
         str(base / "spec.json")],
        capture_output=True, text=True, timeout=3600, check=True,
    )  # fmt: skip
    events = [json.loads(line[len(EVENT_PREFIX):]) for line in completed.stdout.splitlines()
              if line.startswith(EVENT_PREFIX)]  # fmt: skip
    return [e["step_s"] for e in events if e["event"] == "step"][1:]


def first_audio_s(client: httpx.Client) -> float:
    started = time.perf_counter()
    body = {"model": "tts-1", "voice": "joe", "input": SENTENCE, "response_format": "pcm"}
    with client.stream("POST", "/v1/audio/speech", json=body,
                       headers={"Cache-Control": "no-cache"}) as response:  # fmt: skip
        response.raise_for_status()
        blocks = response.iter_bytes()
        next(blocks)
        elapsed = time.perf_counter() - started
        for _ in blocks:
            pass
    return elapsed


def start_training(server: Server, joe: Joe) -> None:
    client = server.client("bench")
    found = prompts(server)
    assert client.post("/v1/voices/trained", json={"slug": "me", "language": "en"}).is_success
    consent = {"audio": ("c.wav", wav(joe.read(found["consent"])))}
    client.post("/v1/voices/bench/me/consent", files=consent).raise_for_status()
    for prompt in found["prompts"][:6]:
        audio = {"audio": ("s.wav", wav(joe.read(prompt["text"])))}
        client.post("/v1/voices/bench/me/samples", data={"prompt_id": prompt["id"]},
                    files=audio).raise_for_status()  # fmt: skip
    client.post("/v1/voices/bench/me/train").raise_for_status()
    deadline = time.monotonic() + 120
    while client.get("/v1/voices/bench/me").json()["training"]["step"] < 1:
        assert time.monotonic() < deadline, "the training did not start"
        time.sleep(0.5)


def p99(values: list[float]) -> float:
    return float(np.percentile(values, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60, help="requests per serving row")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (step rows)")
    parser.add_argument("--full-steps", type=int, default=3)
    parser.add_argument("--tiny-steps", type=int, default=6)
    args = parser.parse_args()
    joe = Joe()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        texts = [prompt.text for prompt in prompt_set("en").prompts[:10]]
        tiny = seconds_per_step(tmp, joe, texts, full=False, steps=args.tiny_steps,
                                threads=args.threads)  # fmt: skip
        full = seconds_per_step(tmp, joe, texts, full=True, steps=args.full_steps,
                                threads=args.threads)  # fmt: skip
        settings = {**TRAINING_SETTINGS, "train_max_steps": 100_000, "train_threads": 1}
        server = start_server(tmp / "home", **settings)
        try:
            model, config = run_coqui("base", str(tmp / "served-base"))
            subprocess.run([*VOICEPOCKET, "bases", "add", model, config, "--name", "tiny",
                            "--language", "en"], env=server.env, check=True,
                           capture_output=True)  # fmt: skip
            with server.client("bench") as client:
                first_audio_s(client)
                idle = [first_audio_s(client) for _ in range(args.runs)]
                start_training(server, joe)
                training = [first_audio_s(client) for _ in range(args.runs)]
                client.delete("/v1/voices/bench/me/train")
                time.sleep(5)  # the cancelled process is gone by its next heartbeat
                after = [first_audio_s(client) for _ in range(args.runs)]
        finally:
            server.stop()
    print(f"\n| training step ({args.threads} thread{'s' if args.threads > 1 else ''}) "
          "| median | min | max | steps |\n|---|---|---|---|---|")  # fmt: skip
    for name, times in (("tiny test base (16 kHz, segment 16)", tiny),
                        ("coqui full-size VITS (22.05 kHz)", full)):  # fmt: skip
        print(f"| {name} | {statistics.median(times):.2f} s | {min(times):.2f} s | "
              f"{max(times):.2f} s | {len(times)} |")
    print("\n| warm voice, time to first audio | p50 | p99 |\n|---|---|---|")
    rows = (("no training", idle), ("a training running", training),
            ("no training, after it was cancelled", after))
    for name, times in rows:
        median_ms, p99_ms = statistics.median(times) * 1000, p99(times) * 1000
        print(f"| {name} | {median_ms:.0f} ms | {p99_ms:.0f} ms |")
    baseline = idle + after
    print(f"\nwith a training vs without (both rows): p50 "
          f"{statistics.median(training) / statistics.median(baseline):.2f}x, p99 "
          f"{p99(training) / p99(baseline):.2f}x (goal: p99 within 1.25x); "
          f"{args.runs} requests per row")


if __name__ == "__main__":
    main()

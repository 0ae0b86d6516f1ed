"""The seed's two paths vs ours, side by side in one run, on one full-size coqui checkpoint.

A full-size VITS checkpoint (coqui-tts ``VitsConfig`` as in its LJSpeech recipe: characters,
no phonemes; random weights; saved as coqui's trainer saves it, ~330 MB with the
discriminator) is built in the coqui environment, registered with us (compiled to ONNX),
and the same sentence is spoken four ways:

(a) seed path 1: a new ``Synthesizer(tts_checkpoint, tts_config_path)`` per request, ``tts``;
(b) seed path 2: Redis GET + ``pickle.loads`` of a Synthesizer, then ``tts`` (the Redis
    server is started here on a free loopback port and stopped at the end);
(c) ours, warm: the voice resident in the pool (``engine.speak``);
(d) ours, cold: registered but not resident (the pool loads the ONNX session first).

Then what made (c) fast, step by step on the same token ids: torch inference (the seed's
model), coqui's ONNX export under onnxruntime's defaults, our session options, the 2-D
decoder (every stage, then only the stages of 64 channels or more); and the resident
memory per voice, ours vs a Synthesizer. Durations are made deterministic on every path
(duration noise 0) so that all of them synthesize the same audio length; the generator
noise keeps its default.

Run: ``voicepocket bench --suite seed`` or ``python -m bench.seed --runs 5``. Needs the
coqui environment (``make coqui``) and ``redis-server``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import psutil

from voicepocket.chunks import SynthesisParams
from voicepocket.engine import Engine
from voicepocket.settings import Settings
from voicepocket.voices import CoquiVoice

ROOT = Path(__file__).resolve().parents[1]
SENTENCE = (
    "Doctor Smith paid three dollars and fifty cents for a cup of coffee on May fifth, then "
    "walked home slowly through the quiet park while the evening light faded behind the old "
    "stone church on the hill."
)
PARAMS = SynthesisParams(noise_w=0.0)
"""Deterministic durations (see the module docstring); the seed worker does the same."""


def coqui(*args: str, python: Path) -> Any:
    completed = subprocess.run(
        [str(python), *args], capture_output=True, text=True, check=False, timeout=3600
    )
    if completed.returncode != 0:
        sys.exit(f"{args[0]} failed:\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def redis_server(folder: Path) -> Iterator[int]:
    """A throwaway redis-server on a free loopback port (never 6379), stopped afterwards."""
    executable = shutil.which("redis-server")
    if executable is None:
        sys.exit("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    process = subprocess.Popen(
        [executable, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no", "--dir", str(folder), "--protected-mode", "yes"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.perf_counter() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                if time.perf_counter() > deadline or process.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def session(path: Path, options: onnxruntime.SessionOptions) -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )


Row = Callable[[], dict[str, float]]
"""One timed run of a row: ``{"t": seconds, ...pieces}``."""


def interleaved(rows: dict[str, Row], runs: int) -> dict[str, dict[str, list[float]]]:
    """Each row once untimed (first-call costs are not what we measure), then ``runs``
    rounds of every row in turn, so drifting machine load hits every row alike."""
    for run in rows.values():
        run()
    times: dict[str, dict[str, list[float]]] = {name: {} for name in rows}
    for _ in range(runs):
        for name, run in rows.items():
            for key, value in run().items():
                times[name].setdefault(key, []).append(value)
    return times


def timed(run: Callable[[], object]) -> Row:
    def row() -> dict[str, float]:
        started = time.perf_counter()
        run()
        return {"t": time.perf_counter() - started}

    return row


class SeedWorker:
    """``bench/seed_worker.py serve`` in the coqui environment, driven row by row."""

    def __init__(self, python: Path, *args: str) -> None:
        command = [str(python), str(ROOT / "bench" / "seed_worker.py"), "serve", *args]
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.ready: dict[str, Any] = self._answer()

    def _answer(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            sys.exit(f"the seed worker died ({self._process.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def row(self, name: str) -> Row:
        def run() -> dict[str, float]:
            assert self._process.stdin is not None
            self._process.stdin.write(name + "\n")
            self._process.stdin.flush()
            return self._answer()

        return run

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(timeout=60)


def rss_child(model: Path, voices: int, threads: int) -> None:
    """In a fresh process: resident memory after each of ``voices`` loaded, used voices."""

    def resident() -> int:
        gc.collect()
        return int(psutil.Process().memory_info().rss)

    CoquiVoice.initialize_runtime()
    held, measured = [], [resident()]
    for _ in range(voices):
        voice = CoquiVoice.load(model, threads=threads)
        list(voice.synthesize(["A short warm-up sentence."]))
        held.append(voice)
        measured.append(resident())
    print(json.dumps({"rss": measured}))


def ours_rss(model: Path, voices: int, threads: int) -> list[int]:
    completed = subprocess.run(
        [sys.executable, "-m", "bench.seed", "--rss-child", str(model), "--voices",
         str(voices), "--threads", str(threads)],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    rss: list[int] = json.loads(completed.stdout.strip().splitlines()[-1])["rss"]
    return rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--voices", type=int, default=3, help="voices held for the RSS rows")
    parser.add_argument("--rss-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_child, args.voices, args.threads)
        return
    python = Settings().coqui_python
    if not python.exists():
        sys.exit(f"{python} is missing: run `make coqui` first")
    with tempfile.TemporaryDirectory(prefix="voicepocket-seed-bench-") as tmp:
        run(Path(tmp), python, args)


def run(tmp: Path, python: Path, args: argparse.Namespace) -> None:
    print(f"building a full-size checkpoint in {tmp} ...", file=sys.stderr)
    made = coqui(str(ROOT / "tests" / "coqui_tools.py"), "build", str(tmp / "ckpt"), "--full",
                 python=python)  # fmt: skip
    checkpoint, config = (Path(p) for p in made["en"])
    plain, all_2d = (
        Path(coqui("-m", "voicepocket.voices.coqui_export", str(checkpoint), str(config),
                   "--out", str(tmp / name), *flags, python=python)["onnx"])
        for name, flags in (("plain", ["--plain"]), ("all-2d", ["--nchwc-min-channels", "1"]))
    )  # fmt: skip

    print("registering it with us ...", file=sys.stderr)
    engine = Engine(Settings(home=tmp / "home", threads=args.threads))
    engine.registry.migrate()
    started = time.perf_counter()
    record = engine.add_voice(owner="minji", slug="me", kind="coqui", model_file=checkpoint,
                              config_file=config, prewarm=False)  # fmt: skip
    register_s = time.perf_counter() - started
    model = engine.registry.voices.model_path(record)
    voice = CoquiVoice.load(model, threads=args.threads)
    ids = voice.text_to_ids(SENTENCE)
    feed = {
        "input": np.array([ids], dtype=np.int64),
        "input_lengths": np.array([len(ids)], dtype=np.int64),
        "scales": np.array([voice.manifest.noise_scale, 1.0, 0.0], dtype=np.float32),
    }
    steps = {
        "plain ONNX (coqui's export, onnxruntime defaults)": session(
            plain, onnxruntime.SessionOptions()
        ),
        "+ our session options": session(plain, voice_options(args.threads)),
        "+ 2-D decoder, every stage": session(all_2d, voice_options(args.threads)),
        "+ 1-D again under 64 channels (= our voice)": session(
            model, voice_options(args.threads)
        ),
    }
    generated = next(iter(steps.values())).run(None, feed)[0]
    audio_s = generated.shape[-1] / voice.sample_rate

    def speak() -> None:
        with engine.speak("minji/me", SENTENCE, params=PARAMS) as speech:
            for _ in speech:
                pass

    def cold() -> None:
        engine.voices.pool.discard(record.pool_key)  # the default build's ResidentVoices
        speak()

    print("all paths, interleaved ...", file=sys.stderr)
    with redis_server(tmp) as port:
        worker = SeedWorker(python, str(checkpoint), str(config), "--redis-port", str(port),
                            "--threads", str(args.threads), "--sentence", SENTENCE)  # fmt: skip
        if worker.ready["ids"] != ids:
            sys.exit("the seed and we must speak the same token ids")
        rows: dict[str, Row] = {
            name: worker.row(name) for name in ("a", "b", "tts", "tts_unfolded", "inference")
        }
        rows |= {name: timed(lambda s=s: s.run(None, feed)) for name, s in steps.items()}
        rows |= {"c": timed(speak), "d": timed(cold)}
        times = interleaved(rows, args.runs)
        worker.close()
    engine.close()
    del steps, voice
    print("resident memory ...", file=sys.stderr)
    seed_rss = coqui(str(ROOT / "bench" / "seed_worker.py"), "rss", str(checkpoint),
                     str(config), "--voices", str(args.voices), python=python)["rss"]  # fmt: skip
    our_rss = ours_rss(model, args.voices, args.threads)
    report(times, worker.ready, seed_rss, our_rss, register_s=register_s, audio_s=audio_s,
           args=args, onnx_bytes=model.stat().st_size,
           checkpoint_bytes=checkpoint.stat().st_size)  # fmt: skip


def voice_options(threads: int) -> onnxruntime.SessionOptions:
    from voicepocket.voices.coqui import session_options

    return session_options(threads)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def report(
    times: dict[str, dict[str, list[float]]],
    ready: dict[str, Any],
    seed_rss: list[int],
    our_rss: list[int],
    *,
    register_s: float,
    audio_s: float,
    args: argparse.Namespace,
    onnx_bytes: int,
    checkpoint_bytes: int,
) -> None:
    median = statistics.median
    seed = {name: times[name]["t"] for name in ("a", "b", "tts", "tts_unfolded", "inference")}
    seed |= {piece: times["b"][piece] for piece in ("redis_get", "pickle_loads")}
    rows = [
        ("(a) seed: new Synthesizer per request + tts", seed["a"]),
        ("(b) seed: Redis GET + pickle.loads + tts", seed["b"]),
        ("(c) ours, warm (resident voice)", times["c"]["t"]),
        ("(d) ours, cold (registered, not resident)", times["d"]["t"]),
    ]
    bare = {name: times[name]["t"] for name in times if name.startswith(("plain", "+"))}
    words = len(SENTENCE.split())
    print(f"\nOne {words}-word sentence, {audio_s:.2f} s of audio generated (before coqui's "
          f"silence trim); {args.runs} runs per row, all rows interleaved; {args.threads} "
          "threads everywhere (torch and onnxruntime).\n")  # fmt: skip
    print("| path | median | min | max | RTF |")
    print("|---|---|---|---|---|")
    for name, times in rows:
        print(f"| {name} | {_ms(median(times))} | {_ms(min(times))} | {_ms(max(times))} "
              f"| {median(times) / audio_s:.2f} |")  # fmt: skip
    m = {name[1]: median(times) for name, times in rows}
    print(f"\n(b)/(c): ours warm is **{m['b'] / m['c']:.2f}x** faster than the seed's Redis "
          f"path (goal 2.5x); (a)/(c) {m['a'] / m['c']:.2f}x; (b)/(d) {m['b'] / m['d']:.2f}x; "
          f"(a)/(d) {m['a'] / m['d']:.2f}x.")  # fmt: skip
    print("\nWhere the seed's time goes (medians):\n")
    print("| piece | median |")
    print("|---|---|")
    pieces = [
        ("Redis GET of the pickled Synthesizer "
         f"({ready['pickle_bytes'] / 1e6:.0f} MB)", median(seed["redis_get"])),
        ("pickle.loads of it", median(seed["pickle_loads"])),
        ("Synthesizer.tts, weight norm folded (as unpickled in b)", median(seed["tts"])),
        ("Synthesizer.tts, weight norm live (as built in a)", median(seed["tts_unfolded"])),
        ("the model's own inference (Vits.inference, folded)", median(seed["inference"])),
        ("import torch + TTS, fresh process", ready["import_s"]),
        ("Synthesizer(...) in a fresh process", ready["init_fresh_s"]),
    ]  # fmt: skip
    for name, value in pieces:
        print(f"| {name} | {_ms(value)} |")
    print("\nWhat made (c) fast, step by step on the same token ids (bare inference):\n")
    print("| step | median | min | max | vs previous |")
    print("|---|---|---|---|---|")
    previous = median(seed["inference"])
    print(f"| torch: Vits.inference (the seed's model, weight norm folded) | {_ms(previous)} "
          f"| {_ms(min(seed['inference']))} | {_ms(max(seed['inference']))} | |")  # fmt: skip
    for name, times in bare.items():
        value = median(times)
        print(f"| {name} | {_ms(value)} | {_ms(min(times))} | {_ms(max(times))} "
              f"| {previous / value:.2f}x |")  # fmt: skip
        previous = value
    print(f"| (c) the whole warm request (text, tokenizer, pool lease, trim) | {_ms(m['c'])} "
          f"| | | {(m['c'] - previous) * 1000:+,.0f} ms |")  # fmt: skip
    seed_per = (seed_rss[-1] - seed_rss[0]) / (len(seed_rss) - 1)
    our_per = (our_rss[-1] - our_rss[0]) / (len(our_rss) - 1)
    print("\nResident memory (RSS) per voice, holding "
          f"{len(our_rss) - 1} voices in one process:\n")  # fmt: skip
    print("| | process before | per voice | files |")
    print("|---|---|---|---|")
    print(f"| seed: Synthesizer | {seed_rss[0] / 1e6:.0f} MB | {seed_per / 1e6:.0f} MB "
          f"| {checkpoint_bytes / 1e6:.0f} MB checkpoint |")  # fmt: skip
    print(f"| ours: ONNX session | {our_rss[0] / 1e6:.0f} MB | {our_per / 1e6:.0f} MB "
          f"| {onnx_bytes / 1e6:.0f} MB ONNX |")  # fmt: skip
    print(f"\nRegistration (convert in the coqui environment, checks, probe, store): "
          f"{register_s:.1f} s, once per voice.")  # fmt: skip


if __name__ == "__main__":
    main()

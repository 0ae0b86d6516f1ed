"""The registration probe: load an untrusted voice in a throwaway process and measure it.

A voice's pool cost is the growth of resident memory (RSS) that building its inference
session causes, measured here in a fresh child process after the runtime's process-wide
state (onnxruntime environment, phonemizer) is initialized: weights, pre-packed kernels and
session bookkeeping (joe: a 63 MB file costs about 88 MB). The working memory of an
inference is not counted per voice: with onnxruntime's arena off (see the Piper backend)
it returns to the heap after each call and the next inference, of any voice, reuses it, so
it scales with concurrent inferences, not with resident voices. Measured this way, the
estimate tracks the average growth per extra voice in a serving process (tested to within
25%); guessing from the file size would not, for any architecture.

The child also isolates the server from hostile model files: onnxruntime opens the file
for the first time here, under an address-space limit and a timeout, so a model that
crashes or exhausts the runtime takes down only the probe (``voicepocket.children``: no
secrets in its environment).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from voicepocket import children
from voicepocket.errors import InferenceTimeout, InvalidVoiceFiles

PROBE_TIMEOUT_S = 180.0
PROBE_CALL_DEADLINE_S = 20.0
"""Longest one test synthesis may run in the probe, in seconds (joe: 0.1-0.3 s)."""
TOO_SLOW = 4
"""Exit status of a probe whose test synthesis ran past its deadline."""


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What the probe measured for one voice."""

    resident_bytes: int
    """RSS growth caused by loading the voice, in bytes (without the arena, a synthesis's
    working memory is freed when it ends)."""

    load_s: float
    """Time to build the inference session, in seconds."""

    warmup_s: float
    """Time of one test synthesis of the voice's sample sentence, in seconds."""

    sample_rate: int
    """Rate of the voice's audio, in Hertz."""

    audio_s: float
    """Duration of the test audio, in seconds (0 means the model produced nothing). The
    sentence said twice and its first word are spoken too, each call within
    ``PROBE_CALL_DEADLINE_S``: a graph that behaves differently for another input length
    fails or runs out of time there."""


def probe_voice(kind: str, model_path: Path, *, threads: int) -> ProbeResult:
    """Run the probe on ``model_path`` in a child process; ``InvalidVoiceFiles`` on failure."""
    command = [
        sys.executable, "-m", "voicepocket.voices.probe", str(model_path),
        "--kind", kind, "--threads", str(threads),
    ]  # fmt: skip
    try:
        completed = children.run(command, timeout_s=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise InvalidVoiceFiles("The voice took too long to load and run.") from exc
    if completed.returncode == TOO_SLOW:
        raise InvalidVoiceFiles(
            f"The voice took longer than {PROBE_CALL_DEADLINE_S:g} s for one test sentence."
        )
    if completed.returncode != 0:
        raise InvalidVoiceFiles(
            "The voice could not be loaded and run; its model files are not a working voice."
        )
    result = ProbeResult(**json.loads(completed.stdout.strip().splitlines()[-1]))
    if result.audio_s <= 0:
        raise InvalidVoiceFiles("The voice produced no audio for a test sentence.")
    return result


def _rss() -> int:
    gc.collect()
    rss: int = psutil.Process(os.getpid()).memory_info().rss
    return rss


def _measure(kind: str, model_path: Path, *, threads: int) -> ProbeResult:
    from voicepocket.voices import backend

    voice_class = backend(kind)
    voice_class.initialize_runtime()
    before = _rss()
    started = time.perf_counter()
    voice = voice_class.load(model_path, threads=threads, deadline_s=PROBE_CALL_DEADLINE_S)
    loaded = time.perf_counter()
    resident_bytes = _rss() - before

    def seconds(text: str) -> float:
        return sum(chunk.duration_s for chunk in voice.synthesize([text]))

    sample = voice.sample_text()
    audio_s = seconds(sample)
    warmup_s = time.perf_counter() - loaded
    seconds(f"{sample} {sample}")
    seconds(sample.split()[0])
    return ProbeResult(
        resident_bytes=resident_bytes,
        load_s=loaded - started,
        warmup_s=warmup_s,
        sample_rate=voice.sample_rate,
        audio_s=audio_s,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--kind", required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    try:
        result = _measure(args.kind, args.model, threads=args.threads)
    except InferenceTimeout:
        sys.exit(TOO_SLOW)
    print(json.dumps(asdict(result)))


if __name__ == "__main__":
    main()

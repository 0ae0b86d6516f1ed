"""The registration probe: load an untrusted voice in a throwaway process and measure it.

A voice's pool cost is the growth of resident memory (RSS) that loading it and running one
longest-chunk warm-up synthesis causes, measured here in a fresh child process after the
runtime is imported and its shared state initialized, so the figure is the voice's own
marginal cost (joe: a 63 MB file costs about 130-140 MB resident). Measuring, not guessing
from the file size, keeps the estimate honest for any architecture.

The child also isolates the server from hostile model files: onnxruntime opens the file
for the first time here, under an address-space limit and a timeout, so a model that
crashes or exhausts the runtime takes down only the probe.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from voicepocket.errors import InvalidVoiceFiles

PROBE_TIMEOUT_S = 180.0
ADDRESS_SPACE_LIMIT = 16 * 1024**3


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What the probe measured for one voice."""

    resident_bytes: int
    """RSS growth caused by loading the voice and one warm-up synthesis, in bytes."""

    load_s: float
    """Time to build the inference session, in seconds."""

    warmup_s: float
    """Time of the warm-up synthesis of one longest chunk, in seconds."""

    sample_rate: int
    """Rate of the voice's audio, in Hertz."""

    audio_s: float
    """Duration of the warm-up audio, in seconds (0 means the model produced nothing)."""


def probe_voice(
    kind: str, model_path: Path, *, threads: int, warmup_chars: int
) -> ProbeResult:
    """Run the probe on ``model_path`` in a child process; ``InvalidVoiceFiles`` on failure."""
    command = [
        sys.executable, "-m", "voicepocket.voices.probe", str(model_path),
        "--kind", kind, "--threads", str(threads), "--warmup-chars", str(warmup_chars),
    ]  # fmt: skip
    try:
        completed = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            preexec_fn=_limit_address_space,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise InvalidVoiceFiles("The voice took too long to load and run.") from exc
    if completed.returncode != 0:
        raise InvalidVoiceFiles(
            "The voice could not be loaded and run; its model files are not a working voice."
        )
    result = ProbeResult(**json.loads(completed.stdout.strip().splitlines()[-1]))
    if result.audio_s <= 0:
        raise InvalidVoiceFiles("The voice produced no audio for a test sentence.")
    return result


def _limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))


def warmup_text(sample: str, chars: int) -> str:
    """``sample`` repeated as one clause-joined chunk of about ``chars`` characters."""
    repeats = max(1, chars // (len(sample) + 2))
    return ", ".join([sample.rstrip(".!?")] * repeats) + "."


def _rss() -> int:
    gc.collect()
    return psutil.Process(os.getpid()).memory_info().rss


def _measure(kind: str, model_path: Path, *, threads: int, warmup_chars: int) -> ProbeResult:
    from voicepocket.voices import backend

    voice_class = backend(kind)
    voice_class.initialize_runtime()
    before = _rss()
    started = time.perf_counter()
    voice = voice_class.load(model_path, threads=threads)
    loaded = time.perf_counter()
    text = warmup_text(voice.sample_text(), warmup_chars)
    audio_s = sum(chunk.duration_s for chunk in voice.synthesize([text]))
    warmed = time.perf_counter()
    return ProbeResult(
        resident_bytes=_rss() - before,
        load_s=loaded - started,
        warmup_s=warmed - loaded,
        sample_rate=voice.sample_rate,
        audio_s=audio_s,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--kind", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup-chars", type=int, default=300)
    args = parser.parse_args()
    result = _measure(
        args.kind, args.model, threads=args.threads, warmup_chars=args.warmup_chars
    )
    print(json.dumps(asdict(result)))


if __name__ == "__main__":
    main()

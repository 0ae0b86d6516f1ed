"""What flows between the parts: audio chunks and per-request synthesis parameters.

Below both ``voices`` (which yields chunks) and ``audio`` (which encodes them), so neither
imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """Speech for one text chunk."""

    samples: np.ndarray
    """Mono float32 PCM in [-1, 1]."""

    sample_rate: int
    """Rate of ``samples`` in Hertz."""

    text: str
    """The text chunk these samples speak."""

    @property
    def duration_s(self) -> float:
        """Length of the chunk in seconds."""
        return len(self.samples) / self.sample_rate


@dataclass(frozen=True, slots=True)
class SynthesisParams:
    """Per-request settings; ``None`` means the voice's own default."""

    speed: float = 1.0
    """Speaking rate multiplier (0.25-4.0); 2.0 speaks twice as fast."""

    noise_scale: float | None = None
    """Generator noise (VITS ``noise_scale``); 0 makes output deterministic."""

    noise_w: float | None = None
    """Duration predictor noise (VITS ``noise_scale_w``); 0 makes durations deterministic."""

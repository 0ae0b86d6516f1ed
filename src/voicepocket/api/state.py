"""What one running app holds: built in the lifespan, kept on ``app.state.services``."""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass, field

from voicepocket.api.uploads import HeavyWork
from voicepocket.archive import AudioArchive
from voicepocket.cache import OutputCache
from voicepocket.engine import Engine
from voicepocket.metrics import Metrics
from voicepocket.settings import Settings
from voicepocket.speech import Residency
from voicepocket.synthesizer import Synthesizer
from voicepocket.training.service import VoiceTraining


class Lifecycle(enum.Enum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"


@dataclass(slots=True)
class InFlight:
    """Requests being served, so a drain knows when it is done."""

    # Guards ``count``; ``idle`` is set whenever it is zero.
    lock: threading.Lock = field(default_factory=threading.Lock)
    count: int = 0
    idle: threading.Event = field(default_factory=threading.Event)

    def enter(self) -> None:
        with self.lock:
            self.count += 1
            self.idle.clear()

    def leave(self) -> None:
        with self.lock:
            self.count -= 1
            if not self.count:
                self.idle.set()


@dataclass(slots=True)
class Services:
    settings: Settings
    engine: Engine
    """Registry, stores and voice management."""
    residency: Residency
    """Where voices are resident (readiness, metrics)."""
    synthesizer: Synthesizer
    """Admitted, scheduled, encoded speech from the engine's ``SpeechSource``."""
    archive: AudioArchive
    """Stored syntheses: audio objects and their records."""
    metrics: Metrics
    cache: OutputCache
    training: VoiceTraining
    """A user's own voices: drafts, samples, consent, training."""
    uploads: HeavyWork
    """Threads and per-key slots for voice uploads, recording checks and exports."""
    lifecycle: Lifecycle = Lifecycle.STARTING
    in_flight: InFlight = field(default_factory=InFlight)

"""What the ingress and the voice workers send each other (Ray serializes these)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from voicepocket import errors
from voicepocket.chunks import SynthesisParams
from voicepocket.registry import VoiceRecord
from voicepocket.speech import Chunking


@dataclass(frozen=True, slots=True)
class SpeakCall:
    """One synthesis asked of a worker: the voice is already resolved for the caller."""

    record: VoiceRecord
    """The voice, as the registry holds it (its pool key is the multiplexed model id)."""

    owner: str
    """Who asked: the worker's unit of fairness."""

    text: str
    """The input text (already checked against the length limit)."""

    params: SynthesisParams
    """Per-request settings."""

    chunking: Chunking
    """How the worker cuts the text into chunks."""

    chunks: tuple[str, ...] | None = None
    """Chunks prepared by an earlier attempt: a retry resumes at ``start`` without
    preparing the text again."""

    start: int = 0
    """Index of the first chunk to synthesize."""

    def resume(self, chunks: tuple[str, ...], start: int) -> SpeakCall:
        """The same call, continuing at chunk ``start`` (after a worker was lost)."""
        return replace(self, chunks=chunks, start=start)


@dataclass(frozen=True, slots=True)
class SpeechHeader:
    """A worker's first answer: the voice is leased and the text chunked."""

    sample_rate: int
    """Rate of every chunk that follows, in Hertz."""

    chunks: tuple[str, ...]
    """Every text chunk of the input (including those before ``start``)."""


@dataclass(frozen=True, slots=True)
class Failure:
    """A ``VoicePocketError`` raised in a worker, carried as data: an exception pickled
    across Ray loses its keyword fields, and its class would be wrapped in Ray's own."""

    kind: str
    """Name of the class in ``voicepocket.errors``."""

    message: str
    param: str | None
    retry_after_s: float | None
    """For ``RateLimited`` and ``CapacityError``, in seconds."""

    @classmethod
    def of(cls, error: errors.VoicePocketError) -> Failure:
        return cls(
            kind=type(error).__name__,
            message=error.message,
            param=error.param,
            retry_after_s=getattr(error, "retry_after_s", None),
        )

    def error(self) -> errors.VoicePocketError:
        """The error again, as the ingress raises it."""
        kind = getattr(errors, self.kind, None)
        if not (isinstance(kind, type) and issubclass(kind, errors.VoicePocketError)):
            return errors.EngineError("Synthesis failed.")
        if issubclass(kind, errors.RetryLater):
            return kind(self.message, retry_after_s=self.retry_after_s or 1.0)
        return kind(self.message, param=self.param)

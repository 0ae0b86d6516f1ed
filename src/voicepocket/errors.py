"""Every error VoicePocket raises on purpose, and how each reaches a client.

The tree (HTTP status in brackets)::

    VoicePocketError
     ├── RequestError                 [400] the request itself is wrong
     │    ├── EmptyText               [400] nothing speakable is left after normalization
     │    ├── TextTooLong             [400] input over VOICEPOCKET_MAX_INPUT_CHARS
     │    ├── AudioTooLong            [400] speech longer than VOICEPOCKET_MAX_AUDIO_S
     │    ├── UnsupportedFormat       [400] an audio format we do not encode
     │    ├── InvalidVoiceId          [400] not ``owner/slug`` / ``slug`` of allowed characters
     │    ├── InvalidVoiceFiles       [422] a voice's files fail validation at registration
     │    ├── VoiceTooLarge           [422] a voice that cannot fit the whole pool budget
     │    ├── SampleRejected          [422] a recording failed a check (``code`` says which)
     │    ├── TrainingRefused         [422] a voice cannot train yet (``code`` says why)
     │    ├── PayloadTooLarge         [413] a body over its route's limit (MAX_BODY_BYTES, …)
     │    └── BodyTimeout             [408] a body that did not arrive in time (BODY_TIMEOUT_S)
     ├── AuthenticationError          [401] no API key, or not a live one
     ├── RetryLater                   (base) carries ``retry_after_s`` for ``Retry-After``
     │    ├── RateLimited             [429] the caller has too much in flight, or the queue
     │    │                                 is full
     │    │    └── TooManyTrainings    [429] the owner's trainings are all queued/running
     │    └── CapacityError           [503] resident voices are all in use; retry later
     │         ├── Draining           [503] the server is shutting down
     │         └── WorkerLost         [503] a voice worker was lost and none could resume
     ├── QuotaExceeded                [429] an owner's voices, samples, syntheses or jobs at quota
     ├── NotFound                     [404] nothing the caller may see has that id
     │    └── VoiceNotFound           [404] (also another owner's private voice)
     ├── Conflict                     [409]
     │    ├── VoiceExists             [409] the owner already has a voice with that slug
     │    ├── VoiceNotReady           [409] a trained voice that has never finished training
     │    └── TrainingBusy            [409] the voice is queued or training (or already done)
     ├── StorageError                 [503] object storage failed or is unreachable
     ├── StoreKeyError                [500] a storage key of ours is malformed (a bug, never
     │                                      user input)
     ├── TrainingFailed               [500] a training round no retry would fix (its message
     │                                      goes to the voice's ``training.message``)
     └── EngineError                  [500] inference failed inside onnxruntime
          ├── InferenceTimeout        [500] one inference call ran past INFERENCE_TIMEOUT_S
          └── StreamEndedEarly        [500] a voice worker's stream ended before its end

Each class carries its HTTP ``status``, OpenAI's error ``type`` and a stable ``code``; the
API maps any of them to ``{"error": {"message", "type", "param", "code"}}``. Messages are
written for the client: internal exceptions are chained (``raise ... from exc``) for the
logs, never formatted into a message.
"""

from __future__ import annotations


class VoicePocketError(Exception):
    """Base of every error VoicePocket raises on purpose."""

    status: int = 500
    type: str = "server_error"
    code: str = "internal_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        """The request field the error is about, when there is one."""


class RequestError(VoicePocketError):
    """The request is malformed or asks for something we do not do."""

    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class EmptyText(RequestError):
    """The text has nothing the voice can speak once normalized."""

    code = "empty_input"


class TextTooLong(RequestError):
    """The text is longer than ``VOICEPOCKET_MAX_INPUT_CHARS``."""

    code = "string_above_max_length"


class AudioTooLong(RequestError):
    """The speech would be longer than ``VOICEPOCKET_MAX_AUDIO_S`` (jobs:
    ``VOICEPOCKET_MAX_JOB_AUDIO_S``)."""

    code = "audio_above_max_duration"


class UnsupportedFormat(RequestError):
    """The requested audio format is not one we encode."""

    code = "unsupported_format"


class InvalidVoiceId(RequestError):
    """A voice id or owner name does not match ``[a-z0-9][a-z0-9_-]{0,63}``."""

    code = "invalid_voice_id"


class InvalidVoiceFiles(RequestError):
    """A voice's model or config fails validation; nothing was registered."""

    status = 422
    code = "invalid_voice_files"


class VoiceTooLarge(RequestError):
    """A voice's resident cost exceeds the whole pool budget, so it could never load."""

    status = 422
    code = "voice_too_large"


class SampleRejected(RequestError):
    """A recording for a voice's dataset failed a check; ``code`` names which
    (``too_short``, ``too_long``, ``silent``, ``clipped``, ``noisy``, ``low_sample_rate``,
    ``unsupported_text``, ``text_mismatch``, ``bad_audio``) and the message what to do."""

    status = 422
    code = "bad_audio"

    def __init__(self, message: str, *, code: str | None = None, param: str | None = "audio"):
        super().__init__(message, param=param)
        if code is not None:
            self.code = code


class TrainingRefused(RequestError):
    """A voice cannot train yet: ``dataset_too_small`` or ``consent_missing``."""

    status = 422
    code = "dataset_too_small"

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None):
        super().__init__(message, param=param)
        if code is not None:
            self.code = code


class PayloadTooLarge(RequestError):
    """A request body exceeds its route's limit (``VOICEPOCKET_MAX_BODY_BYTES``, or
    ``VOICEPOCKET_MAX_UPLOAD_BYTES`` for uploads)."""

    status = 413
    code = "payload_too_large"


class BodyTimeout(RequestError):
    """A request body did not arrive within its deadline (``VOICEPOCKET_BODY_TIMEOUT_S``
    plus its size at ``VOICEPOCKET_BODY_MIN_RATE``)."""

    status = 408
    code = "request_timeout"


class AuthenticationError(VoicePocketError):
    """The request has no API key, or one that is unknown or revoked."""

    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class RetryLater(VoicePocketError):
    """A refusal the client should retry after ``retry_after_s`` seconds."""

    def __init__(self, message: str, *, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        """Seconds the client should wait before retrying."""


class RateLimited(RetryLater):
    """Too many requests admitted for this key, or for the whole server; retry later."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class TooManyTrainings(RateLimited):
    """The owner already has ``VOICEPOCKET_TRAININGS_PER_OWNER`` trainings queued or
    running."""

    code = "too_many_trainings"


class QuotaExceeded(VoicePocketError):
    """The owner has as many voices, samples, stored syntheses (or bytes of them) or
    waiting jobs as ``VOICEPOCKET_QUOTA_*`` allows."""

    status = 429
    type = "insufficient_quota"
    code = "quota_exceeded"


class NotFound(VoicePocketError):
    """Nothing the caller may see has that id (another owner's private things included)."""

    status = 404
    type = "invalid_request_error"
    code = "not_found"


class VoiceNotFound(NotFound):
    """No voice by that id is visible to the caller."""

    code = "voice_not_found"


class Conflict(VoicePocketError):
    """The request collides with existing state."""

    status = 409
    type = "invalid_request_error"
    code = "conflict"


class VoiceExists(Conflict):
    """The owner already has a voice with that slug."""

    code = "voice_exists"


class VoiceNotReady(Conflict):
    """A trained voice that has never finished a training has nothing to speak with."""

    code = "voice_not_ready"


class TrainingBusy(Conflict):
    """The voice's training is queued or running: wait for it, or cancel it."""

    code = "training_busy"


class CapacityError(RetryLater):
    """The service is momentarily full (e.g. every resident voice is in use); retry later."""

    status = 503
    type = "server_error"
    code = "overloaded"


class Draining(CapacityError):
    """The server is shutting down: in-flight requests finish, new ones are refused."""

    code = "shutting_down"


class WorkerLost(CapacityError):
    """The voice worker serving a synthesis was lost and no live worker could resume it."""

    code = "worker_lost"


class StorageError(VoicePocketError):
    """Object storage failed or is unreachable."""

    status = 503
    type = "server_error"
    code = "storage_unavailable"


class StoreKeyError(VoicePocketError):
    """A storage key we built is malformed: a bug of ours, never the client's input."""

    status = 500
    type = "server_error"
    code = "internal_error"


class TrainingFailed(VoicePocketError):
    """A training round that no retry would fix (the base does not load, it ran out of
    time); the message is for the voice's owner."""

    status = 500
    type = "server_error"
    code = "training_failed"


class EngineError(VoicePocketError):
    """Inference failed inside the runtime; the cause is chained, not shown."""

    status = 500
    type = "server_error"
    code = "engine_error"


class InferenceTimeout(EngineError):
    """One inference call ran past ``VOICEPOCKET_INFERENCE_TIMEOUT_S`` and was stopped."""

    code = "inference_timeout"


class StreamEndedEarly(EngineError):
    """A voice worker's stream ended before its last chunk (a worker dying can end it so:
    the ingress counts it as a lost worker)."""

    code = "stream_ended_early"

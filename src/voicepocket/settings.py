"""The one settings object: every part reads its configuration from here.

Values come from ``VOICEPOCKET_*`` environment variables (pydantic-settings). Parts never
read the environment themselves; they take a ``Settings`` (or the fields they need).
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path.home() / ".voicepocket"


def _default_coqui_python() -> Path:
    """``.venv-coqui/bin/python`` in the source checkout this package runs from (where
    ``make coqui`` creates it)."""
    return Path(__file__).resolve().parents[2] / ".venv-coqui" / "bin" / "python"


class Settings(BaseSettings):
    """Service configuration; each field is ``VOICEPOCKET_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="VOICEPOCKET_", frozen=True)

    home: Path = Field(default_factory=_default_home)
    """Data directory: the SQLite database, audio and models live here by default."""

    database_url: str = ""
    """SQLAlchemy URL of the registry; empty means ``sqlite:///{home}/voicepocket.db``."""

    store_url: str = ""
    """fsspec URL where synthesized audio is stored; empty means ``{home}/audio``."""

    models_url: str = ""
    """fsspec URL of the model repository; empty means ``{home}/models``."""

    pool_bytes: int = Field(default=2 * 1024**3, gt=0)
    """Memory budget of the resident voice pool, in bytes (estimated resident cost)."""

    max_input_chars: int = Field(default=4096, gt=0)
    """Longest text one request may carry, in characters (OpenAI's own limit is 4096)."""

    max_chunk_chars: int = Field(default=300, ge=20)
    """Longest text chunk handed to a voice in one inference call, in characters."""

    threads: int = Field(default=1, ge=1)
    """onnxruntime intra-op threads per inference call (1 scales best across requests)."""

    default_voice: str = "demo/joe"
    """Voice registered at first start from the bundled Piper voice, public and pinned."""

    max_upload_bytes: int = Field(default=512 * 1024**2, gt=0)
    """Largest voice file accepted at registration, in bytes."""

    max_config_bytes: int = Field(default=1024**2, gt=0)
    """Largest voice config accepted at registration, in bytes (joe's is 5 KB; a Piper
    config with hundreds of speakers is under 100 KB), refused before it is parsed."""

    max_body_bytes: int = Field(default=64 * 1024, gt=0)
    """Largest request body of the JSON routes, in bytes (a 4,096-character input is at
    most 25 KB of JSON); ``POST /v1/syntheses`` (jobs up to ``max_job_chars``) and the
    uploads have their own limits. Larger bodies get 413 as they stream in."""

    body_timeout_s: float = Field(default=30.0, gt=0)
    """A request body must arrive within this many seconds, plus its size at
    ``body_min_rate`` (408 otherwise): a client sending a byte a second holds nothing."""

    body_min_rate: int = Field(default=64 * 1024, gt=0)
    """Slowest upload allowed beyond ``body_timeout_s``, in bytes per second."""

    header_timeout_s: float = Field(default=10.0, gt=0)
    """A request's headers must be in within this many seconds of its first byte, else the
    connection is answered 408 and closed (uvicorn itself waits for ever)."""

    max_connections: int = Field(default=1024, ge=1)
    """Connections and requests in progress at once; beyond, new ones get 503 at once
    (uvicorn's ``limit_concurrency``)."""

    inference_timeout_s: float = Field(default=60.0, gt=0)
    """Longest one inference call (one text chunk) may run, in seconds; past it the call is
    stopped (onnxruntime's terminate flag) and the request fails with 500
    ``inference_timeout`` while the other owners' calls go on."""

    pool_wait_s: float = Field(default=30.0, ge=0)
    """How long a load waits for in-use voices to be released before failing, in seconds."""

    coqui_python: Path = Field(default_factory=_default_coqui_python)
    """Python of the coqui environment (``voicepocket[coqui]``: torch, coqui-tts) that
    compiles coqui checkpoints to ONNX at registration; serving never uses it."""

    host: str = "127.0.0.1"
    """Address ``voicepocket serve`` binds."""

    port: int = Field(default=8000, ge=0, le=65535)
    """Port ``voicepocket serve`` binds."""

    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    """Inference calls run at once (each with ``threads`` intra-op threads)."""

    queue_size: int = Field(default=64, ge=0)
    """Requests admitted beyond ``workers``, waiting for a slot; past it, 429."""

    per_key_requests: int = Field(default=8, ge=1)
    """Requests one API key may have admitted (running or waiting) at once; past it, 429."""

    upload_workers: int = Field(default=2, ge=1)
    """Voice uploads (probe, coqui compile) and recording checks run at once, on threads
    of their own: key checks and speech never wait behind them."""

    upload_queue: int = Field(default=16, ge=0)
    """Uploads and recording checks admitted beyond ``upload_workers`` (reading their
    body, or waiting for a thread); past it, 429."""

    per_key_uploads: int = Field(default=2, ge=1)
    """Uploads and recording checks one API key may have in flight at once; past it, 429."""

    first_chunk_chars: int = Field(default=16, ge=10)
    """Longest first text chunk of a request, in characters, when an inference slot is free
    (behind a queue, whole sentences): two or three words, so audio starts within ~100 ms;
    the chunks after it grow 4-fold, each ready before the one before has played."""

    drain_s: float = Field(default=30.0, ge=0)
    """On SIGTERM, how long in-flight requests may take to finish, in seconds."""

    max_job_chars: int = Field(default=200_000, gt=0)
    """Longest text an asynchronous job may carry, in characters (a book's chapter or two)."""

    max_audio_s: float = Field(default=900.0, gt=0)
    """Most audio one speech request may produce, in seconds (15 minutes): estimated before
    synthesis from the normalized text and ``speed`` (400 when over), enforced while it
    streams (the stream ends with an error). Bounds what one request costs (4,096 digits
    read out at ``speed: 0.25`` would be half an hour)."""

    max_job_audio_s: float = Field(default=6 * 3600.0, gt=0)
    """Most audio one asynchronous job may produce, in seconds (a 200,000-character book
    at normal speed is about 3.5 hours)."""

    job_runners: int = Field(default=2, ge=1)
    """Background threads running jobs in each server process: with more than one, an
    owner's long job does not hold up the others' (an owner with a job running waits
    behind owners without one)."""

    job_attempts: int = Field(default=3, ge=1)
    """Times a job is run before it is ``failed`` when its runner keeps dying with it (a
    job that crashes the process is not claimed for ever)."""

    quota_voices: int = Field(default=100, ge=1)
    """Voices one owner may have (uploaded, trained and training drafts); past it, 429."""

    quota_samples: int = Field(default=5000, ge=1)
    """Recorded samples one owner may keep, over all their voices; past it, 429."""

    quota_syntheses: int = Field(default=10_000, ge=1)
    """Stored syntheses one owner may keep; past it, 429."""

    quota_synthesis_bytes: int = Field(default=10 * 1024**3, ge=1)
    """Bytes of stored syntheses one owner may keep; past it, 429."""

    quota_jobs: int = Field(default=16, ge=1)
    """Jobs one owner may have queued or running at once; past it, 429."""

    job_lease_s: float = Field(default=30.0, gt=0)
    """A running job whose runner has not reported for this long is re-run, in seconds."""

    cache_url: str = ""
    """fsspec URL of the output cache (identical requests answered from storage); empty
    means ``{home}/cache/audio``."""

    cache_max_age_s: int = Field(default=86_400, ge=0)
    """``Cache-Control: max-age`` of audio responses, in seconds."""

    storage_timeout_s: float = Field(default=30.0, gt=0)
    """Timeout of one object-storage request (connecting, and waiting for a reply), in
    seconds."""

    storage_attempts: int = Field(default=3, ge=1, le=10)
    """Tries of one object-storage request before it fails (``StorageError``, HTTP 503)."""

    s3_endpoint_url: str = ""
    """S3 endpoint for ``s3://`` URLs (SeaweedFS, MinIO, R2, ...); empty: AWS itself."""

    s3_access_key_id: str = ""
    """S3 access key id; empty: botocore's own credential chain (``AWS_*``, ~/.aws, an
    instance role)."""

    s3_secret_access_key: SecretStr = SecretStr("")
    """S3 secret access key, with ``s3_access_key_id``."""

    s3_region: str = ""
    """S3 region; empty: botocore's default."""

    gcs_endpoint_url: str = ""
    """GCS endpoint for ``gs://`` URLs (an emulator); empty: Google itself, or gcsfs's own
    ``STORAGE_EMULATOR_HOST``."""

    gcs_project: str = ""
    """GCP project; empty: the credentials' own."""

    gcs_token: str = ""
    """How gcsfs authenticates: a service-account JSON file (which can also sign URLs),
    ``anon``, ``cloud`` or ``google_default`` (what empty means)."""

    signed_url_expiry_s: int = Field(default=900, ge=1, le=7 * 24 * 3600)
    """Lifetime of a signed URL to stored audio, in seconds."""

    audio_redirect: bool = False
    """``GET /v1/syntheses/{id}/audio`` redirects to a signed URL where the store can sign
    one (S3; GCS with service-account credentials) instead of streaming through us."""

    audio_retention_days: float = Field(default=0.0, ge=0)
    """Stored audio older than this many days is deleted by ``voicepocket gc``; 0 keeps it
    forever."""

    redis_url: str = ""
    """Redis of a cluster (``redis://host:6379/0``, ``unix:///path/redis.sock``): per-key
    request counts shared by every ingress replica, voice-eviction broadcasts and replica
    stats. Empty: each process counts alone (enough on one machine). Never holds models."""

    redis_prefix: str = "voicepocket:"
    """Prefix of every Redis key and channel VoicePocket uses."""

    cluster_workers: int = Field(default=2, ge=1)
    """``serve --cluster``: voice-worker replicas (each a byte-budgeted pool of
    ``pool_bytes`` and ``workers`` inference slots)."""

    cluster_ingress_replicas: int = Field(default=1, ge=1)
    """``serve --cluster``: replicas of the HTTP ingress (the FastAPI app)."""

    cluster_worker_cpus: float = Field(default=0.5, gt=0)
    """CPUs Ray reserves per voice-worker replica (fractional, so a 2-core machine fits)."""

    cluster_ingress_cpus: float = Field(default=0.25, gt=0)
    """CPUs Ray reserves per ingress replica."""

    cluster_max_ongoing: int = Field(default=64, ge=1)
    """Requests one replica takes at once; high, so a busy replica is not skipped for one
    that must load the voice again."""

    cluster_object_store_bytes: int = Field(default=256 * 1024**2, ge=75 * 1024**2)
    """Object store of a Ray instance ``serve --cluster auto`` starts itself, in bytes."""

    cluster_temp_dir: str = ""
    """Ray's temp dir when ``serve --cluster auto`` starts Ray itself; empty: Ray's own."""

    cluster_train_workers: int = Field(default=1, ge=0)
    """``serve --cluster``: training-worker replicas, each running one training at a time
    in a Ray reservation of its own (``train_gpus`` GPUs and a CPU, else ``train_threads``
    CPUs); 0: none (trainings wait for a ``voicepocket train-worker``). Ingress replicas
    never train, whatever ``train_worker`` says."""

    # -- training a user's own voice ---------------------------------------------------

    train_bases: dict[str, str] = Field(default_factory=dict)
    """Default training base per language, a JSON map (``{"en": "en-base"}``) of names
    ``voicepocket bases add`` registered; a draft may name another base."""

    train_worker: bool = True
    """``voicepocket serve`` runs a training worker in its process (one training at a
    time); off, trainings wait for a ``voicepocket train-worker``."""

    train_min_seconds: float = Field(default=600.0, ge=0)
    """Accepted speech a voice needs before it may train, in seconds. Ten minutes is the
    low end of what coqui VITS fine-tunes are reported to need for a recognisable voice."""

    train_max_steps: int = Field(default=10_000, ge=1)
    """Most optimizer steps one training round takes."""

    train_steps_per_minute: int = Field(default=300, ge=1)
    """Steps per minute of accepted speech (the budget grows with the dataset, up to
    ``train_max_steps``)."""

    train_checkpoint_steps: int = Field(default=250, ge=1)
    """A checkpoint (for resuming a killed training) every this many steps."""

    train_batch_size: int = Field(default=8, ge=1)
    """Clips per training step."""

    train_learning_rate: float = Field(default=5e-5, gt=0)
    """Learning rate of both VITS optimizers when fine-tuning (coqui's recipes train from
    scratch at 2e-4; a fine-tune moves a trained base, so a lower rate)."""

    train_seed: int = 54321
    """Seed of a training run (coqui's default); runs on the same data repeat."""

    train_threads: int = Field(default_factory=lambda: max(1, (os.cpu_count() or 2) - 1), ge=1)
    """torch threads of a CPU training (the default leaves a core to serving); it also runs
    at idle priority."""

    train_gpus: float = Field(default=0.0, ge=0)
    """In a cluster, GPUs a training task asks Ray for (0: CPUs set apart from the voice
    workers)."""

    trainings_per_owner: int = Field(default=1, ge=1)
    """Trainings one owner may have queued or running at once; past it, 429."""

    train_max_crashes: int = Field(default=3, ge=1)
    """A training whose process dies this many times ends ``failed``."""

    train_timeout_s: float = Field(default=6 * 3600.0, gt=0)
    """Longest one training round may run before it is stopped and failed, in seconds."""

    sample_min_rate: int = Field(default=16_000, ge=8_000)
    """Lowest sample rate a recording may have, in Hertz (below it, consonants are gone)."""

    sample_min_s: float = Field(default=1.0, gt=0)
    """Shortest speech a sample may hold once silence is trimmed, in seconds."""

    sample_max_s: float = Field(default=20.0, gt=0)
    """Longest speech a sample may hold, in seconds (VITS trains on clips up to ~20 s)."""

    sample_clipped_share: float = Field(default=0.001, gt=0, le=1)
    """Share of samples at full scale past which a recording counts as clipped (0.1%:
    one sample in a thousand pinned at the rail is audible distortion)."""

    sample_min_snr_db: float = Field(default=15.0)
    """Least ratio of speech energy to the recording's quietest frames, in dB (under 15 dB
    a trained voice learns the room's noise)."""

    sample_loudness_lufs: float = Field(default=-23.0, le=0)
    """Loudness every accepted sample is normalized to (EBU R128's -23 LUFS)."""

    sample_max_wer: float = Field(default=0.5, ge=0)
    """English: word error rate between the recognizer's transcript and the text read past
    which a sample is ``text_mismatch`` (tiny.en mishears a word in ten on clean speech;
    half the words wrong is another sentence)."""

    @model_validator(mode="after")
    def _fill_defaults_under_home(self) -> Settings:
        home = self.home.expanduser()
        object.__setattr__(self, "home", home)
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{home / 'voicepocket.db'}")
        if not self.store_url:
            object.__setattr__(self, "store_url", str(home / "audio"))
        if not self.models_url:
            object.__setattr__(self, "models_url", str(home / "models"))
        if not self.cache_url:
            object.__setattr__(self, "cache_url", str(home / "cache" / "audio"))
        return self

"""The engine with its model repository and audio store on S3 (SeaweedFS): a voice
registered there is spoken after the worker's local cache is dropped, and
``voicepocket gc`` expires stored audio with its records."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from conftest import make_settings
from speech_check import transcribe, word_error_rate
from storage.servers import BUCKET, S3_KEY, S3_SECRET, Server, s3_client
from typer.testing import CliRunner

from voicepocket import audio
from voicepocket.chunks import SynthesisParams
from voicepocket.engine import Engine
from voicepocket.registry.models import utcnow
from voicepocket.registry.syntheses import Synthesis
from voicepocket.settings import Settings
from voicepocket.store import AudioStore

SENTENCE = "Every worker fetches this voice from the bucket once, then reads it from disk."


def _s3_settings(home: Path, server: Server, **overrides: object) -> Settings:
    run = uuid.uuid4().hex[:12]
    return make_settings(
        home,
        models_url=f"s3://{BUCKET}/{run}/models",
        store_url=f"s3://{BUCKET}/{run}/audio",
        s3_endpoint_url=server.endpoint,
        s3_access_key_id=S3_KEY,
        s3_secret_access_key=S3_SECRET,
        s3_region="us-east-1",
        storage_timeout_s=5.0,
        storage_attempts=2,
        **overrides,
    )


@pytest.fixture
def s3_engine(seaweedfs: Server, tmp_path: Path) -> Iterator[Engine]:
    engine = Engine(_s3_settings(tmp_path / "home", seaweedfs))
    engine.start(prewarm=False)
    yield engine
    engine.close()


def test_voice_registered_on_s3_speaks_after_the_local_cache_is_dropped(
    s3_engine: Engine, seaweedfs: Server, joe_files: tuple[Path, Path]
) -> None:
    model, config = joe_files
    record = s3_engine.add_voice(
        owner="alice", slug="joe-s3", model_file=model, config_file=config, prewarm=False
    )
    prefix = s3_engine.settings.models_url.removeprefix(f"s3://{BUCKET}/")
    listed = s3_client(seaweedfs.endpoint).list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    keys = {o["Key"].removeprefix(f"{prefix}/") for o in listed["Contents"]}
    assert {f"{record.model_key}/voice.onnx", f"{record.model_key}/voice.onnx.json"} <= keys

    # A fresh worker: nothing resident, nothing cached. The miss must go to S3.
    s3_engine.voices.discard(record.pool_key)
    shutil.rmtree(s3_engine.registry.models.cache_dir)
    # Noise off: the same audio every run, so the recognizer's verdict is not a lottery.
    silent_noise = SynthesisParams(noise_scale=0.0, noise_w=0.0)
    with s3_engine.speak("alice/joe-s3", SENTENCE, params=silent_noise) as speech:
        chunks = list(speech)
    assert s3_engine.registry.models.fetches == 1
    samples = np.concatenate([c.samples for c in chunks])
    assert word_error_rate(SENTENCE, transcribe(samples, chunks[0].sample_rate)) <= 0.15

    # The audio goes to the S3 store, all or nothing, at {owner}/{uuid}.{ext}.
    stored = s3_engine.audio.put("alice", "wav", [audio.encode_all(chunks, "wav")])
    assert s3_engine.audio.objects.read_bytes(stored.key)[:4] == b"RIFF"


def test_gc_expires_audio_and_its_records(
    seaweedfs: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``voicepocket gc`` against an S3 audio store (the models stay local: not its
    business): old audio goes with its records, a record whose audio is gone goes too."""
    home = tmp_path / "home"
    for name, value in {
        "home": home, "store_url": f"s3://{BUCKET}/{uuid.uuid4().hex[:12]}/audio",
        "s3_endpoint_url": seaweedfs.endpoint, "s3_access_key_id": S3_KEY,
        "s3_secret_access_key": S3_SECRET, "s3_region": "us-east-1",
        "storage_timeout_s": 5, "storage_attempts": 2,
    }.items():  # fmt: skip
        monkeypatch.setenv(f"VOICEPOCKET_{name.upper()}", str(value))
    engine = Engine(Settings())
    engine.start(prewarm=False)
    try:
        stored = [engine.audio.put("alice", "wav", [b"RIFF audio"]) for _ in range(2)]
        ghost = AudioStore.key_for("alice", uuid.uuid4().hex, "wav")  # audio already gone
        for key, created in [
            (stored[0].key, utcnow()),
            (stored[1].key, utcnow()),
            (ghost, utcnow() - timedelta(days=3)),
        ]:
            _record(engine, key, created)
    finally:
        engine.close()

    from voicepocket.cli import app

    # A registration killed mid-write left a staging file in the (local) model store two
    # days ago, and another is being written now: gc sweeps the old one only, whatever
    # the audio retention.
    staging = Path(Settings().models_url) / ".staging"
    staging.mkdir(parents=True, exist_ok=True)
    for name, age_s in (("killed", 2 * 86400), ("writing", 0)):
        (staging / name).write_bytes(b"half a model")
        os.utime(staging / name, (time.time() - age_s,) * 2)

    runner = CliRunner()
    result = runner.invoke(app, ["gc"])  # VOICEPOCKET_AUDIO_RETENTION_DAYS=0: off
    assert result.exit_code == 0, result.output
    assert "no audio deleted; unfinished uploads aborted: 1" in result.output
    assert [p.name for p in staging.iterdir()] == ["writing"]

    result = runner.invoke(app, ["gc", "--days", "1"])  # all audio younger than that
    assert result.exit_code == 0, result.output
    assert "deleted 0 audio objects" in result.output
    assert _record_keys() == sorted(s.key for s in stored)  # the ghost's record went

    monkeypatch.setenv("VOICEPOCKET_AUDIO_RETENTION_DAYS", "1e-9")  # 86 µs: all is older
    result = runner.invoke(app, ["gc", "--dry-run"])
    assert "would delete 2 audio objects" in result.output
    result = runner.invoke(app, ["gc"])
    assert result.exit_code == 0, result.output
    assert "deleted 2 audio objects" in result.output
    assert _record_keys() == []
    engine = Engine(Settings())
    try:
        assert engine.audio.objects.list() == []
    finally:
        engine.close()


def _record(engine: Engine, key: str, created: datetime) -> None:
    engine.registry.syntheses.record(
        Synthesis(
            id=key.split("/")[1].split(".")[0], owner="alice", voice="demo/joe", format="wav",
            storage_key=key, bytes=10, duration_s=1.0, input_chars=5, created_at=created,
        )
    )  # fmt: skip


def _record_keys() -> list[str]:
    engine = Engine(Settings())
    try:
        return sorted(s.storage_key for s in engine.registry.syntheses.list(owner="alice"))
    finally:
        engine.close()

"""The model repository on GCS and S3: a content-addressed local cache per worker,
verified by sha256, fetched once even when threads and processes miss together."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest
from storage.backends import Backend, fetch_in_process

from voicepocket.errors import StorageError
from voicepocket.registry.repository import CONFIG_NAME, MODEL_NAME, ModelRepository, sha256_of

MIB = 1024**2


class VoiceFiles:
    """A fake voice: the repository moves bytes and never parses them."""

    def __init__(self, folder: Path, *, model_bytes: int = 3 * MIB, seed: int = 1) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.model = folder / "model.onnx"
        self.config = folder / "model.onnx.json"
        self.model.write_bytes(hashlib.sha256(str(seed).encode()).digest() * (model_bytes // 32))
        self.config.write_text(json.dumps({"audio": {"sample_rate": 22050}, "seed": seed}))
        self.model_sha = sha256_of(self.model)
        self.config_sha = sha256_of(self.config)
        self.key = ModelRepository.key_for("alice", f"voice{seed}", self.model_sha)


def _no_temporaries(cache_dir: Path) -> bool:
    return not [p for p in cache_dir.iterdir() if p.is_dir() and p.name.startswith(".")]


def test_registration_seeds_the_cache_and_a_new_worker_fetches_once(
    remote_backend: Backend, tmp_path: Path
) -> None:
    voice = VoiceFiles(tmp_path / "voice")
    registrar = ModelRepository(remote_backend.store(), cache_dir=tmp_path / "cache-a")
    registrar.put_voice(voice.key, voice.model, voice.config)
    assert remote_backend.raw_keys() == [f"{voice.key}/{MODEL_NAME}", f"{voice.key}/{CONFIG_NAME}"]
    path = registrar.model_path(voice.key, voice.model_sha, config_sha256=voice.config_sha)
    assert registrar.fetches == 0  # seeded at registration: no download

    worker = ModelRepository(remote_backend.store(), cache_dir=tmp_path / "cache-b")
    path = worker.model_path(voice.key, voice.model_sha, config_sha256=voice.config_sha)
    assert worker.fetches == 1
    assert path == worker.cache_entry(voice.model_sha, voice.config_sha) / MODEL_NAME
    assert sha256_of(path) == voice.model_sha
    assert (path.parent / CONFIG_NAME).read_bytes() == voice.config.read_bytes()

    # Later misses read local disk: even with the remote copy gone, nothing is fetched.
    remote_backend.store().delete(voice.key)
    assert worker.model_path(voice.key, voice.model_sha, config_sha256=voice.config_sha) == path
    assert worker.fetches == 1
    assert _no_temporaries(tmp_path / "cache-b")


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "delete", "config"])
def test_a_corrupted_cached_copy_is_fetched_again(
    remote_backend: Backend, tmp_path: Path, damage: str
) -> None:
    voice = VoiceFiles(tmp_path / "voice")
    worker = ModelRepository(remote_backend.store(), cache_dir=tmp_path / "cache")
    worker.put_voice(voice.key, voice.model, voice.config)
    path = worker.model_path(voice.key, voice.model_sha, config_sha256=voice.config_sha)
    if damage == "flip a byte":
        with path.open("r+b") as model:
            model.seek(MIB)
            byte = model.read(1)
            model.seek(MIB)
            model.write(bytes([byte[0] ^ 0xFF]))
    elif damage == "truncate":
        os.truncate(path, MIB)
    elif damage == "delete":
        path.unlink()
    else:
        (path.parent / CONFIG_NAME).write_text("{}")
    again = worker.model_path(voice.key, voice.model_sha, config_sha256=voice.config_sha)
    assert again == path
    assert worker.fetches == 1
    assert sha256_of(again) == voice.model_sha
    assert sha256_of(again.parent / CONFIG_NAME) == voice.config_sha
    assert _no_temporaries(tmp_path / "cache")


def test_a_repository_copy_that_does_not_match_its_sha_is_refused(
    remote_backend: Backend, tmp_path: Path
) -> None:
    voice = VoiceFiles(tmp_path / "voice")
    objects = remote_backend.store()
    ModelRepository(objects, cache_dir=tmp_path / "seeded").put_voice(
        voice.key, voice.model, voice.config
    )
    objects.put_bytes(f"{voice.key}/{MODEL_NAME}", b"tampered")
    worker = ModelRepository(objects, cache_dir=tmp_path / "cache")
    with pytest.raises(StorageError):
        worker.model_path(voice.key, voice.model_sha, config_sha256=voice.config_sha)
    assert not worker.cache_entry(voice.model_sha, voice.config_sha).exists()
    assert _no_temporaries(tmp_path / "cache")


def test_missing_repository_files_are_a_storage_error(
    remote_backend: Backend, tmp_path: Path
) -> None:
    worker = ModelRepository(remote_backend.store(), cache_dir=tmp_path / "cache")
    with pytest.raises(StorageError):
        worker.model_path("alice/ghost/0123456789abcdef", "0" * 64)


def test_threads_missing_together_fetch_once(remote_backend: Backend, tmp_path: Path) -> None:
    voice = VoiceFiles(tmp_path / "voice", model_bytes=12 * MIB)
    ModelRepository(remote_backend.store(), cache_dir=tmp_path / "seeded").put_voice(
        voice.key, voice.model, voice.config
    )
    worker = ModelRepository(remote_backend.store(), cache_dir=tmp_path / "cache")
    start = threading.Barrier(6)

    def miss() -> Path:
        start.wait()
        return worker.model_path(voice.key, voice.model_sha, config_sha256=voice.config_sha)

    with ThreadPoolExecutor(6) as pool:
        paths = list(pool.map(lambda _: miss(), range(6)))
    assert len(set(paths)) == 1
    assert worker.fetches == 1
    assert sha256_of(paths[0]) == voice.model_sha
    assert _no_temporaries(tmp_path / "cache")


def test_processes_missing_together_fetch_once(remote_backend: Backend, tmp_path: Path) -> None:
    voice = VoiceFiles(tmp_path / "voice", model_bytes=12 * MIB)
    ModelRepository(remote_backend.store(), cache_dir=tmp_path / "seeded").put_voice(
        voice.key, voice.model, voice.config
    )
    cache = tmp_path / "cache"
    # fork: the children need nothing the parent has not imported (spawn costs ~2 s each).
    fork = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(3, mp_context=fork) as pool:
        args = (remote_backend.url, remote_backend.options, str(cache), voice.key, voice.model_sha)
        futures = [pool.submit(fetch_in_process, *args) for _ in range(3)]
        fetches = [future.result(timeout=120) for future in futures]
    assert sum(fetches) == 1  # one process downloaded; the others found it on disk
    assert sha256_of(cache / voice.model_sha / MODEL_NAME) == voice.model_sha
    assert _no_temporaries(cache)

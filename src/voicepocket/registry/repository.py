"""The model repository: registered voices' files in object storage, cached locally.

Layout: ``{owner}/{slug}/{sha256[:16]}/voice.onnx`` and ``voice.onnx.json``; a trained
voice's samples and checkpoints under ``{owner}/{slug}/training/``; training bases under
``bases/{name}/`` (``bases`` is a reserved owner name). The prefix
changes whenever the model changes, so a replaced voice never shadows its old bytes.

On a local repository the files are loaded in place. On a remote one (``gs://``,
``s3://``) each worker keeps a content-addressed cache: the files of a voice live in
``{cache_dir}/{model_sha256}-{config_sha256[:16]}/``, fetched once; every later pool miss
reads local disk. Before a cached copy is handed out its bytes are hashed and compared
with the sha256 the registry recorded, so a corrupted or truncated copy is fetched again
(hashing the 63 MB bundled voice takes about 0.1 s, against 0.5 s to load it). Fetches
are single-flight across threads *and* processes (an exclusive ``flock`` per entry), are
written to a private temporary folder, checked, and renamed into place, so a reader sees
a complete entry or none. Registration seeds the cache with the files it just checked.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from voicepocket.errors import StorageError
from voicepocket.store import ObjectStore

_LOGGER = logging.getLogger(__name__)

MODEL_NAME = "voice.onnx"
CONFIG_NAME = "voice.onnx.json"
_BLOCK = 1024 * 1024


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def training_prefix(owner: str, slug: str) -> str:
    """Where a trained voice's samples and checkpoints live: beside its versions, whose
    prefixes are 16 hex digits, never ``training``."""
    return f"{owner}/{slug}/training"


def file_blocks(path: Path) -> Iterator[bytes]:
    """A file's bytes in 1 MiB blocks, for ``ObjectStore.put``."""
    with path.open("rb") as source:
        while block := source.read(_BLOCK):
            yield block


class ModelRepository:
    """Voice files under one storage root, with a local cache for remote roots."""

    def __init__(self, objects: ObjectStore, *, cache_dir: Path) -> None:
        self.objects = objects
        self.cache_dir = cache_dir
        self.fetches = 0
        """Voices fetched from remote storage by this object (a pool miss that had to go
        to the network rather than to local disk)."""
        self._fetches_lock = threading.Lock()  # guards ``fetches``

    @staticmethod
    def key_for(owner: str, slug: str, model_sha256: str) -> str:
        """The prefix holding one version of a voice's files."""
        return f"{owner}/{slug}/{model_sha256[:16]}"

    def put_voice(self, model_key: str, model_file: Path, config_file: Path) -> None:
        """Store both files under ``model_key``; on failure neither is left behind. On a
        remote repository the files also go into the local cache, so the first load after
        registration need not download what was just uploaded."""
        try:
            self.objects.put(f"{model_key}/{MODEL_NAME}", file_blocks(model_file))
            self.objects.put(f"{model_key}/{CONFIG_NAME}", file_blocks(config_file))
        except BaseException:
            self.delete(model_key)
            raise
        if not self.objects.is_local:
            self._seed(model_file, config_file)

    def model_path(
        self, model_key: str, model_sha256: str, *, config_sha256: str | None = None
    ) -> Path:
        """A local path of the model (its config beside it as ``<model>.json``).

        Remote repositories answer from the local cache, fetching on a miss or when the
        cached bytes no longer match ``model_sha256`` / ``config_sha256``.
        """
        if self.objects.is_local:
            return Path(self.objects.path(f"{model_key}/{MODEL_NAME}"))
        return self._cached(model_key, model_sha256, config_sha256)

    def cache_entry(self, model_sha256: str, config_sha256: str | None = None) -> Path:
        """The cache folder of one (model, config) pair."""
        name = model_sha256 if config_sha256 is None else f"{model_sha256}-{config_sha256[:16]}"
        return self.cache_dir / name

    def delete(self, model_key: str) -> None:
        """Remove one version of a voice's files (cached copies are left: they are keyed
        by content, so they can never be mistaken for another voice's)."""
        self.objects.delete(model_key)

    # -- the cache -------------------------------------------------------------------

    def _cached(self, model_key: str, model_sha: str, config_sha: str | None) -> Path:
        entry = self.cache_entry(model_sha, config_sha)
        if self._intact(entry, model_sha, config_sha):
            return entry / MODEL_NAME
        with self._entry_lock(entry):
            # Another thread or process may have fetched it while we waited.
            if self._intact(entry, model_sha, config_sha):
                return entry / MODEL_NAME
            if entry.exists():
                _LOGGER.warning("Cached voice files in %s are corrupt; fetching again", entry)
            self._fetch_locked(model_key, entry, model_sha, config_sha)
        return entry / MODEL_NAME

    def _fetch_locked(
        self, model_key: str, entry: Path, model_sha: str, config_sha: str | None
    ) -> None:
        """Download both files into a private folder, check them, rename into place."""
        staging = Path(tempfile.mkdtemp(dir=self.cache_dir, prefix=f".fetch-{entry.name[:16]}-"))
        try:
            got_model = self._download(f"{model_key}/{MODEL_NAME}", staging / MODEL_NAME)
            got_config = self._download(f"{model_key}/{CONFIG_NAME}", staging / CONFIG_NAME)
            if got_model != model_sha or (config_sha is not None and got_config != config_sha):
                raise StorageError(
                    "The model repository's copy of a voice does not match its recorded sha256."
                )
            self._install(staging, entry)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        with self._fetches_lock:
            self.fetches += 1

    def _download(self, key: str, target: Path) -> str:
        digest = hashlib.sha256()
        try:
            blocks = self.objects.iter_bytes(key, block_size=_BLOCK)
            with target.open("wb") as sink:
                for block in blocks:
                    digest.update(block)
                    sink.write(block)
        except FileNotFoundError as exc:
            raise StorageError("A voice's files are missing from the model repository.") from exc
        return digest.hexdigest()

    def _seed(self, model_file: Path, config_file: Path) -> None:
        """Put just-registered files into the cache (best effort: a miss fetches them)."""
        try:
            model_sha, config_sha = sha256_of(model_file), sha256_of(config_file)
            entry = self.cache_entry(model_sha, config_sha)
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            with self._entry_lock(entry):
                if self._intact(entry, model_sha, config_sha):
                    return
                staging = Path(tempfile.mkdtemp(dir=self.cache_dir, prefix=".seed-"))
                try:
                    shutil.copyfile(model_file, staging / MODEL_NAME)
                    shutil.copyfile(config_file, staging / CONFIG_NAME)
                    self._install(staging, entry)
                finally:
                    shutil.rmtree(staging, ignore_errors=True)
        except OSError:
            _LOGGER.warning("Could not seed the model cache", exc_info=True)

    @staticmethod
    def _install(staging: Path, entry: Path) -> None:
        """Swap ``staging`` in as ``entry``: a reader sees the old entry, none, or the new
        one, never a half-written folder. The caller holds the entry's lock."""
        if entry.exists():
            condemned = entry.with_name(f".old-{entry.name[:16]}-{uuid.uuid4().hex}")
            entry.rename(condemned)
            shutil.rmtree(condemned, ignore_errors=True)
        staging.rename(entry)

    @staticmethod
    def _intact(entry: Path, model_sha: str, config_sha: str | None) -> bool:
        try:
            if sha256_of(entry / MODEL_NAME) != model_sha:
                return False
            return config_sha is None or sha256_of(entry / CONFIG_NAME) == config_sha
        except FileNotFoundError:
            return False

    @contextmanager
    def _entry_lock(self, entry: Path) -> Iterator[None]:
        """Exclusive access to one cache entry for this thread, across processes too:
        ``flock`` locks belong to an open file, so each caller opens its own."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.cache_dir / f".{entry.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the file releases the lock

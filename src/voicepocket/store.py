"""Object storage through fsspec: a local folder by default, ``gs://`` or ``s3://`` alike.

Owns putting, reading and deleting objects under a root URL, and the audio layout
``{owner}/{uuid}.{ext}`` the seed's bucket used. Writes are atomic: an object is written
under a hidden staging prefix and moved into place only once complete, so a failure
mid-write leaves nothing visible at the final key. Knows nothing of voices.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import fsspec
from fsspec.implementations.local import LocalFileSystem

from voicepocket.errors import InvalidVoiceId, StorageError

STAGING_PREFIX = ".staging"
"""Objects being written live here until complete; readers never list it."""

_KEY_PART = re.compile(r"[a-z0-9][a-z0-9_.-]{0,127}")


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not all(_KEY_PART.fullmatch(part) for part in parts) or ".." in key:
        raise InvalidVoiceId(f"Invalid storage key {key!r}.")
    return key


class ObjectStore:
    """Objects under one fsspec root URL, written atomically."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        try:
            self._fs, self._root = fsspec.core.url_to_fs(self.url)
        except (ImportError, ValueError) as exc:
            raise StorageError(f"Storage URL {url!r} is not usable.") from exc
        self._root = self._root.rstrip("/")
        if self.is_local:
            self._fs.makedirs(self._root, exist_ok=True)

    @property
    def is_local(self) -> bool:
        """Whether objects are plain files on this machine."""
        return isinstance(self._fs, LocalFileSystem)

    def path(self, key: str) -> str:
        """The backend path of ``key`` (a file path for local storage)."""
        return f"{self._root}/{_check_key(key)}"

    def put(self, key: str, chunks: Iterable[bytes]) -> int:
        """Write ``chunks`` to ``key`` atomically; return the bytes written."""
        final = self.path(key)
        staging = f"{self._root}/{STAGING_PREFIX}/{uuid.uuid4().hex}"
        written = 0
        try:
            self._make_parent(staging)
            self._make_parent(final)
            with self._fs.open(staging, "wb") as sink:
                for chunk in chunks:
                    sink.write(chunk)
                    written += len(chunk)
            self._fs.mv(staging, final)
        except BaseException as exc:
            self._remove_quietly(staging)
            if isinstance(exc, OSError):
                raise StorageError("Writing to object storage failed.") from exc
            raise
        return written

    def put_bytes(self, key: str, data: bytes) -> int:
        """Write ``data`` to ``key`` atomically."""
        return self.put(key, [data])

    def read_bytes(self, key: str) -> bytes:
        """The whole object at ``key``."""
        try:
            return self._fs.cat_file(self.path(key))
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise StorageError("Reading from object storage failed.") from exc

    def iter_bytes(self, key: str, *, block_size: int = 256 * 1024) -> Iterator[bytes]:
        """The object at ``key`` in blocks, for streaming it out."""
        try:
            with self._fs.open(self.path(key), "rb") as source:
                while block := source.read(block_size):
                    yield block
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise StorageError("Reading from object storage failed.") from exc

    def exists(self, key: str) -> bool:
        """Whether an object is at ``key``."""
        try:
            return self._fs.exists(self.path(key))
        except OSError as exc:
            raise StorageError("Object storage is unreachable.") from exc

    def delete(self, key: str) -> None:
        """Delete ``key`` and, if it is a prefix, everything below it; missing is fine."""
        path = self.path(key)
        try:
            if self._fs.exists(path):
                self._fs.rm(path, recursive=True)
        except OSError as exc:
            raise StorageError("Deleting from object storage failed.") from exc

    def list(self, prefix: str = "") -> list[str]:
        """Keys of the complete objects below ``prefix`` (everything, if empty)."""
        keys = self._find(self.path(prefix) if prefix else self._root)
        return [key for key in keys if not key.startswith(f"{STAGING_PREFIX}/")]

    def staging_keys(self) -> list[str]:
        """Objects left in staging (only a crashed writer leaves any)."""
        return self._find(f"{self._root}/{STAGING_PREFIX}")

    def _find(self, base: str) -> list[str]:
        try:
            found = self._fs.find(base)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StorageError("Listing object storage failed.") from exc
        root = self._root.rstrip("/") + "/"
        return sorted(p.removeprefix(root) for p in found)

    def _make_parent(self, path: str) -> None:
        if self.is_local:
            self._fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)

    def _remove_quietly(self, path: str) -> None:
        try:
            if self._fs.exists(path):
                self._fs.rm(path)
        except OSError:
            pass


@dataclass(frozen=True, slots=True)
class StoredAudio:
    """Where one synthesis was stored."""

    key: str
    """``{owner}/{uuid}.{ext}``."""

    bytes: int
    """Size of the stored object."""


class AudioStore:
    """Synthesized audio at ``{owner}/{uuid}.{ext}``, the seed's bucket layout."""

    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects

    @staticmethod
    def key_for(owner: str, audio_id: str, ext: str) -> str:
        """The key of audio ``audio_id`` of ``owner``."""
        return f"{owner}/{audio_id}.{ext}"

    def put(self, owner: str, ext: str, chunks: Iterable[bytes]) -> StoredAudio:
        """Store audio under a new uuid for ``owner``; nothing is visible if it fails."""
        key = self.key_for(owner, uuid.uuid4().hex, ext)
        size = self.objects.put(key, chunks)
        return StoredAudio(key=key, bytes=size)

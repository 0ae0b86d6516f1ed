"""Object storage through fsspec: a local folder by default, ``gs://`` or ``s3://`` alike.

Owns :class:`ObjectStore`: putting, reading, listing and deleting objects under a root
URL, with keys checked, signed URLs, and finding and aborting unfinished writes. Knows
nothing of voices or of the audio layout (``voicepocket.store.audio``); the file system
underneath and its options come from ``voicepocket.store.backends``.

No partial object is ever visible, and how that is made true differs per backend:

* **Local folder**: the object is written to ``{root}/.staging/{uuid}`` and renamed into
  place with :func:`os.replace`, which is atomic within one file system (staging sits
  under the root, so it is the same one). Writing straight to the final path would expose
  a growing file to readers, and a crash would leave a truncated one.
* **S3 and GCS**: the object is written *directly* at its final key, because an object
  store creates an object only when its upload completes: a single PUT (a small object),
  ``CompleteMultipartUpload`` (S3) or the final chunk of a resumable upload (GCS). Parts
  and chunks sent before that are invisible. Staging plus ``mv`` would gain nothing
  there: ``mv`` on an object store is a server-side copy plus a delete (two more
  requests, double the write cost, and a staging object leaked if the delete fails; on
  GCS, gcsfs first tries a ``moveTo`` call that flat buckets and the emulator refuse,
  which cost 34 s of retries in our measurements). What matters is that a failed write
  is never *completed*: fsspec's file objects complete the upload on ``close()``, also
  from ``__exit__`` after an exception and from ``__del__``, so on any failure we mark the
  file closed without closing it and ``discard()`` it, which aborts the multipart upload
  (S3) or cancels the resumable session (GCS). If even that abort cannot reach the
  server, the orphaned parts stay invisible: S3 keeps them until ``voicepocket gc`` (or
  a bucket lifecycle rule) aborts them, GCS drops unfinished sessions after a week.

Every failure of the storage backend itself (unreachable, timed out, refused credentials)
is raised as :class:`~voicepocket.errors.StorageError` (HTTP 503); a missing object is
``FileNotFoundError``; an exception raised by the *producer* of the bytes being written
(say, synthesis failing halfway) propagates unchanged after the upload is aborted.
"""

from __future__ import annotations

import builtins
import logging
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from fsspec.core import split_protocol
from fsspec.spec import AbstractFileSystem

from voicepocket.errors import StorageError, StoreKeyError, VoicePocketError
from voicepocket.store.backends import PROTOCOLS, Backend, StorageOptions, filesystem

_LOGGER = logging.getLogger(__name__)

STAGING_PREFIX = ".staging"
"""Local objects being written live here until complete; readers never list it."""

_KEY_PART = re.compile(r"[a-z0-9][a-z0-9_.-]{0,127}")


def _check_key(key: str) -> str:
    """``key`` if it is a well-formed storage key, else ``StoreKeyError``.

    Every key is built by our own code from checked names and generated ids, so a bad one
    is a bug of ours (a 500), never the client's input; the key goes to the log, not into
    the message a client sees.
    """
    parts = key.split("/")
    if not all(_KEY_PART.fullmatch(part) for part in parts) or ".." in key:
        _LOGGER.error("Refused a malformed storage key %r", key)
        raise StoreKeyError("A storage key was malformed.")
    return key


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One stored object."""

    key: str
    """Its key below the store's root."""

    bytes: int
    """Its size."""

    modified: datetime
    """When it was last written (UTC)."""


@dataclass(frozen=True, slots=True)
class PendingWrite:
    """A write a crashed or cut-off writer left unfinished: invisible, but taking space."""

    key: str
    """The key it was meant for (a staging name, for a local store)."""

    started: datetime
    """When it began (UTC)."""

    upload_id: str = ""
    """The S3 multipart upload id; empty for a local staging file."""


class ObjectStore:
    """Objects under one storage root URL; writes are all-or-nothing (see the module)."""

    def __init__(self, url: str, *, options: StorageOptions | None = None) -> None:
        self.url = url.rstrip("/")
        self.options = options or StorageOptions()
        protocol, path = split_protocol(url)
        backend = PROTOCOLS.get(protocol)
        if backend is None:
            raise StorageError(f"Storage URL {url!r} is not a local path, gs:// or s3:// URL.")
        self.backend = backend
        self._fs = filesystem(backend, self.options)
        if backend is Backend.LOCAL:
            self._root = os.path.abspath(os.path.expanduser(path)).rstrip("/")
            os.makedirs(self._root, exist_ok=True)
        else:
            self._root = path.strip("/")
            if not self._root:
                raise StorageError(f"Storage URL {url!r} names no bucket.")

    @property
    def is_local(self) -> bool:
        """Whether objects are plain files on this machine."""
        return self.backend is Backend.LOCAL

    @property
    def fs(self) -> AbstractFileSystem:
        """The fsspec file system underneath (for diagnostics and tests)."""
        return self._fs

    def path(self, key: str) -> str:
        """The backend path of ``key`` (a file path for local storage)."""
        return f"{self._root}/{_check_key(key)}"

    # -- writing ---------------------------------------------------------------------

    def put(self, key: str, chunks: Iterable[bytes]) -> int:
        """Write ``chunks`` to ``key``, replacing any object there; return the bytes
        written. Either the whole object becomes visible at once or nothing changes."""
        upload = self.upload(key)
        try:
            for chunk in chunks:  # the producer's own exceptions pass through unchanged
                upload.write(chunk)
            upload.commit()
        except BaseException:
            upload.abort()
            raise
        return upload.written

    def put_bytes(self, key: str, data: bytes) -> int:
        """Write ``data`` to ``key`` atomically."""
        return self.put(key, [data])

    def upload(self, key: str) -> Upload:
        """An object written block by block as its bytes come (``write``), visible only
        once ``commit`` returns; ``abort`` leaves nothing. For streams that are sent on
        as they are stored (the output cache), where ``put`` would need them all first."""
        final = self.path(key)
        if self.is_local:
            return _LocalUpload(f"{self._root}/{STAGING_PREFIX}/{uuid.uuid4().hex}", final)
        with _storage_errors("Writing to object storage failed."):
            # No request yet: the upload starts once a block is full, or at close().
            sink = self._fs.open(final, "wb", block_size=self.options.block_bytes)
        return _RemoteUpload(sink, final)

    # -- reading ---------------------------------------------------------------------

    def read_bytes(self, key: str) -> bytes:
        """The whole object at ``key``."""
        path = self.path(key)
        with _storage_errors("Reading from object storage failed."):
            data: bytes = self._fs.cat_file(path)
            return data

    def iter_bytes(self, key: str, *, block_size: int = 256 * 1024) -> Iterator[bytes]:
        """The object at ``key`` in blocks, for streaming it out. The object is opened
        before this returns, so a missing object (``FileNotFoundError``) or an unreachable
        store (``StorageError``) surfaces here, before a response has started."""
        path = self.path(key)
        with _storage_errors("Reading from object storage failed."):
            source = self._fs.open(path, "rb", block_size=max(block_size, 5 * 1024**2))
        return self._blocks(source, block_size)

    @staticmethod
    def _blocks(source: Any, block_size: int) -> Iterator[bytes]:
        with source:
            while True:
                with _storage_errors("Reading from object storage failed."):
                    block = source.read(block_size)
                if not block:
                    return
                yield block

    def exists(self, key: str) -> bool:
        """Whether an object is at ``key``."""
        path = self.path(key)
        with _storage_errors("Object storage is unreachable."):
            return bool(self._fs.exists(path))

    def info(self, key: str) -> ObjectInfo:
        """Size and modification time of the object at ``key``."""
        path = self.path(key)
        with _storage_errors("Reading from object storage failed."):
            return self._object_info(path, self._fs.info(path))

    # -- listing and deleting --------------------------------------------------------

    def delete(self, key: str) -> None:
        """Delete ``key`` and, if it is a prefix, everything below it; missing is fine."""
        path = self.path(key)
        with _storage_errors("Deleting from object storage failed."):
            if self._fs.exists(path):
                self._fs.rm(path, recursive=True)
            self._fs.invalidate_cache()

    def list(self, prefix: str = "") -> builtins.list[str]:
        """Keys of the complete objects below ``prefix`` (everything, if empty)."""
        return [info.key for info in self.list_info(prefix)]

    def list_info(self, prefix: str = "") -> builtins.list[ObjectInfo]:
        """The complete objects below ``prefix``, with size and modification time."""
        base = self.path(prefix) if prefix else self._root
        with _storage_errors("Listing object storage failed."):
            self._fs.invalidate_cache()
            try:
                found = self._fs.find(base, detail=True)
            except FileNotFoundError:
                return []
            infos = [
                self._object_info(path, detail)
                for path, detail in found.items()
                if detail.get("type") != "directory"  # S3 "folders", not objects
            ]
        infos = [i for i in infos if i.key and not i.key.startswith(f"{STAGING_PREFIX}/")]
        return sorted(infos, key=lambda info: info.key)

    def _object_info(self, path: str, detail: dict[str, Any]) -> ObjectInfo:
        return ObjectInfo(
            key=path.removeprefix(self._root).lstrip("/"),
            bytes=int(detail.get("size") or 0),
            modified=_modified(detail),
        )

    # -- unfinished writes -----------------------------------------------------------

    def pending_writes(self) -> builtins.list[PendingWrite]:
        """Writes begun but never finished or aborted (only a crash, or a network cut
        that also stopped the abort, leaves any): local staging files and S3 multipart
        uploads. GCS cannot list unfinished resumable uploads; it expires them itself."""
        if self.is_local:
            staging = f"{self._root}/{STAGING_PREFIX}"
            with _storage_errors("Listing object storage failed."):
                names = os.listdir(staging) if os.path.isdir(staging) else []
                return [
                    PendingWrite(
                        key=f"{STAGING_PREFIX}/{name}",
                        started=datetime.fromtimestamp(
                            os.stat(f"{staging}/{name}").st_mtime, tz=UTC
                        ),
                    )
                    for name in sorted(names)
                ]
        if self.backend is Backend.S3:
            bucket, _, prefix = self._root.partition("/")
            with _storage_errors("Listing object storage failed."):
                reply = self._fs.call_s3(
                    "list_multipart_uploads", Bucket=bucket, Prefix=f"{prefix}/" if prefix else ""
                )
            return [
                PendingWrite(
                    key=upload["Key"].removeprefix(f"{prefix}/" if prefix else ""),
                    started=upload["Initiated"].astimezone(UTC),
                    upload_id=upload["UploadId"],
                )
                for upload in reply.get("Uploads", [])
            ]
        return []

    def staging_keys(self) -> builtins.list[str]:
        """Keys of :meth:`pending_writes`."""
        return [pending.key for pending in self.pending_writes()]

    def abort_pending_writes(self, *, older_than: timedelta, now: datetime | None = None) -> int:
        """Remove unfinished writes begun more than ``older_than`` ago; return how many."""
        cutoff = (now or datetime.now(UTC)) - older_than
        aborted = 0
        for pending in self.pending_writes():
            if pending.started >= cutoff:
                continue
            with _storage_errors("Deleting from object storage failed."):
                if self.is_local:
                    _remove_quietly(f"{self._root}/{pending.key}")
                else:
                    bucket, _, prefix = self._root.partition("/")
                    self._fs.call_s3(
                        "abort_multipart_upload",
                        Bucket=bucket,
                        Key=f"{prefix}/{pending.key}" if prefix else pending.key,
                        UploadId=pending.upload_id,
                    )
            aborted += 1
        return aborted

    # -- signed URLs -----------------------------------------------------------------

    def signed_url(self, key: str, *, expires_s: int) -> str | None:
        """A URL anyone holding it can GET ``key`` from for ``expires_s`` seconds, or
        ``None`` where the backend cannot make one: a local folder, or GCS credentials
        that cannot sign (anonymous, or a metadata-server token)."""
        path = self.path(key)
        if self.is_local:
            return None
        if self.backend is Backend.GCS and not self._gcs_can_sign():
            return None
        # V4 signatures: GCS's recommended scheme, and the only one S3 regions accept.
        extra = {"version": "v4"} if self.backend is Backend.GCS else {}
        with _storage_errors("Signing a storage URL failed."):
            url: str = self._fs.sign(path, expiration=int(expires_s), **extra)
            return url

    def _gcs_can_sign(self) -> bool:
        from google.auth.credentials import Signing

        return isinstance(getattr(self._fs.credentials, "credentials", None), Signing)

    def close(self) -> None:
        """Drop cached listings (connections close with the process)."""
        self._fs.invalidate_cache()


# -- helpers -------------------------------------------------------------------------


@contextmanager
def _storage_errors(message: str) -> Iterator[None]:
    """Translate a backend's exceptions into ``StorageError``, at this one boundary.

    ``FileNotFoundError`` means a missing object and passes through; so do our own
    errors. Everything else the backend raises (``OSError`` subclasses, botocore's
    ``EndpointConnectionError``, aiohttp's errors, fsspec's timeout) is the storage
    failing, whatever its type, so it becomes a 503 and never a 500.
    """
    try:
        yield
    except (FileNotFoundError, VoicePocketError):
        raise
    except Exception as exc:
        raise StorageError(message) from exc


class Upload(Protocol):
    """One object being written (``ObjectStore.upload``)."""

    written: int

    def write(self, chunk: bytes) -> None: ...

    def commit(self) -> None:
        """Make the object visible, whole."""
        ...

    def abort(self) -> None:
        """Leave nothing (idempotent; after ``commit``, nothing happens)."""
        ...


class _LocalUpload:
    """A staging file, renamed over the object's path once complete."""

    def __init__(self, staging: str, final: str) -> None:
        self._staging, self._final = staging, final
        self.written = 0
        self._done = False
        with _storage_errors("Writing to object storage failed."):
            os.makedirs(os.path.dirname(staging), exist_ok=True)
            os.makedirs(os.path.dirname(final), exist_ok=True)
            self._sink = open(staging, "wb")  # noqa: SIM115 - closed by commit or abort

    def write(self, chunk: bytes) -> None:
        self.written += _write_to(self._sink, chunk)

    def commit(self) -> None:
        with _storage_errors("Writing to object storage failed."):
            self._sink.flush()
            os.fsync(self._sink.fileno())  # the bytes are on disk before the name is
            self._sink.close()
            os.replace(self._staging, self._final)
        self._done = True

    def abort(self) -> None:
        if not self._done:
            self._done = True
            with suppress(OSError):
                self._sink.close()
            _remove_quietly(self._staging)


class _RemoteUpload:
    """An fsspec file in write mode: a multipart (S3) or resumable (GCS) upload that
    ``close`` completes."""

    def __init__(self, sink: Any, final: str) -> None:
        self._sink, self._final = sink, final
        self.written = 0
        self._done = False

    def write(self, chunk: bytes) -> None:
        self.written += _write_to(self._sink, chunk)

    def commit(self) -> None:
        with _storage_errors("Writing to object storage failed."):
            self._sink.close()  # the one step that makes the object visible
        self._done = True

    def abort(self) -> None:
        if not self._done:
            self._done = True
            _abort_upload(self._sink, self._final)


def _write_to(sink: Any, chunk: bytes) -> int:
    """Write ``chunk`` to an upload's file; its length."""
    with _storage_errors("Writing to object storage failed."):
        sink.write(chunk)
    return len(chunk)


def _abort_upload(sink: Any, path: str) -> None:
    """Make sure a failed upload is never completed, and free what it sent."""
    # close(), which completes the upload, returns at once on a closed file: this keeps
    # __exit__ and __del__ (and anyone else) from publishing the partial object.
    sink.closed = True
    try:
        sink.discard()  # S3: AbortMultipartUpload; GCS: cancel the resumable session
    except Exception:
        _LOGGER.warning(
            "Could not abort the unfinished upload of %s; it stays invisible", path, exc_info=True
        )


def _remove_quietly(path: str) -> None:
    with suppress(OSError):
        os.remove(path)


def _modified(detail: dict[str, Any]) -> datetime:
    """The modification time in an fsspec ``info`` record, whatever the backend."""
    for name in ("mtime", "LastModified", "updated", "timeCreated", "created"):
        value = detail.get(name)
        if value is None:
            continue
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, tz=UTC)
        if isinstance(value, str):
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
    raise StorageError("Object storage reported no modification time.")

"""Object storage through fsspec: a local folder by default, ``gs://`` or ``s3://`` alike.

Owns putting, reading, listing and deleting objects under a root URL, signed URLs, the
audio layout ``{owner}/{uuid}.{ext}`` the seed's bucket used, and its retention. Knows
nothing of voices. Backend options (endpoints, credentials, timeouts) come from
:class:`StorageOptions`, built from the one ``Settings`` object; nothing here reads the
environment.

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

import enum
import functools
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from fsspec.core import split_protocol
from fsspec.implementations.local import LocalFileSystem
from fsspec.spec import AbstractFileSystem

from voicepocket.errors import InvalidVoiceId, StorageError, VoicePocketError

if TYPE_CHECKING:
    from voicepocket.settings import Settings

_LOGGER = logging.getLogger(__name__)

STAGING_PREFIX = ".staging"
"""Local objects being written live here until complete; readers never list it."""

_KEY_PART = re.compile(r"[a-z0-9][a-z0-9_.-]{0,127}")
_AUDIO_KEY = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}/[0-9a-f]{32}\.[a-z0-9]{1,8}")


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not all(_KEY_PART.fullmatch(part) for part in parts) or ".." in key:
        raise InvalidVoiceId(f"Invalid storage key {key!r}.")
    return key


class Backend(enum.Enum):
    """The kinds of storage a URL can name."""

    LOCAL = "file"
    GCS = "gs"
    S3 = "s3"


_PROTOCOLS = {
    None: Backend.LOCAL,
    "file": Backend.LOCAL,
    "local": Backend.LOCAL,
    "gs": Backend.GCS,
    "gcs": Backend.GCS,
    "s3": Backend.S3,
    "s3a": Backend.S3,
}


@dataclass(frozen=True, slots=True)
class StorageOptions:
    """How to reach object storage: the ``storage_*``, ``s3_*`` and ``gcs_*`` settings."""

    timeout_s: float = 30.0
    """Timeout of one request to the backend (connecting, and waiting for a reply), in
    seconds."""

    attempts: int = 3
    """Tries of one request before the operation fails with ``StorageError``."""

    block_bytes: int = 8 * 1024**2
    """Upload part (S3) / resumable chunk (GCS) size, in bytes; smaller objects go up in
    one request. S3 needs at least 5 MiB, GCS a multiple of 256 KiB."""

    s3_endpoint_url: str = ""
    """S3 endpoint (SeaweedFS, MinIO, R2, ...); empty: AWS itself."""

    s3_access_key_id: str = ""
    """S3 access key id; empty: botocore's own credential chain."""

    s3_secret_access_key: str = ""
    """S3 secret key, with ``s3_access_key_id``."""

    s3_region: str = ""
    """S3 region; empty: botocore's default."""

    gcs_endpoint_url: str = ""
    """GCS endpoint (an emulator); empty: Google itself (or gcsfs's own
    ``STORAGE_EMULATOR_HOST`` convention)."""

    gcs_project: str = ""
    """GCP project for bucket operations; empty: the credentials' own."""

    gcs_token: str = ""
    """gcsfs authentication: a service-account JSON file, ``anon``, ``cloud`` or
    ``google_default`` (also what empty means)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> StorageOptions:
        """The storage fields of ``settings``."""
        return cls(
            timeout_s=settings.storage_timeout_s,
            attempts=settings.storage_attempts,
            s3_endpoint_url=settings.s3_endpoint_url,
            s3_access_key_id=settings.s3_access_key_id,
            s3_secret_access_key=settings.s3_secret_access_key.get_secret_value(),
            s3_region=settings.s3_region,
            gcs_endpoint_url=settings.gcs_endpoint_url,
            gcs_project=settings.gcs_project,
            gcs_token=settings.gcs_token,
        )


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
        backend = _PROTOCOLS.get(protocol)
        if backend is None:
            raise StorageError(f"Storage URL {url!r} is not a local path, gs:// or s3:// URL.")
        self.backend = backend
        self._fs = _filesystem(backend, self.options)
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
        final = self.path(key)
        if self.is_local:
            return self._put_local(final, chunks)
        return self._put_remote(final, chunks)

    def put_bytes(self, key: str, data: bytes) -> int:
        """Write ``data`` to ``key`` atomically."""
        return self.put(key, [data])

    def _put_local(self, final: str, chunks: Iterable[bytes]) -> int:
        staging = f"{self._root}/{STAGING_PREFIX}/{uuid.uuid4().hex}"
        written = 0
        try:
            with _storage_errors("Writing to object storage failed."):
                os.makedirs(os.path.dirname(staging), exist_ok=True)
                os.makedirs(os.path.dirname(final), exist_ok=True)
                sink = open(staging, "wb")  # noqa: SIM115 - closed below, on every path
            with sink:
                for chunk in chunks:
                    with _storage_errors("Writing to object storage failed."):
                        sink.write(chunk)
                    written += len(chunk)
                with _storage_errors("Writing to object storage failed."):
                    sink.flush()
                    os.fsync(sink.fileno())  # the bytes are on disk before the name is
            with _storage_errors("Writing to object storage failed."):
                os.replace(staging, final)
        except BaseException:
            _remove_quietly(staging)
            raise
        return written

    def _put_remote(self, final: str, chunks: Iterable[bytes]) -> int:
        with _storage_errors("Writing to object storage failed."):
            # No request yet: the upload starts once a block is full, or at close().
            sink = self._fs.open(final, "wb", block_size=self.options.block_bytes)
        written = 0
        try:
            for chunk in chunks:  # the producer's own exceptions pass through unchanged
                with _storage_errors("Writing to object storage failed."):
                    sink.write(chunk)
                written += len(chunk)
            with _storage_errors("Writing to object storage failed."):
                sink.close()  # the one step that makes the object visible
        except BaseException:
            _abort_upload(sink, final)
            raise
        return written

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

    def list(self, prefix: str = "") -> list[str]:
        """Keys of the complete objects below ``prefix`` (everything, if empty)."""
        return [info.key for info in self.list_info(prefix)]

    def list_info(self, prefix: str = "") -> list[ObjectInfo]:
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

    def pending_writes(self) -> list[PendingWrite]:
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

    def staging_keys(self) -> list[str]:
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


def _filesystem(backend: Backend, options: StorageOptions) -> AbstractFileSystem:
    """A private fsspec file system for ``backend`` configured from ``options``."""
    if backend is Backend.LOCAL:
        return LocalFileSystem()
    try:
        if backend is Backend.S3:
            return _s3_filesystem(options)
        return _gcs_filesystem(options)
    except ImportError as exc:
        extra = "s3" if backend is Backend.S3 else "gcs"
        raise StorageError(
            f"{backend.value}:// storage needs the voicepocket[{extra}] extra installed."
        ) from exc


def _s3_filesystem(options: StorageOptions) -> AbstractFileSystem:
    client_kwargs: dict[str, Any] = {}
    if options.s3_region:
        client_kwargs["region_name"] = options.s3_region
    fs = _no_expect_s3_class()(
        endpoint_url=options.s3_endpoint_url or None,
        key=options.s3_access_key_id or None,
        secret=options.s3_secret_access_key or None,
        client_kwargs=client_kwargs,
        config_kwargs={
            "connect_timeout": options.timeout_s,
            "read_timeout": options.timeout_s,
            # botocore retries connection errors, timeouts, 5xx and throttling itself.
            "retries": {"total_max_attempts": options.attempts, "mode": "standard"},
            # Signature V4 for presigned URLs (V2, botocore's default there, is refused by
            # most regions and by S3-compatible servers).
            "signature_version": "s3v4",
        },
        # Every worker must see every other worker's writes: no listing cache.
        use_listings_cache=False,
        skip_instance_cache=True,
    )
    # s3fs's own retry loop would multiply botocore's tries; leave the retrying to one.
    fs.retries = 1
    return fs


def _no_expect_s3_class() -> type[AbstractFileSystem]:
    """``S3FileSystem`` whose writes send no ``Expect: 100-continue``. botocore asks for it
    on every file-like body and aiohttp then waits for the "100 Continue" with no timeout,
    so an endpoint that accepts connections but never answers (a frozen process) held a
    write forever; without it, the read timeout bounds the wait for the answer."""
    from botocore.handlers import add_expect_header
    from s3fs import S3FileSystem

    class NoExpectS3FileSystem(S3FileSystem):  # type: ignore[misc]
        async def set_session(self, *args: Any, **kwargs: Any) -> Any:
            client = await super().set_session(*args, **kwargs)
            client.meta.events.unregister("before-call.s3", add_expect_header)
            return client

    return NoExpectS3FileSystem


def _gcs_filesystem(options: StorageOptions) -> AbstractFileSystem:
    cls = _bounded_gcs_class()
    fs: AbstractFileSystem = cls(
        project=options.gcs_project or "",
        token=options.gcs_token or None,
        endpoint_url=options.gcs_endpoint_url or None,
        requests_timeout=options.timeout_s,
        attempts=options.attempts,
        use_listings_cache=False,
        skip_instance_cache=True,
    )
    return fs


@functools.cache
def _bounded_gcs_class() -> type[AbstractFileSystem]:
    """gcsfs's plain ``GCSFileSystem`` with a per-instance number of tries.

    Two deliberate departures from ``fsspec.filesystem("gs")``: (1) the core class, not
    the ``ExtendedGcsFileSystem`` that gcsfs swaps in unless the environment says
    ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false`` (it probes each bucket for zonal/HNS
    features, which stalls 60 s per call against an emulator; we need neither). (2) gcsfs
    retries every request six times with backoff of up to 32 s, fixed when the class is
    defined: against an unreachable endpoint a read took 34 s to fail. Here the count is
    ``StorageOptions.attempts``, so an outage becomes a 503 in seconds.
    """
    from gcsfs.core import GCSFileSystem
    from gcsfs.retry import retry_request

    unwrapped = getattr(GCSFileSystem._request, "__wrapped__", None)
    if unwrapped is None:  # a gcsfs that no longer decorates _request: keep its retries
        _LOGGER.warning("gcsfs changed: storage_attempts does not apply to gs:// URLs")
        return _attempts_ignored(GCSFileSystem)

    class BoundedGCSFileSystem(GCSFileSystem):  # type: ignore[misc]
        def __init__(self, *args: Any, attempts: int = 6, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._bounded_request: Callable[..., Any] = retry_request(retries=attempts)(unwrapped)

        async def _request(self, *args: Any, **kwargs: Any) -> Any:
            return await self._bounded_request(self, *args, **kwargs)

    return BoundedGCSFileSystem


def _attempts_ignored(base: type[Any]) -> type[AbstractFileSystem]:
    """``base`` accepting (and ignoring) the ``attempts`` argument."""

    class UnboundedGCSFileSystem(base):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, attempts: int = 6, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)

    return UnboundedGCSFileSystem


# -- audio -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredAudio:
    """Where one synthesis was stored."""

    key: str
    """``{owner}/{uuid}.{ext}``."""

    bytes: int
    """Size of the stored object."""


@dataclass(frozen=True, slots=True)
class ExpiryReport:
    """What one retention pass did."""

    deleted: list[str]
    """Keys of the audio objects deleted (or, in a dry run, that would be)."""

    kept: int
    """Audio objects young enough to keep."""


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

    def expire(
        self,
        *,
        older_than: timedelta,
        now: datetime | None = None,
        before_delete: Callable[[str], None] | None = None,
        dry_run: bool = False,
    ) -> ExpiryReport:
        """Delete audio last written more than ``older_than`` before ``now``.

        Only keys of the audio layout are touched, so a store root shared with anything
        else loses nothing else. ``before_delete(key)`` runs before each object goes (the
        API drops the synthesis row there, so no row ever points at missing audio); if it
        raises, that object is kept and the error propagates.
        """
        now = now or datetime.now(UTC)
        cutoff = now - older_than
        deleted: list[str] = []
        kept = 0
        for info in self.objects.list_info():
            if not _AUDIO_KEY.fullmatch(info.key):
                continue
            if info.modified >= cutoff:
                kept += 1
                continue
            if not dry_run:
                if before_delete is not None:
                    before_delete(info.key)
                self.objects.delete(info.key)
            deleted.append(info.key)
        return ExpiryReport(deleted=deleted, kept=kept)

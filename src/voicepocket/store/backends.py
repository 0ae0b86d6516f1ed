"""The storage backends: which one a URL names, how to reach it, and its fsspec file system.

Owns :class:`Backend` (local folder, GCS, S3), :class:`StorageOptions` (endpoints,
credentials, timeouts, tries, built from the one ``Settings`` object; nothing here reads
the environment) and :func:`filesystem`, which builds a private fsspec file system per
store. That includes our work-arounds in s3fs and gcsfs subclasses: no
``Expect: 100-continue`` on S3 writes (a frozen endpoint held a write forever), and
gcsfs's core class with a per-instance number of tries (its fixed six tries with backoff
made an outage take 34 s to fail, and its extended class stalls on emulators). Knows
nothing of keys or objects.
"""

from __future__ import annotations

import enum
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fsspec.implementations.local import LocalFileSystem
from fsspec.spec import AbstractFileSystem

from voicepocket.errors import StorageError

if TYPE_CHECKING:
    from voicepocket.settings import Settings

_LOGGER = logging.getLogger(__name__)


class Backend(enum.Enum):
    """The kinds of storage a URL can name."""

    LOCAL = "file"
    GCS = "gs"
    S3 = "s3"


PROTOCOLS: dict[str | None, Backend] = {
    None: Backend.LOCAL,
    "file": Backend.LOCAL,
    "local": Backend.LOCAL,
    "gs": Backend.GCS,
    "gcs": Backend.GCS,
    "s3": Backend.S3,
    "s3a": Backend.S3,
}
"""URL protocols (``None``: a plain path) and the backend each names."""


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


def filesystem(backend: Backend, options: StorageOptions) -> AbstractFileSystem:
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

    class UnboundedGCSFileSystem(base):  # type: ignore[misc]
        def __init__(self, *args: Any, attempts: int = 6, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)

    return UnboundedGCSFileSystem

"""Storage roots for tests on each backend, and an independent view of their contents."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from storage.servers import BUCKET, S3_KEY, S3_SECRET, Server, gcs_object_names, s3_client

from voicepocket.store import STAGING_PREFIX, ObjectStore, StorageOptions

BACKENDS = ["file", "gs", "s3"]

# Short timeouts and few tries: a dead server must fail a test in seconds. 5 MiB blocks
# (S3's smallest part) so a test can make an upload span several parts cheaply.
TEST_TIMEOUT_S = 5.0
TEST_ATTEMPTS = 2
TEST_BLOCK_BYTES = 5 * 1024**2


def s3_options(endpoint: str, **overrides: object) -> StorageOptions:
    fields: dict[str, object] = {
        "timeout_s": TEST_TIMEOUT_S,
        "attempts": TEST_ATTEMPTS,
        "block_bytes": TEST_BLOCK_BYTES,
        "s3_endpoint_url": endpoint,
        "s3_access_key_id": S3_KEY,
        "s3_secret_access_key": S3_SECRET,
        "s3_region": "us-east-1",
    }
    return StorageOptions(**{**fields, **overrides})  # type: ignore[arg-type]


def gcs_options(endpoint: str, **overrides: object) -> StorageOptions:
    fields: dict[str, object] = {
        "timeout_s": TEST_TIMEOUT_S,
        "attempts": TEST_ATTEMPTS,
        "block_bytes": TEST_BLOCK_BYTES,
        "gcs_endpoint_url": endpoint,
        "gcs_token": "anon",
        "gcs_project": "voicepocket-test",
    }
    return StorageOptions(**{**fields, **overrides})  # type: ignore[arg-type]


@dataclass
class Backend:
    """One storage root for one test, and an independent view of what it holds."""

    name: str
    """``file``, ``gs`` or ``s3``."""

    url: str
    """The root URL (a fresh prefix per test)."""

    options: StorageOptions
    server: Server | None
    prefix: str
    """The root below the bucket (remote) or the folder (local)."""

    def store(self, **overrides: object) -> ObjectStore:
        options = StorageOptions(**{**_fields(self.options), **overrides})  # type: ignore[arg-type]
        return ObjectStore(self.url, options=options)

    def raw_keys(self) -> list[str]:
        """Every object under the root, listed without fsspec: what a reader could see
        (local staging files included, to prove they are gone)."""
        if self.name == "file":
            root = Path(self.prefix)
            return sorted(
                str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()
            ) if root.exists() else []  # fmt: skip
        assert self.server is not None
        if self.name == "s3":
            reply = s3_client(self.server.endpoint).list_objects_v2(
                Bucket=BUCKET, Prefix=f"{self.prefix}/"
            )
            keys = [o["Key"] for o in reply.get("Contents", [])]
            return sorted(key.removeprefix(f"{self.prefix}/") for key in keys)
        names = gcs_object_names(self.server.endpoint, f"{self.prefix}/")
        return [name.removeprefix(f"{self.prefix}/") for name in names]

    def raw_pending(self) -> list[str]:
        """Unfinished writes, seen without fsspec: local staging files, S3 multipart
        uploads (GCS has no API to list unfinished resumable uploads)."""
        if self.name == "file":
            staging = Path(self.prefix) / STAGING_PREFIX
            return sorted(os.listdir(staging)) if staging.exists() else []
        if self.name == "s3":
            assert self.server is not None
            reply = s3_client(self.server.endpoint).list_multipart_uploads(
                Bucket=BUCKET, Prefix=f"{self.prefix}/"
            )
            return sorted(u["Key"] for u in reply.get("Uploads", []))
        return []


def _fields(options: StorageOptions) -> dict[str, object]:
    return {name: getattr(options, name) for name in StorageOptions.__slots__}


def make_backend(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    prefix = f"t-{uuid.uuid4().hex[:12]}"
    if name == "file":
        folder = tmp_path / "store"
        return Backend(name, str(folder), StorageOptions(), None, str(folder))
    if name == "s3":
        server: Server = request.getfixturevalue("seaweedfs")
        return Backend(name, f"s3://{BUCKET}/{prefix}", s3_options(server.endpoint), server, prefix)
    server = request.getfixturevalue("gcs_emulator")
    return Backend(name, f"gs://{BUCKET}/{prefix}", gcs_options(server.endpoint), server, prefix)


def fetch_in_process(url: str, options: StorageOptions, cache_dir: str, key: str, sha: str) -> int:
    """In a child process: one worker's first pool miss; returns its fetch count."""
    from voicepocket.registry.repository import ModelRepository

    repository = ModelRepository(ObjectStore(url, options=options), cache_dir=Path(cache_dir))
    repository.model_path(key, sha)
    return repository.fetches

"""One storage suite, run unchanged on a local folder, GCS (emulator) and S3 (SeaweedFS).

What is checked is what a reader of the store could see, looked up without fsspec
(``Backend.raw_keys``: os.walk, boto3, the emulator's JSON API).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from storage.backends import Backend, gcs_options
from storage.servers import BUCKET, CuttingProxy, Server, free_port

from voicepocket.errors import StorageError, StoreKeyError
from voicepocket.store import AudioStore, ObjectStore

MIB = 1024**2


class Interrupted(Exception):
    """Synthesis failing halfway through an upload."""


def _audio_key(owner: str = "alice", ext: str = "wav") -> str:
    return AudioStore.key_for(owner, "0123456789abcdef0123456789abcdef", ext)


def test_audio_layout_is_owner_uuid_ext(backend: Backend) -> None:
    objects = backend.store()
    stored = AudioStore(objects).put("alice", "mp3", [b"ID3", b"data"])
    assert re.fullmatch(r"alice/[0-9a-f]{32}\.mp3", stored.key)
    assert stored.bytes == 7
    assert objects.read_bytes(stored.key) == b"ID3data"
    assert b"".join(objects.iter_bytes(stored.key, block_size=2)) == b"ID3data"
    assert objects.list("alice") == [stored.key]
    assert objects.exists(stored.key)
    info = objects.info(stored.key)
    assert info.key == stored.key and info.bytes == 7
    assert abs(info.modified - datetime.now(UTC)) < timedelta(minutes=5)
    assert backend.raw_keys() == [stored.key]


def test_large_object_round_trips_through_several_parts(backend: Backend) -> None:
    objects = backend.store()
    blocks = [bytes([n]) * MIB for n in range(12)]  # 12 MiB: three 5 MiB parts/chunks
    assert objects.put("alice/big.wav", iter(blocks)) == 12 * MIB
    assert objects.read_bytes("alice/big.wav") == b"".join(blocks)
    assert backend.raw_keys() == ["alice/big.wav"]
    assert backend.raw_pending() == []


def test_failure_mid_upload_leaves_nothing_visible(backend: Backend) -> None:
    """The producer fails after two full parts (S3) / chunks (GCS) were already sent."""
    objects = backend.store()
    in_flight: list[str] = []

    def chunks():
        for n in range(11):  # 11 MiB: two 5 MiB blocks go out before the failure
            yield bytes([n]) * MIB
        in_flight.extend(backend.raw_pending())
        raise Interrupted("synthesis failed halfway")

    with pytest.raises(Interrupted):  # the producer's own error, not a StorageError
        AudioStore(objects).put("alice", "wav", chunks())
    if backend.name != "gs":  # GCS cannot list resumable uploads in progress
        assert len(in_flight) == 1  # the upload really was under way
    assert objects.list() == []
    assert backend.raw_keys() == []
    assert backend.raw_pending() == []  # local staging file removed, S3 upload aborted
    assert objects.staging_keys() == []


def test_failure_before_the_first_part_leaves_nothing_visible(backend: Backend) -> None:
    objects = backend.store()

    def chunks():
        yield b"RIFF" + b"\x00" * 1000
        raise Interrupted("synthesis failed at once")

    with pytest.raises(Interrupted):
        objects.put(_audio_key(), chunks())
    assert backend.raw_keys() == []
    assert backend.raw_pending() == []


def test_readers_never_see_a_partial_object(backend: Backend) -> None:
    objects = backend.store()
    reader = backend.store()
    key = _audio_key()
    seen_during_write: list[bool] = []

    def chunks():
        yield b"first half " + b"\x00" * (6 * MIB)  # more than a part: uploading has begun
        seen_during_write.append(reader.exists(key))
        seen_during_write.append(key in reader.list())
        yield b"second half"

    objects.put(key, chunks())
    assert seen_during_write == [False, False]
    assert objects.read_bytes(key).endswith(b"second half")


def test_overwrite_is_all_or_nothing(backend: Backend) -> None:
    objects = backend.store()
    objects.put_bytes("a/b.json", b"old")

    def boom():
        yield b"partial" * MIB
        raise Interrupted("boom")

    with pytest.raises(Interrupted):
        objects.put("a/b.json", boom())
    assert objects.read_bytes("a/b.json") == b"old"
    objects.put_bytes("a/b.json", b"new")
    assert objects.read_bytes("a/b.json") == b"new"


@pytest.mark.parametrize("key", ["../escape", "a/../../b", "/abs", "a//b", "A/b", "a/.hidden", ""])
def test_hostile_keys_are_refused(backend: Backend, key: str) -> None:
    """Keys are ours, never a client's: a bad one is a bug (500), and nothing is written."""
    objects = backend.store()
    with pytest.raises(StoreKeyError) as refused:
        objects.put_bytes(key, b"x")
    assert refused.value.status == 500
    assert repr(key) not in refused.value.message  # the key goes to the log only
    for use in (objects.read_bytes, objects.exists, objects.delete, objects.path):
        with pytest.raises(StoreKeyError):
            use(key)
    assert backend.raw_keys() == []


def test_delete_prefix_and_missing(backend: Backend) -> None:
    objects = backend.store()
    objects.put_bytes("alice/v/1/voice.onnx", b"m")
    objects.put_bytes("alice/v/1/voice.onnx.json", b"c")
    objects.put_bytes("alice/v/2/voice.onnx", b"kept")
    objects.delete("alice/v/1")
    assert objects.list("alice") == ["alice/v/2/voice.onnx"]
    objects.delete("alice/v/1")  # missing is fine
    assert backend.raw_keys() == ["alice/v/2/voice.onnx"]


def test_missing_object_is_file_not_found(backend: Backend) -> None:
    objects = backend.store()
    with pytest.raises(FileNotFoundError):
        objects.read_bytes("alice/nothing.wav")
    with pytest.raises(FileNotFoundError):
        objects.iter_bytes("alice/nothing.wav")  # raised before any block is asked for
    assert not objects.exists("alice/nothing.wav")
    assert objects.list("alice") == []


def test_signed_url_serves_the_object_where_the_backend_signs(backend: Backend) -> None:
    objects = backend.store()
    objects.put_bytes("alice/signed.wav", b"RIFF signed audio")
    url = objects.signed_url("alice/signed.wav", expires_s=60)
    if backend.name == "file":
        assert url is None  # the API streams local files itself
        return
    if backend.name == "gs":
        assert url is None  # anonymous credentials cannot sign (see test_gcs_signed_url)
        return
    assert url is not None and url.startswith(backend.options.s3_endpoint_url)
    with urllib.request.urlopen(url, timeout=5) as reply:
        assert reply.read() == b"RIFF signed audio"
    # SeaweedFS checks the signature: a tampered URL is refused.
    tampered = url.replace("signed.wav", "signed.wav2")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(tampered, timeout=5)
    assert refused.value.code in (403, 404)


def test_gcs_signed_url_with_service_account_credentials(
    gcs_emulator: Server, tmp_path: Path
) -> None:
    """With a service-account key (``VOICEPOCKET_GCS_TOKEN``) the store signs V4 URLs
    locally, without a request; the emulator serves them (it does not check signatures)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()  # fmt: skip
    account = tmp_path / "service-account.json"
    account.write_text(json.dumps({
        "type": "service_account", "project_id": "voicepocket-test", "private_key_id": "1",
        "private_key": pem, "client_email": "signer@voicepocket-test.iam.gserviceaccount.com",
        "client_id": "1", "token_uri": "http://127.0.0.1:9/token",  # never called
    }))  # fmt: skip
    url = f"gs://{BUCKET}/t-{uuid.uuid4().hex[:12]}"
    ObjectStore(url, options=gcs_options(gcs_emulator.endpoint)).put_bytes("a/b.wav", b"RIFF")
    signer = ObjectStore(url, options=gcs_options(gcs_emulator.endpoint, gcs_token=str(account)))
    signed = signer.signed_url("a/b.wav", expires_s=300)
    assert signed is not None and signed.startswith(gcs_emulator.endpoint)
    assert "X-Goog-Signature=" in signed and "X-Goog-Expires=300" in signed
    with urllib.request.urlopen(signed, timeout=5) as reply:
        assert reply.read() == b"RIFF"


def test_expire_deletes_only_old_audio(backend: Backend) -> None:
    objects = backend.store()
    audio = AudioStore(objects)
    first = audio.put("alice", "wav", [b"one"])
    second = audio.put("bob", "mp3", [b"two"])
    objects.put_bytes("alice/v/1/voice.onnx", b"not audio: never expired")
    dropped: list[str] = []

    report = audio.expire(older_than=timedelta(days=1), before_delete=dropped.append)
    assert report.deleted == [] and report.kept == 2  # all younger than a day

    later = datetime.now(UTC) + timedelta(days=2)
    dry = audio.expire(older_than=timedelta(days=1), now=later, dry_run=True)
    assert sorted(dry.deleted) == sorted([first.key, second.key])
    assert len(objects.list()) == 3  # a dry run deletes nothing

    report = audio.expire(older_than=timedelta(days=1), now=later, before_delete=dropped.append)
    assert sorted(report.deleted) == sorted([first.key, second.key])
    assert sorted(dropped) == sorted(report.deleted)
    assert backend.raw_keys() == ["alice/v/1/voice.onnx"]


def test_expire_keeps_audio_whose_record_cannot_be_dropped(backend: Backend) -> None:
    audio = AudioStore(backend.store())
    stored = audio.put("alice", "wav", [b"one"])

    def refuse(key: str) -> None:
        raise RuntimeError("database down")

    later = datetime.now(UTC) + timedelta(days=1)
    with pytest.raises(RuntimeError):
        audio.expire(older_than=timedelta(0), now=later, before_delete=refuse)
    assert backend.raw_keys() == [stored.key]


def test_unreachable_storage_is_a_storage_error(remote_backend: Backend) -> None:
    """Every operation against a closed port fails fast as StorageError (HTTP 503)."""
    dead = f"http://127.0.0.1:{free_port()}"
    field = "s3_endpoint_url" if remote_backend.name == "s3" else "gcs_endpoint_url"
    objects = remote_backend.store(**{field: dead, "timeout_s": 1.0, "attempts": 1})
    for operation in (
        lambda: objects.exists("alice/x.wav"),
        lambda: objects.read_bytes("alice/x.wav"),
        lambda: objects.iter_bytes("alice/x.wav"),
        lambda: objects.list("alice"),
        lambda: objects.put_bytes("alice/x.wav", b"RIFF"),
        lambda: objects.put("alice/y.wav", [b"\x00" * MIB] * 6),
        lambda: objects.delete("alice/x.wav"),
    ):
        with pytest.raises(StorageError):
            operation()


def test_a_frozen_endpoint_times_out(remote_backend: Backend) -> None:
    """An endpoint that accepts connections and never answers (a frozen server: the
    kernel completes the handshakes) fails within the timeout as StorageError, writes
    included (S3 writes used to wait for a "100 Continue" forever)."""
    frozen = socket.socket()
    frozen.bind(("127.0.0.1", 0))
    frozen.listen(64)  # never accepted, never read
    endpoint = f"http://127.0.0.1:{frozen.getsockname()[1]}"
    field = "s3_endpoint_url" if remote_backend.name == "s3" else "gcs_endpoint_url"
    objects = remote_backend.store(**{field: endpoint, "timeout_s": 1.0, "attempts": 1})
    try:
        for operation in (
            lambda: objects.put_bytes("alice/x.wav", b"RIFF"),
            lambda: objects.put("alice/y.wav", [b"\x00" * MIB] * 6),
            lambda: objects.read_bytes("alice/x.wav"),
        ):
            assert isinstance(_raised_within(operation, timeout_s=10), StorageError)
    finally:
        frozen.close()
    assert remote_backend.raw_keys() == []


def _raised_within(operation: Callable[[], object], *, timeout_s: float) -> BaseException:
    """What ``operation`` raised, run on a daemon thread so that a hang fails the test
    (after ``timeout_s``) instead of stalling the suite."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            operation()
        except BaseException as error:
            raised.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout_s)
    assert not thread.is_alive(), f"still waiting after {timeout_s} s"
    assert raised, "no error raised"
    return raised[0]


def test_connection_cut_mid_upload_leaves_nothing_visible(remote_backend: Backend) -> None:
    """The network dies after a part (S3) / chunk (GCS) went through and the second is
    half sent, and stays dead: the upload fails as StorageError, its abort cannot get
    through either, and still nothing is visible. S3 keeps the orphaned parts as a
    pending multipart upload, which gc's abort removes."""
    assert remote_backend.server is not None
    proxy = CuttingProxy(remote_backend.server.endpoint, cut_after=7 * MIB)
    field = "s3_endpoint_url" if remote_backend.name == "s3" else "gcs_endpoint_url"
    objects = remote_backend.store(**{field: proxy.endpoint, "timeout_s": 2.0, "attempts": 1})
    try:
        with pytest.raises(StorageError):
            objects.put("alice/cut.wav", (bytes([n]) * MIB for n in range(16)))
        assert proxy.cut
    finally:
        proxy.stop()
    assert remote_backend.raw_keys() == []  # looked up directly, not through the proxy
    if remote_backend.name == "s3":
        direct = remote_backend.store()
        assert direct.staging_keys() == ["alice/cut.wav"]
        assert remote_backend.raw_pending() == [f"{remote_backend.prefix}/alice/cut.wav"]
        assert direct.abort_pending_writes(older_than=timedelta(0)) == 1
        assert remote_backend.raw_pending() == []


def test_broken_local_folder_is_a_storage_error(tmp_path: Path) -> None:
    objects = ObjectStore(str(tmp_path / "store"))
    objects.put_bytes("alice/x.wav", b"RIFF")
    shutil.rmtree(tmp_path / "store")
    (tmp_path / "store").write_bytes(b"a file where the folder was")
    with pytest.raises(StorageError):
        objects.put_bytes("alice/y.wav", b"RIFF")
    with pytest.raises(StorageError):
        objects.read_bytes("alice/x.wav")


def test_frozen_server_times_out_as_storage_error(remote_backend: Backend) -> None:
    """A server that accepts connections but never answers (SIGSTOP): the request times
    out and the operation fails as StorageError, then works again once it is back."""
    objects = remote_backend.store(timeout_s=1.0, attempts=1)
    objects.put_bytes("alice/x.wav", b"RIFF")
    assert remote_backend.server is not None
    with remote_backend.server.frozen(), pytest.raises(StorageError):
        objects.read_bytes("alice/x.wav")
    assert remote_backend.store().read_bytes("alice/x.wav") == b"RIFF"


def test_urls_and_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from voicepocket.settings import Settings
    from voicepocket.store import Backend as Kind
    from voicepocket.store import StorageOptions

    assert ObjectStore(f"file://{tmp_path}/a").backend is Kind.LOCAL
    assert ObjectStore(str(tmp_path / "b")).is_local
    with pytest.raises(StorageError):
        ObjectStore("ftp://example/x")
    with pytest.raises(StorageError):
        ObjectStore("s3://")
    monkeypatch.setenv("VOICEPOCKET_S3_ENDPOINT_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("VOICEPOCKET_S3_SECRET_ACCESS_KEY", "s3cr3t")
    monkeypatch.setenv("VOICEPOCKET_STORAGE_ATTEMPTS", "1")
    monkeypatch.setenv("VOICEPOCKET_AUDIO_RETENTION_DAYS", "30")
    settings = Settings()
    options = StorageOptions.from_settings(settings)
    assert options.s3_endpoint_url == "http://127.0.0.1:1" and options.attempts == 1
    assert options.s3_secret_access_key == "s3cr3t"
    assert "s3cr3t" not in repr(settings)
    assert settings.audio_retention_days == 30 and not settings.audio_redirect
    store = ObjectStore("s3://bucket/prefix", options=options)
    assert store.backend is Kind.S3 and store.path("a/b.wav") == "bucket/prefix/a/b.wav"
    gcs = ObjectStore("gs://bucket/prefix", options=StorageOptions(gcs_token="anon"))
    # Our retry budget applies (a gcsfs upgrade that breaks it would fall back silently).
    assert type(gcs.fs).__name__ == "BoundedGCSFileSystem"

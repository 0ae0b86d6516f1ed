"""The service with its audio in S3 (SeaweedFS on loopback): stored syntheses redirect to
signed URLs, and an unreachable store is a 503 with Retry-After while speech keeps
serving and nothing half-written appears."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator

import httpx
import pytest
import soundfile as sf
from server import Server, free_port, start_server
from storage.servers import BUCKET, S3_KEY, S3_SECRET, s3_client
from storage.servers import Server as StorageServer


@pytest.fixture(scope="module")
def s3_service(
    seaweedfs: StorageServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, str]]:
    prefix = f"api-{uuid.uuid4().hex[:8]}"
    running = start_server(
        tmp_path_factory.mktemp("s3-service") / "home",
        store_url=f"s3://{BUCKET}/{prefix}",
        s3_endpoint_url=seaweedfs.endpoint,
        s3_access_key_id=S3_KEY,
        s3_secret_access_key=S3_SECRET,
        s3_region="us-east-1",
        audio_redirect="true",
        storage_timeout_s=3,
        storage_attempts=1,
    )
    yield running, prefix
    running.stop()


def stored_keys(seaweedfs: StorageServer, prefix: str) -> list[str]:
    listed = s3_client(seaweedfs.endpoint).list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/")
    return sorted(item["Key"] for item in listed.get("Contents", []))


def test_stored_audio_redirects_to_a_signed_url(
    s3_service: tuple[Server, str], seaweedfs: StorageServer
) -> None:
    service, prefix = s3_service
    with service.client("quinn") as quinn:
        created = quinn.post("/v1/syntheses", json={"voice": "joe", "input": "Kept in S3.",
                                                    "response_format": "wav"})  # fmt: skip
        assert created.status_code == 201, created.text
        synthesis = created.json()
        assert stored_keys(seaweedfs, prefix) == [f"{prefix}/quinn/{synthesis['id']}.wav"]
        redirect = quinn.get(synthesis["url"], follow_redirects=False)
    assert redirect.status_code == 307
    location = redirect.headers["location"]
    assert location.startswith(seaweedfs.endpoint) and "Signature" in location
    audio = httpx.get(location)  # no API key: the signature is the authorization
    assert audio.status_code == 200
    assert sf.info(io.BytesIO(audio.content)).duration == pytest.approx(
        synthesis["duration_s"], rel=0.02
    )


@pytest.fixture(scope="module")
def dead_store_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The service with its audio store on an S3 endpoint where nothing listens."""
    running = start_server(
        tmp_path_factory.mktemp("dead-store") / "home",
        store_url=f"s3://{BUCKET}/gone",
        s3_endpoint_url=f"http://127.0.0.1:{free_port()}",
        s3_access_key_id=S3_KEY,
        s3_secret_access_key=S3_SECRET,
        s3_region="us-east-1",
        storage_timeout_s=3,
        storage_attempts=1,
    )
    yield running
    running.stop()


def test_unreachable_storage_is_503_and_speech_keeps_serving(
    dead_store_service: Server,
) -> None:
    with dead_store_service.client("rita") as rita:
        stored = rita.post("/v1/syntheses", json={"voice": "joe", "input": "Not now.",
                                                  "response_format": "mp3"})  # fmt: skip
        assert stored.status_code == 503, stored.text
        assert stored.headers["retry-after"]
        assert stored.json()["error"]["code"] == "storage_unavailable"
        spoken = rita.post("/v1/audio/speech", json={"voice": "joe", "input": "Still here.",
                                                     "response_format": "wav"})  # fmt: skip
        assert spoken.status_code == 200
        assert sf.info(io.BytesIO(spoken.content)).duration > 0.5
        assert rita.get("/v1/syntheses").json()["data"] == []

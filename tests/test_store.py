"""Object storage: atomic puts, the {owner}/{uuid}.{ext} layout, hostile keys."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from voicepocket.errors import InvalidVoiceId
from voicepocket.store import AudioStore, ObjectStore


@pytest.fixture
def objects(tmp_path: Path) -> ObjectStore:
    return ObjectStore(str(tmp_path / "audio"))


def test_audio_layout_is_owner_uuid_ext(objects: ObjectStore) -> None:
    stored = AudioStore(objects).put("alice", "mp3", [b"ID3", b"data"])
    assert re.fullmatch(r"alice/[0-9a-f]{32}\.mp3", stored.key)
    assert stored.bytes == 7
    assert objects.read_bytes(stored.key) == b"ID3data"
    assert b"".join(objects.iter_bytes(stored.key, block_size=2)) == b"ID3data"
    assert objects.list("alice") == [stored.key]


def test_failure_mid_write_leaves_nothing_visible(objects: ObjectStore) -> None:
    class Interrupted(Exception):
        pass

    def chunks():
        yield b"RIFF" + b"\x00" * 1000
        yield b"more audio"
        raise Interrupted("synthesis failed halfway")

    with pytest.raises(Interrupted):
        AudioStore(objects).put("alice", "wav", chunks())
    assert objects.list("alice") == []
    assert objects.staging_keys() == []
    assert [p for p in Path(objects.path("x")).parent.rglob("*") if p.is_file()] == []


def test_readers_never_see_a_partial_object(objects: ObjectStore) -> None:
    seen_during_write: list[bool] = []
    key = "alice/0123456789abcdef0123456789abcdef.wav"

    def chunks():
        yield b"first half "
        seen_during_write.append(objects.exists(key))
        yield b"second half"

    objects.put(key, chunks())
    assert seen_during_write == [False]
    assert objects.read_bytes(key) == b"first half second half"


def test_overwrite_is_atomic_replace(objects: ObjectStore) -> None:
    objects.put_bytes("a/b.json", b"old")
    with pytest.raises(RuntimeError):
        objects.put("a/b.json", _boom())
    assert objects.read_bytes("a/b.json") == b"old"
    objects.put_bytes("a/b.json", b"new")
    assert objects.read_bytes("a/b.json") == b"new"


def _boom():
    yield b"partial"
    raise RuntimeError("boom")


@pytest.mark.parametrize("key", ["../escape", "a/../../b", "/abs", "a//b", "A/b", "a/.hidden", ""])
def test_hostile_keys_are_refused(objects: ObjectStore, key: str) -> None:
    with pytest.raises(InvalidVoiceId):
        objects.put_bytes(key, b"x")


def test_delete_prefix_and_missing(objects: ObjectStore) -> None:
    objects.put_bytes("alice/v/1/voice.onnx", b"m")
    objects.put_bytes("alice/v/1/voice.onnx.json", b"c")
    objects.delete("alice/v/1")
    assert objects.list("alice") == []
    objects.delete("alice/v/1")  # missing is fine

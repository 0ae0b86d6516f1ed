"""Training files fetched from the object store to local disk."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from voicepocket.store import ObjectStore
from voicepocket.training.files import download

BLOCK = 64 * 1024


class _InStep(ObjectStore):
    """A real local store whose readers all hand over their first block together, so
    the fetches below overlap for certain."""

    def __init__(self, url: str, readers: int) -> None:
        super().__init__(url)
        self._together = threading.Barrier(readers, timeout=10)

    def iter_bytes(self, key: str, *, block_size: int = BLOCK) -> Iterator[bytes]:
        for index, block in enumerate(super().iter_bytes(key, block_size=BLOCK)):
            yield block
            if index == 0:
                self._together.wait()


def test_fetches_of_one_file_at_once_each_get_it_whole(tmp_path: Path) -> None:
    """Two sample checks (or two replicas on one home) fetching a base's file at once
    both succeed, and the file in place is the object, whole, with no partial left."""
    readers = 4
    store = _InStep((tmp_path / "objects").as_uri(), readers)
    data = bytes(range(256)) * (4 * BLOCK // 256)
    store.put_bytes("bases/tiny/model.pth", data)
    target = tmp_path / "cache" / "model.pth"
    with ThreadPoolExecutor(readers) as pool:
        fetched = [pool.submit(download, store, "bases/tiny/model.pth", target)
                   for _ in range(readers)]  # fmt: skip
        assert [f.result(timeout=30) for f in fetched] == [target] * readers
    assert target.read_bytes() == data
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.pth"]

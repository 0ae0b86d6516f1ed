"""Where a trained voice's files live in the model repository's object store.

Under ``{owner}/{slug}/training/``: ``samples/{id}.wav`` (accepted recordings, already
trimmed, resampled and loudness-normalized), ``runs/{run_key}/checkpoint.pth`` and
``config.json`` (the latest checkpoint of a round in progress, so a round resumes on any
machine), and ``trained/model.pth`` + ``config.json`` (the last finished round, where the
next round starts). Bases live under ``bases/{name}/``. Deleting a voice deletes its whole
``training/`` prefix (``VoiceRegistry.delete_voice``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from voicepocket.registry.repository import training_prefix
from voicepocket.store import ObjectStore


def download(objects: ObjectStore, key: str, target: Path) -> Path:
    """Copy object ``key`` to ``target`` (written aside under a name of its own, then
    renamed into place: threads and processes fetching the same file never share a partial
    one)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.",
                                     suffix=".part", delete=False) as sink:  # fmt: skip
        partial = Path(sink.name)
        try:
            for block in objects.iter_bytes(key):
                sink.write(block)
        except BaseException:
            sink.close()
            partial.unlink(missing_ok=True)
            raise
    partial.replace(target)
    return target


class VoiceFiles:
    """The keys of one trained voice's files."""

    def __init__(self, objects: ObjectStore, owner: str, slug: str) -> None:
        self.objects = objects
        self.prefix = training_prefix(owner, slug)

    def sample(self, sample_id: str) -> str:
        return f"{self.prefix}/samples/{sample_id}.wav"

    def run(self, run_key: str) -> str:
        return f"{self.prefix}/runs/{run_key}"

    @property
    def trained(self) -> str:
        return f"{self.prefix}/trained"


def base_key(name: str) -> str:
    return f"bases/{name}"

"""The model repository: registered voices' files in object storage, cached locally.

Layout: ``{owner}/{slug}/{sha256[:16]}/voice.onnx`` and ``voice.onnx.json``. The prefix
changes whenever the files change, so a replaced voice never shadows its old bytes in a
worker's cache. On a local repository the files are loaded in place; on a remote one
(``gs://``, ``s3://``) they are fetched once into a local cache checked by sha256.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from voicepocket.store import ObjectStore

MODEL_NAME = "voice.onnx"
CONFIG_NAME = "voice.onnx.json"
_BLOCK = 1024 * 1024


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _blocks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as source:
        while block := source.read(_BLOCK):
            yield block


class ModelRepository:
    """Voice files under one storage root, with a local cache for remote roots."""

    def __init__(self, objects: ObjectStore, *, cache_dir: Path) -> None:
        self.objects = objects
        self._cache_dir = cache_dir

    @staticmethod
    def key_for(owner: str, slug: str, model_sha256: str) -> str:
        """The prefix holding one version of a voice's files."""
        return f"{owner}/{slug}/{model_sha256[:16]}"

    def put_voice(self, model_key: str, model_file: Path, config_file: Path) -> None:
        """Store both files under ``model_key``; on failure neither is left behind."""
        try:
            self.objects.put(f"{model_key}/{MODEL_NAME}", _blocks(model_file))
            self.objects.put(f"{model_key}/{CONFIG_NAME}", _blocks(config_file))
        except BaseException:
            self.delete(model_key)
            raise

    def model_path(self, model_key: str, model_sha256: str) -> Path:
        """A local path of the model (its config beside it as ``<model>.json``)."""
        if self.objects.is_local:
            return Path(self.objects.path(f"{model_key}/{MODEL_NAME}"))
        return self._cached(model_key, model_sha256)

    def _cached(self, model_key: str, model_sha256: str) -> Path:
        folder = self._cache_dir / model_sha256
        model = folder / MODEL_NAME
        if model.exists() and sha256_of(model) == model_sha256:
            return model
        staging = self._cache_dir / f".{model_sha256}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for name in (MODEL_NAME, CONFIG_NAME):
            with (staging / name).open("wb") as sink:
                for block in self.objects.iter_bytes(f"{model_key}/{name}"):
                    sink.write(block)
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
        return model

    def delete(self, model_key: str) -> None:
        """Remove one version of a voice's files."""
        self.objects.delete(model_key)

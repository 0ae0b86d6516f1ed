"""The output cache: an identical speech request is answered from storage, not synthesized.

"Identical" means the same owner, the same voice files (model and config sha256), the same
normalized text chunks, format, speed and noise settings. Entries live in their own
object-store root (``VOICEPOCKET_CACHE_URL``) at ``{voice id}/{key}.{ext}``, so deleting
or replacing a voice purges its entries with one prefix delete. The key doubles as the
response's ETag. Cache failures never fail a request: a broken cache is a slow cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator

from voicepocket.chunks import SynthesisParams
from voicepocket.errors import StorageError
from voicepocket.registry import VoiceRecord
from voicepocket.speech import SpeechStream
from voicepocket.store import ObjectStore, Upload

_LOGGER = logging.getLogger(__name__)


class OutputCache:
    """Encoded speech by request identity."""

    def __init__(self, objects: ObjectStore, *, max_age_s: int) -> None:
        self.objects = objects
        self.cache_control = f"private, max-age={max_age_s}"
        """The ``Cache-Control`` audio responses carry."""

    @staticmethod
    def key(*, owner: str, speech: SpeechStream, fmt: str, params: SynthesisParams) -> str:
        """The request's identity, as a hex digest (also its ETag)."""
        record = speech.record
        identity = {
            "owner": owner,
            "model": record.model_sha256,
            "config": record.config_sha256,
            "chunks": speech.chunks,
            "format": fmt,
            "speed": params.speed,
            "noise_scale": params.noise_scale,
            "noise_w": params.noise_w,
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()

    @staticmethod
    def _object_key(record: VoiceRecord, key: str, fmt: str) -> str:
        return f"{record.id}/{key}.{fmt}"

    def get(self, record: VoiceRecord, key: str, fmt: str) -> Iterator[bytes] | None:
        """The cached audio in blocks, as it is read (opened now: a miss is ``None``)."""
        try:
            return self.objects.iter_bytes(self._object_key(record, key, fmt))
        except FileNotFoundError:
            return None
        except StorageError:
            _LOGGER.warning("Output cache unreadable; synthesizing", exc_info=True)
            return None

    def tee(
        self, blocks: Iterator[bytes], record: VoiceRecord, key: str, fmt: str
    ) -> Iterator[bytes]:
        """Pass ``blocks`` through, writing each to storage as it goes out; the object under
        ``key`` appears once the last one went out (never a part of it)."""
        upload = self._upload(self._object_key(record, key, fmt))
        completed = False
        try:
            for block in blocks:
                yield block
                if upload is not None:
                    upload = self._write(upload, block)
            completed = True
        finally:
            close = getattr(blocks, "close", None)
            if close is not None:  # a client gone mid-stream: stop synthesis, cache nothing
                close()
            if upload is not None and not completed:
                upload.abort()
        if upload is not None:
            self._write(upload, None)

    def _upload(self, object_key: str) -> Upload | None:
        try:
            return self.objects.upload(object_key)
        except StorageError:
            _LOGGER.warning("Output cache unwritable", exc_info=True)
            return None

    @staticmethod
    def _write(upload: Upload, block: bytes | None) -> Upload | None:
        """Write ``block`` (``None``: commit); on a storage error, give the upload up and
        go on serving without caching."""
        try:
            if block is None:
                upload.commit()
            else:
                upload.write(block)
            return upload
        except StorageError:
            _LOGGER.warning("Output cache unwritable", exc_info=True)
            upload.abort()
            return None

    def purge(self, record: VoiceRecord) -> None:
        """Forget every cached output of a voice (deleted or replaced)."""
        try:
            self.objects.delete(record.id)
        except StorageError:
            _LOGGER.warning("Could not purge cached outputs of %s", record.ref, exc_info=True)

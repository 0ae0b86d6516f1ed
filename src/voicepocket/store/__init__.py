"""Object storage: a local folder by default, ``gs://`` or ``s3://`` alike, through fsspec.

The package owns everything VoicePocket keeps outside the database: objects under a root
URL, written all-or-nothing (``objects``), the backends and the fsspec file systems that
reach them, with our work-arounds in s3fs and gcsfs (``backends``), and synthesized audio
in the ``{owner}/{uuid}.{ext}`` layout with its retention (``audio``). It knows nothing of
voices; the model repository (``voicepocket.registry.repository``) is built on it.
"""

from voicepocket.store.audio import AudioStore, ExpiryReport, StoredAudio
from voicepocket.store.backends import Backend, StorageOptions
from voicepocket.store.objects import (
    STAGING_PREFIX,
    ObjectInfo,
    ObjectStore,
    PendingWrite,
    Upload,
)

__all__ = [
    "STAGING_PREFIX",
    "AudioStore",
    "Backend",
    "ExpiryReport",
    "ObjectInfo",
    "ObjectStore",
    "PendingWrite",
    "StorageOptions",
    "StoredAudio",
    "Upload",
]

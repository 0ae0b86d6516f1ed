"""The registry: owners and their voices in SQL, and the model repository behind them.

The package owns everything VoicePocket records in its database, and the voice files it
keeps in object storage: the ``Registry`` the engine holds (``facade``), the database and
its Alembic migrations (``database``, ``migrations/``, the tables in ``models``), voices
and their registration, lookup with tenancy rules and deletion (``voices``), voice ids
(``ids``), API keys (``keys``), stored syntheses (``syntheses``), async jobs (``jobs``)
and the model repository (``repository``). SQLite by default, PostgreSQL for a cluster,
both through SQLAlchemy. Knows nothing of inference beyond asking ``voicepocket.voices``
to validate and probe.
"""

from voicepocket.registry.database import make_database
from voicepocket.registry.facade import Registry
from voicepocket.registry.ids import VoiceRef
from voicepocket.registry.voices import VoiceRecord

__all__ = ["Registry", "VoiceRecord", "VoiceRef", "make_database"]

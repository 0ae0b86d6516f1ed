"""VoicePocket: a multi-tenant text-to-speech service.

Every user owns trained voices; a request turns text into speech in one of them. Voices
are validated once at registration, then kept resident in a byte-budgeted pool so a warm
request costs little more than the model's own inference.
"""

__version__ = "0.1.0"

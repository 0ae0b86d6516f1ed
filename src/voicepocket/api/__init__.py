"""The HTTP API: an OpenAI-compatible speech endpoint, voices, stored syntheses, keys,
back-pressure, metrics and health, as one FastAPI app over the core engine. Knows nothing
of how a voice is loaded: it drives ``voicepocket.engine``."""

from voicepocket.api.app import create_app

__all__ = ["create_app"]

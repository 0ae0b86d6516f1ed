"""Running the app under uvicorn, with a drain on SIGTERM/SIGINT.

On the first signal the service starts draining: new requests get 503 (health, readiness
and metrics still answer), in-flight requests finish (up to ``VOICEPOCKET_DRAIN_S``), then
uvicorn shuts down. A second signal exits at once.
"""

from __future__ import annotations

import logging
import threading
from types import FrameType

import uvicorn

from voicepocket.api.app import create_app
from voicepocket.api.state import Lifecycle, Services
from voicepocket.logs import configure_logging
from voicepocket.settings import Settings

_LOGGER = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    """uvicorn, but the first exit signal drains before shutting down."""

    def __init__(self, config: uvicorn.Config, *, drain_s: float) -> None:
        super().__init__(config)
        self._drain_s = drain_s
        self._draining = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        services: Services | None = getattr(self.config.app.state, "services", None)
        if self._draining or services is None:
            super().handle_exit(sig, frame)
            return
        self._draining = True
        services.lifecycle = Lifecycle.DRAINING
        _LOGGER.warning("Draining: %d requests in flight", services.in_flight.count)
        threading.Thread(target=self._finish_drain, args=(services,), daemon=True).start()

    def _finish_drain(self, services: Services) -> None:
        if not services.in_flight.idle.wait(self._drain_s):
            _LOGGER.warning("Drain timed out with %d in flight", services.in_flight.count)
        self.should_exit = True


def serve(settings: Settings) -> None:
    """Serve until signalled; blocks."""
    configure_logging()
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=max(1, int(settings.drain_s)),
    )
    DrainingServer(config, drain_s=settings.drain_s).run()

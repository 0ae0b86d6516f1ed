"""Running the app under uvicorn, with a drain on SIGTERM/SIGINT.

On the first signal the service starts draining: new requests get 503 (health, readiness
and metrics still answer), in-flight requests finish (up to ``VOICEPOCKET_DRAIN_S``; past
it, the syntheses still running are stopped at their next chunk, their streams cut), then
uvicorn shuts down. A second signal exits at once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from voicepocket.api.app import create_app
from voicepocket.api.state import Lifecycle, Services
from voicepocket.errors import Draining
from voicepocket.logs import configure_logging
from voicepocket.settings import Settings

_LOGGER = logging.getLogger(__name__)


STOPPED_S = 5.0
"""After the drain's deadline, how long stopped syntheses get to end their current chunk."""


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
            stopped = services.synthesizer.stop_all(
                Draining("The server is shutting down; this synthesis was stopped.")
            )
            _LOGGER.warning("Drain timed out with %d in flight; %d syntheses stopped",
                            services.in_flight.count, stopped)  # fmt: skip
            services.in_flight.idle.wait(STOPPED_S)
        self.should_exit = True


LATE_HEADERS = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol (httptools) with a deadline for a request's headers,
    counted from the connection's start or the request's first byte: uvicorn restarts its
    keep-alive timer on every byte, so a client sending one a second (or nothing) would
    hold a connection for ever."""

    header_timeout_s = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._awaiting_headers = True
        self._arm()  # uvicorn makes a protocol for each connection as it is accepted

    def data_received(self, data: bytes) -> None:
        if self._awaiting_headers:
            self._arm()  # a next request's first bytes on a kept-alive connection
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._awaiting_headers = True

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _late(self) -> None:
        self._header_timer = None
        transport = getattr(self, "transport", None)  # set once the connection is made
        if self._awaiting_headers and transport is not None and not transport.is_closing():
            transport.write(LATE_HEADERS)
            transport.close()


def header_deadline(timeout_s: float) -> type[HeaderDeadlineProtocol]:
    """The protocol class uvicorn instantiates, with its deadline."""
    return type("HeaderDeadline", (HeaderDeadlineProtocol,), {"header_timeout_s": timeout_s})


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
        http=header_deadline(settings.header_timeout_s),
        limit_concurrency=settings.max_connections,
    )
    DrainingServer(config, drain_s=settings.drain_s).run()

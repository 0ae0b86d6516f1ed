"""The little state every replica of a cluster shares, in Redis.

- Per-key request counts: every ingress replica admits against the same count, so
  ``VOICEPOCKET_PER_KEY_REQUESTS`` holds for the cluster, not per replica. Each admitted
  request is a member of a sorted set per key, scored by when it expires, so requests of
  a replica that died stop counting after ``TICKET_TTL_S``.
- Eviction broadcasts: deleting or replacing a voice publishes its pool key; every worker
  replica discards it from its pool at once.
- Replica stats: each worker replica writes its pool counters (and pid) every second, for
  ``/metrics``, readiness and the tests.

Redis holds counters, keys and stats only: never a model, never a pickle.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from voicepocket.admission import Admission, Ticket
from voicepocket.errors import CapacityError, RateLimited
from voicepocket.pool import PoolStats

_LOGGER = logging.getLogger(__name__)

TICKET_TTL_S = 600
"""An admitted request stops counting against its key after this long, in seconds (so a
crashed ingress cannot hold a key's slots for ever)."""

STATS_TTL_S = 15
"""A replica's stats vanish this long after its last report, in seconds."""

# KEYS[1]: the owner's set of admitted requests. ARGV: limit, ticket id, ttl. Redis's own
# clock, so replicas on machines with skewed clocks agree.
_ADMIT = """
local now = tonumber(redis.call('TIME')[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""


@dataclass(frozen=True, slots=True)
class ReplicaStats:
    """One worker replica's report."""

    replica: str
    """``host:pid``."""
    pid: int
    pool: PoolStats
    resident: list[str] = field(default_factory=list)
    """Resident pool keys, least recently used first."""
    reported_at: float = 0.0
    """Redis server time of the report, in seconds."""


class SharedState:
    """A Redis connection and the key prefix of this deployment."""

    def __init__(self, url: str, *, prefix: str) -> None:
        self.client: redis.Redis = redis.Redis.from_url(
            url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30
        )
        self.prefix = prefix
        self._admit = self.client.register_script(_ADMIT)

    # -- per-key request counts ------------------------------------------------------

    def try_admit(self, owner: str, ticket_id: str, *, limit: int) -> bool:
        """Count one more request of ``owner`` unless it already has ``limit``."""
        key = f"{self.prefix}inflight:{owner}"
        return bool(self._admit(keys=[key], args=[limit, ticket_id, TICKET_TTL_S]))

    def release(self, owner: str, ticket_id: str) -> None:
        self.client.zrem(f"{self.prefix}inflight:{owner}", ticket_id)

    def in_flight(self, owner: str) -> int:
        """Requests of ``owner`` counted now (expired ones included until the next admit)."""
        return int(self.client.zcard(f"{self.prefix}inflight:{owner}"))

    # -- broadcasts to every worker replica -------------------------------------------

    def channel(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def broadcast_evict(self, pool_key: str) -> int:
        """Tell every worker replica to discard ``pool_key``; returns how many listen."""
        return int(self.client.publish(self.channel("evict"), pool_key))

    def broadcast_warm(self, voice: str) -> int:
        """Tell every worker replica to load and warm ``voice`` (``owner/slug``), e.g. a
        hot public voice; returns how many listen."""
        return int(self.client.publish(self.channel("warm"), voice))

    def listen(self, handlers: dict[str, Callable[[str], None]]) -> threading.Thread:
        """Call ``handlers[name](message)`` for every broadcast on channel ``name``, on a
        daemon thread; subscribed before this returns, so no later broadcast is missed."""
        by_channel = {self.channel(name).encode(): h for name, h in handlers.items()}
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(*by_channel)

        def loop() -> None:
            while True:
                try:
                    message = pubsub.get_message(timeout=1.0)
                except redis.RedisError:
                    _LOGGER.warning("Broadcast channels lost; resubscribing", exc_info=True)
                    time.sleep(1.0)
                    with contextlib.suppress(redis.RedisError):
                        pubsub.subscribe(*by_channel)
                    continue
                if not message or message.get("type") != "message":
                    continue
                handler = by_channel.get(message["channel"])
                if handler is None:
                    continue
                try:
                    handler(message["data"].decode())
                except Exception:
                    _LOGGER.exception("Broadcast handler failed")

        thread = threading.Thread(target=loop, name="broadcasts", daemon=True)
        thread.start()
        return thread

    # -- replica stats ---------------------------------------------------------------

    def report(self, *, pid: int, pool: PoolStats, resident: list[str]) -> None:
        """Write this replica's stats (they expire unless reported again)."""
        replica = f"{socket.gethostname()}:{pid}"
        now = self.client.time()
        body = {
            "replica": replica,
            "pid": pid,
            "pool": asdict(pool),
            "resident": resident,
            "reported_at": now[0] + now[1] / 1e6,
        }
        self.client.set(f"{self.prefix}replica:{replica}", json.dumps(body), ex=STATS_TTL_S)

    def replicas(self) -> list[ReplicaStats]:
        """The stats of every worker replica that reported recently."""
        found: list[ReplicaStats] = []
        for key in self.client.scan_iter(match=f"{self.prefix}replica:*", count=100):
            raw = self.client.get(key)
            if raw is None:
                continue
            body: dict[str, Any] = json.loads(raw)
            found.append(
                ReplicaStats(
                    replica=body["replica"],
                    pid=body["pid"],
                    pool=PoolStats(**body["pool"]),
                    resident=body["resident"],
                    reported_at=body["reported_at"],
                )
            )
        return sorted(found, key=lambda r: r.replica)

    def report_every(
        self, interval_s: float, snapshot: Callable[[], tuple[PoolStats, list[str]]]
    ) -> threading.Thread:
        """Report ``snapshot()`` now and then every ``interval_s`` on a daemon thread."""
        pid = os.getpid()

        def loop() -> None:
            while True:
                try:
                    pool, resident = snapshot()
                    self.report(pid=pid, pool=pool, resident=resident)
                except redis.RedisError:
                    _LOGGER.warning("Could not report replica stats", exc_info=True)
                time.sleep(interval_s)

        thread = threading.Thread(target=loop, name="replica-stats", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self.client.close()


class SharedAdmission:
    """Admission whose per-key limit holds across every ingress replica; the global
    capacity stays this replica's own (``local``): it bounds this process's queue."""

    def __init__(self, shared: SharedState, *, local: Admission, per_owner: int) -> None:
        self._shared = shared
        self._local = local
        self._limit = per_owner

    def admit(self, owner: str) -> Ticket:
        ticket = self._local.admit(owner)
        try:
            admitted = self._shared.try_admit(owner, ticket.id, limit=self._limit)
        except redis.RedisError as exc:
            self._local.release(ticket)
            raise CapacityError(
                "Shared request counts are unavailable; retry shortly.", retry_after_s=2.0
            ) from exc
        if not admitted:
            self._local.release(ticket)
            raise RateLimited(
                f"Too many requests in flight for this API key (limit {self._limit}).",
                retry_after_s=1.0,
            )
        return ticket

    def release(self, ticket: Ticket) -> None:
        if ticket.released:
            return
        self._local.release(ticket)
        try:
            self._shared.release(ticket.owner, ticket.id)
        except redis.RedisError:
            _LOGGER.warning("Could not release a shared ticket; it expires by itself")

    @property
    def admitted(self) -> int:
        return self._local.admitted

"""The Ray Serve application, and ``voicepocket serve --cluster auto|<ray address>``."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import ray
from ray import serve
from ray._private import ray_constants

from voicepocket.cluster.ingress import Ingress
from voicepocket.cluster.training import deploy_training
from voicepocket.cluster.worker import VoiceWorker
from voicepocket.engine import Engine
from voicepocket.settings import Settings

_LOGGER = logging.getLogger(__name__)
APP_NAME = "voicepocket"
WORKER_DEPLOYMENT = "VoiceWorker"


def application(settings: Settings) -> Any:
    """The bound application: the ingress, holding a handle to the voice workers."""
    worker = serve.deployment(
        VoiceWorker,
        name=WORKER_DEPLOYMENT,
        num_replicas=settings.cluster_workers,
        ray_actor_options={"num_cpus": settings.cluster_worker_cpus},
        max_ongoing_requests=settings.cluster_max_ongoing,
        graceful_shutdown_timeout_s=settings.drain_s,
    )
    ingress = serve.deployment(
        serve.ingress()(Ingress),
        name="Ingress",
        num_replicas=settings.cluster_ingress_replicas,
        ray_actor_options={"num_cpus": settings.cluster_ingress_cpus},
        max_ongoing_requests=settings.workers + settings.queue_size + 16,
        graceful_shutdown_timeout_s=settings.drain_s,
    )
    return ingress.bind(settings, worker.bind(settings))


def prepare(settings: Settings) -> None:
    """First start, once, before any replica: schema migrations, the default voice, the
    demo key. Replicas then only find them (no two registering the same voice)."""
    engine = Engine(settings)
    try:
        engine.start(prewarm=False, demo_key=True)
    finally:
        engine.close()


def connect(address: str, settings: Settings) -> None:
    """Join the Ray cluster at ``address``; ``auto`` joins the local one (``ray start``)
    or, when there is none, starts a single-machine instance; ``local`` always starts a
    fresh single-machine instance (tests: never join another run's cluster)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address not in ("auto", "local"):
        ray.init(address=address, logging_level=logging.WARNING)
        return
    try:
        if address == "local":
            raise ConnectionError("a fresh instance was asked for")
        ray.init(address="auto", logging_level=logging.WARNING)
    except ConnectionError:
        _LOGGER.info("Starting a Ray instance on this machine, on loopback only")
        _loopback_and_token()
        ray.init(
            object_store_memory=settings.cluster_object_store_bytes,
            _temp_dir=settings.cluster_temp_dir or None,
            include_dashboard=False,
            logging_level=logging.WARNING,
            runtime_env={"worker_process_setup_hook": f"{__name__}.loopback_grpc"},
        )


def _loopback_and_token() -> None:
    """Make the instance about to start reachable from this machine's loopback only, and
    only with a token. Ray binds every server to the node's IP, and on Linux turns even an
    explicit ``127.0.0.1`` into the host's outbound address unless its cluster mode is off
    (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, read when ray is imported: hence the constant
    too). Token authentication is Ray's default for a new instance, with the token in
    ``~/.ray/auth_token``, which Ray creates readable by every user: it is made here
    first, mode 600 (or narrowed to it), so only the service's user can join."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    token = Path.home() / ".ray" / "auth_token"
    token.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not token.exists():
        with os.fdopen(os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
            out.write(secrets.token_hex(32))
    token.chmod(0o600)


def loopback_grpc() -> None:
    """Ray worker setup hook: Serve replicas start an internal gRPC server on ``[::]:0``
    whatever the node's IP (ray/serve/_private/replica.py, Ray 2.60), so its address is
    rewritten to loopback. The cluster test's socket listing catches a Ray that moves it."""
    from ray._common import tls_utils

    original = tls_utils.add_port_to_grpc_server

    def on_loopback(server: Any, address: str) -> Any:
        if address.startswith("[::]:"):
            address = "127.0.0.1:" + address.rpartition(":")[2]
        return original(server, address)

    tls_utils.add_port_to_grpc_server = on_loopback
    replica = sys.modules.get("ray.serve._private.replica")
    if replica is not None:
        replica.add_port_to_grpc_server = on_loopback  # type: ignore[attr-defined]


def deploy(settings: Settings) -> None:
    """Start Serve's HTTP proxy on ``host:port`` and run the application; then the
    training application (``cluster.training``), unless ``cluster_train_workers`` is 0."""
    serve.start(http_options={"host": settings.host, "port": settings.port})
    serve.run(application(settings), name=APP_NAME, route_prefix="/", blocking=False)
    if settings.cluster_train_workers:
        deploy_training(settings, voice_app=APP_NAME, voice_deployment=WORKER_DEPLOYMENT)


def serve_cluster(settings: Settings, *, address: str) -> None:
    """Run the service on Ray Serve until SIGTERM/SIGINT; blocks."""
    prepare(settings)
    connect(address, settings)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        deploy(settings)
        _LOGGER.warning("Serving on http://%s:%d (Ray Serve)", settings.host, settings.port)
        stop.wait()
    finally:
        serve.shutdown()
        ray.shutdown()

"""What Ray runs, asked from inside the cluster's network namespace.

With ``--listeners``: every listening socket in the namespace (no Ray needed).

Run as ``nsenter --net=/proc/PID/ns/net -- python ray_probe.py ADDRESS`` (``ADDRESS``: the
cluster's GCS on that namespace's loopback): joins as a driver and prints one JSON object:
Serve's status by application, what the training replica says of itself, and for every
live Serve replica, as seen from inside its actor, what Ray granted it, its thread names
and which of torch, coqui-tts and coqui's trainer it has imported.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import sys
import threading
from typing import Any

import psutil
import ray
from ray import serve

from voicepocket.cluster.training import DEPLOYMENT, TRAINING_APP

HEAVY = ("torch", "TTS", "trainer")
"""Top-level packages serving must never import."""

REPLICA_PREFIX = "SERVE_REPLICA::"
"""How Serve names a replica's actor: ``SERVE_REPLICA::{app}#{deployment}#{id}``."""


def _inside(_actor: object) -> dict[str, Any]:
    """Run in the replica's actor (``__ray_call__``), with the actor as argument."""
    return {
        "pid": os.getpid(),
        "resources": ray.get_runtime_context().get_assigned_resources(),
        "threads": sorted(thread.name for thread in threading.enumerate()),
        "heavy": sorted({name.split(".")[0] for name in sys.modules} & set(HEAVY)),
    }


def _name(state: object) -> str:
    """An enum member of Serve's status (``ApplicationStatus.RUNNING``) as its value."""
    return str(getattr(state, "value", state))


def main() -> None:
    ray.init(address=sys.argv[1], logging_level=logging.ERROR, log_to_driver=False)
    applications = {
        name: {
            "status": _name(app.status),
            "deployments": {
                deployment: {
                    "status": _name(d.status),
                    "replicas": {_name(state): n for state, n in d.replica_states.items()},
                }
                for deployment, d in app.deployments.items()
            },
        }
        for name, app in serve.status().applications.items()
    }
    replicas = []
    for actor in ray.util.list_named_actors(all_namespaces=True):
        if not actor["name"].startswith(REPLICA_PREFIX):
            continue
        app, deployment, _ = actor["name"][len(REPLICA_PREFIX) :].split("#")
        handle = ray.get_actor(actor["name"], namespace=actor["namespace"])
        inside = ray.get(handle.__ray_call__.remote(_inside), timeout=60)
        replicas.append({"app": app, "deployment": deployment, **inside})
    training = serve.get_deployment_handle(DEPLOYMENT, app_name=TRAINING_APP)
    info = training.describe.remote().result(timeout_s=60)
    print(json.dumps({
        "applications": applications,
        "replicas": replicas,
        "training": dataclasses.asdict(info),
    }))  # fmt: skip


def listeners() -> None:
    """Print every listening TCP socket of this namespace with its process's name, and the
    namespace's IPv4 addresses."""
    sockets = []
    for connection in psutil.net_connections(kind="tcp"):
        if connection.status != psutil.CONN_LISTEN:
            continue
        try:
            name = psutil.Process(connection.pid).name() if connection.pid else "?"
        except psutil.NoSuchProcess:
            name = "gone"
        sockets.append({"ip": connection.laddr.ip, "port": connection.laddr.port, "name": name})
    addresses = [
        address.address
        for per_interface in psutil.net_if_addrs().values()
        for address in per_interface
        if address.family == socket.AF_INET
    ]
    print(json.dumps({"listeners": sockets, "addresses": addresses}))


if __name__ == "__main__":
    listeners() if sys.argv[1] == "--listeners" else main()

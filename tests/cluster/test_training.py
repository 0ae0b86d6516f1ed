"""Training on Ray Serve: a deployment of its own, its own reservation, coqui as a child.

The session's cluster (see conftest) runs one training replica, which trains as the
training tests do (a tiny base built here, one thread). The end-to-end test runs first, so
what the probe finds afterwards holds after the replica started a trainer.
"""

from __future__ import annotations

import logging
import subprocess
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import httpx
import psutil
import pytest
from helpers import eventually
from server import VOICEPOCKET
from training_support import Joe, wav

from voicepocket.cluster import training
from voicepocket.cluster.training import DEPLOYMENT, TRAINING_APP, training_resources
from voicepocket.settings import Settings

if TYPE_CHECKING:  # tests/cluster/conftest.py (not importable by name: tests/ has one too)
    from cluster_conftest import Cluster

TRAINING_PROCESS = "voicepocket.training.coqui_train"
TRAINING_REPLICA = f"ray::ServeReplica:{TRAINING_APP}:{DEPLOYMENT}"
"""The process title Ray gives the training replica's actor."""


def _record(client: httpx.Client, joe: Joe, voice: str, *, prompts: int) -> None:
    """Consent and ``prompts`` prompts read by joe, each accepted by the ingress's checks."""
    found = client.get("/v1/voices/prompts", params={"language": "en"}).json()
    consent = client.post(f"/v1/voices/{voice}/consent",
                          files={"audio": ("c.wav", wav(joe.read(found["consent"])))})  # fmt: skip
    assert consent.status_code == 201, consent.text
    for prompt in found["prompts"][:prompts]:
        response = client.post(
            f"/v1/voices/{voice}/samples",
            files={"audio": ("s.wav", wav(joe.read(prompt["text"])))},
            data={"prompt_id": prompt["id"]},
        )
        assert response.status_code == 201, response.text


def _trainers(cluster: Cluster) -> list[psutil.Process]:
    home = cluster.env["VOICEPOCKET_HOME"]
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if TRAINING_PROCESS in cmdline and any(home in arg for arg in cmdline):
            found.append(process)
    return found


def test_the_training_replica_claims_a_queued_training_and_starts_coqui(
    cluster: Cluster, joe: Joe, tiny_base: Future[list[str]]
) -> None:
    """A training queued through the ingress is claimed by the training replica, which
    runs coqui's trainer as its own child, in the coqui environment's Python; cancelled
    through the ingress, the replica kills it at its next heartbeat. (Training on to a
    voice that speaks is the training tests' part: a minute more here.)"""
    model, config = tiny_base.result()
    subprocess.run([*VOICEPOCKET, "bases", "add", model, config, "--name", "tiny",
                    "--language", "en"],
                   env=cluster.env, check=True, capture_output=True, timeout=300)  # fmt: skip
    with cluster.client("trainer") as client:
        created = client.post("/v1/voices/trained", json={"slug": "mine", "language": "en"})
        assert created.status_code == 201, created.text
        _record(client, joe, "trainer/mine", prompts=2)
        queued = client.post("/v1/voices/trainer/mine/train")
        assert queued.status_code == 202, queued.text

        trainers: list[psutil.Process] = []

        def started() -> bool:
            trainers[:] = _trainers(cluster)
            return bool(trainers)

        eventually(started, timeout_s=60, what="the trainer process")
        assert len(trainers) == 1, trainers
        with trainers[0].oneshot():
            command, parent = trainers[0].cmdline(), trainers[0].parent()
        assert command[0] == str(Settings().coqui_python), command
        assert parent is not None, command
        assert parent.cmdline()[0].startswith(TRAINING_REPLICA), parent.cmdline()
        assert client.get("/v1/voices/trainer/mine").json()["training"]["state"] == "training"

        cancelled = client.delete("/v1/voices/trainer/mine/train")
        assert cancelled.status_code == 200, cancelled.text
        eventually(lambda: not _trainers(cluster), timeout_s=30,
                   what="the cancelled trainer to be killed")  # fmt: skip
        assert client.get("/v1/voices/trainer/mine").json()["training"]["state"] == "cancelled"


def test_training_has_a_deployment_and_a_reservation_of_its_own(cluster: Cluster) -> None:
    """Serve runs the training application beside the service: one replica holding the
    CPU Ray reserved for it (``VOICEPOCKET_TRAIN_THREADS``, apart from the voice workers'),
    running the training worker; no ingress replica runs one; and no replica of the
    cluster has imported torch or coqui, even after a training."""
    probe = cluster.ray_probe()
    training = probe["applications"][TRAINING_APP]
    assert training["status"] == "RUNNING", training
    assert training["deployments"][DEPLOYMENT]["replicas"] == {"RUNNING": 1}, training
    by_deployment: dict[str, list[dict[str, Any]]] = {}
    for replica in probe["replicas"]:
        by_deployment.setdefault(replica["deployment"], []).append(replica)
    [trainer] = by_deployment[DEPLOYMENT]
    assert trainer["resources"] == {"CPU": 1.0}, trainer
    assert "training-worker" in trainer["threads"], trainer["threads"]
    assert probe["training"]["pid"] == trainer["pid"]
    assert probe["training"]["resources"] == {"CPU": 1.0}
    ingresses, workers = by_deployment["Ingress"], by_deployment["VoiceWorker"]
    assert len(ingresses) == 2 and len(workers) == 2
    assert all("training-worker" not in r["threads"] for r in ingresses), ingresses
    assert all(r["resources"] == {"CPU": 0.25} for r in ingresses + workers), probe["replicas"]
    assert all(r["heavy"] == [] for r in probe["replicas"]), probe["replicas"]


def test_what_a_training_replica_reserves() -> None:
    """GPUs and one CPU when the settings ask for GPUs; else the trainer's CPU threads."""
    assert training_resources(Settings(train_gpus=1, train_threads=7)) == {
        "num_gpus": 1.0, "num_cpus": 1.0,
    }  # fmt: skip
    assert training_resources(Settings(train_gpus=0.5)) == {"num_gpus": 0.5, "num_cpus": 1.0}
    assert training_resources(Settings(train_threads=3)) == {"num_cpus": 3.0}
    assert Settings().cluster_train_workers == 1


def test_a_cluster_without_room_for_training_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Serving starts either way; the log says why trainings will stay queued."""
    caplog.set_level(logging.WARNING, logger=training.__name__)
    monkeypatch.setattr(training.ray, "cluster_resources", lambda: {"CPU": 4.0})
    serving = {"cluster_workers": 2, "cluster_worker_cpus": 1, "cluster_ingress_cpus": 1}
    training._warn_if_unplaceable(Settings(**serving, train_threads=1))  # type: ignore[arg-type]
    assert caplog.records == []
    training._warn_if_unplaceable(Settings(**serving, train_threads=2))  # type: ignore[arg-type]
    training._warn_if_unplaceable(Settings(**serving, train_gpus=1))  # type: ignore[arg-type]
    assert len(caplog.records) == 2
    assert "trainings stay queued" in caplog.records[0].getMessage()

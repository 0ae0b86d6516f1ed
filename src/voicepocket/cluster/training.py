"""Training in the cluster: the ``voicepocket-training`` application, whose replicas run
the training worker, each in a Ray reservation of its own.

A ``TrainingReplica`` is one ``TrainingWorker``, the one ``voicepocket train-worker`` runs:
it claims a queued training from the shared SQL registry, runs coqui's trainer as a child
process of the coqui environment's Python (``VOICEPOCKET_COQUI_PYTHON``; nothing in the
cluster imports torch), and registers the result. Ray reserves what that child uses, set
apart from the voice workers: ``VOICEPOCKET_TRAIN_GPUS`` GPUs per replica (Ray sets
``CUDA_VISIBLE_DEVICES``, which the child inherits) and one CPU, else
``VOICEPOCKET_TRAIN_THREADS`` CPUs. ``VOICEPOCKET_CLUSTER_TRAIN_WORKERS`` replicas, each
one training at a time; the ingress replicas never train.

The database row is the truth, not the replica: a replica that is stopped hands its
training back to the queue; one that dies stops renewing its lease, and whichever replica
polls next (Serve starts one in its place) resumes it from its last checkpoint; a restart
of the whole cluster picks up every queued training.

A replaced model is evicted from every voice worker (through Redis, ``WorkerVoices``); the
new one is loaded on the first request for it, by whichever worker Ray routes it to.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import ray
from ray import serve
from ray.serve import Application

from voicepocket.cluster.ingress import WorkerVoices
from voicepocket.cluster.shared import SharedState
from voicepocket.engine import Engine
from voicepocket.registry import Registry
from voicepocket.settings import Settings
from voicepocket.training.worker import TrainingWorker

_LOGGER = logging.getLogger(__name__)

TRAINING_APP = "voicepocket-training"
"""The Serve application of the training replicas (no HTTP route)."""

DEPLOYMENT = "TrainingWorker"

GPU_TRAINING_CPUS = 1.0
"""CPUs a training on GPUs reserves beside them: the trainer's Python loop, which also
loads the clips (in its own process: ``num_loader_workers=0``)."""

STOP_S = 20.0
"""How long a stopping replica waits for its training to be handed back, in seconds (the
trainer is killed at once; the hand-back is one database write)."""


def training_resources(settings: Settings) -> dict[str, float]:
    """Ray resources of one training replica: the GPUs asked for and a CPU, else the CPU
    threads a CPU training runs."""
    if settings.train_gpus > 0:
        return {"num_gpus": settings.train_gpus, "num_cpus": GPU_TRAINING_CPUS}
    return {"num_cpus": float(settings.train_threads)}


@dataclass(frozen=True, slots=True)
class TrainingReplicaInfo:
    """What a training replica says of itself."""

    worker: str
    """The training worker's name: what the rows it claims hold as their ``worker``."""
    pid: int
    """The replica's process: the parent of the trainer processes it starts."""
    resources: dict[str, float]
    """What Ray granted the replica (``CPU``, ``GPU``), as Ray reports it."""


class TrainingReplica:
    """Runs queued trainings, one at a time, until Serve stops the replica."""

    def __init__(self, settings: Settings, *, voice_app: str, voice_deployment: str) -> None:
        shared = (
            SharedState(settings.redis_url, prefix=settings.redis_prefix)
            if settings.redis_url
            else None
        )
        workers = serve.get_deployment_handle(voice_deployment, app_name=voice_app)

        def worker_voices(registry: Registry) -> WorkerVoices:
            return WorkerVoices(
                registry, workers=workers, shared=shared,
                budget_bytes=settings.pool_bytes * settings.cluster_workers,
            )  # fmt: skip

        self.engine = Engine(settings, voices=worker_voices)
        # Migrations are a no-op once ``serve --cluster`` prepared the database.
        self.engine.start(prewarm=False)
        self.worker = TrainingWorker(self.engine, prewarm=False)
        self.worker.start()
        _LOGGER.info("Training worker %s started (%s)", self.worker.name,
                     training_resources(settings))  # fmt: skip

    async def describe(self) -> TrainingReplicaInfo:
        assigned = ray.get_runtime_context().get_assigned_resources()
        return TrainingReplicaInfo(worker=self.worker.name, pid=os.getpid(), resources=assigned)

    def __del__(self) -> None:  # pragma: no cover - Ray calls it when a replica stops
        # Ray Serve's documented replica shutdown hook is __del__. Stopping kills the
        # trainer and puts its training back in the queue, resumed by the next worker.
        self.worker.stop(STOP_S)
        self.engine.close()


def training_application(
    settings: Settings, *, voice_app: str, voice_deployment: str
) -> Application:
    """The bound training application: ``cluster_train_workers`` replicas, each with the
    resources of ``training_resources``, evicting replaced models from the voice workers
    of ``voice_deployment`` in ``voice_app``."""
    deployment = serve.deployment(
        name=DEPLOYMENT,
        num_replicas=settings.cluster_train_workers,
        ray_actor_options=training_resources(settings),
        max_ongoing_requests=4,
        graceful_shutdown_timeout_s=STOP_S + 10,
    )(TrainingReplica)
    return deployment.bind(settings, voice_app=voice_app, voice_deployment=voice_deployment)


def deploy_training(settings: Settings, *, voice_app: str, voice_deployment: str) -> None:
    """Run the training application without waiting for its replicas: one waiting for a
    GPU (or CPUs) the cluster does not have yet must not hold serving back; its trainings
    stay queued meanwhile."""
    target = serve.RunTarget(
        training_application(settings, voice_app=voice_app, voice_deployment=voice_deployment),
        name=TRAINING_APP,
        route_prefix=None,
    )
    serve.run_many([target], wait_for_applications_running=False)
    _warn_if_unplaceable(settings)


def _warn_if_unplaceable(settings: Settings) -> None:
    """Log when the cluster, as it is now, lacks what the training replicas reserve on top
    of the voice workers and ingress replicas (an autoscaler may still add it)."""
    total = ray.cluster_resources()
    each = training_resources(settings)
    replicas = settings.cluster_train_workers
    serving = (
        settings.cluster_workers * settings.cluster_worker_cpus
        + settings.cluster_ingress_replicas * settings.cluster_ingress_cpus
    )
    gpus_short = replicas * each.get("num_gpus", 0.0) > total.get("GPU", 0.0)
    cpus_short = serving + replicas * each["num_cpus"] > total.get("CPU", 0.0)
    if gpus_short or cpus_short:
        _LOGGER.warning(
            "The %d training replica(s) need %s each beside serving's %.2f CPUs; the cluster "
            "has %.2f CPUs and %.0f GPUs: trainings stay queued until it has more (or lower "
            "VOICEPOCKET_TRAIN_THREADS / VOICEPOCKET_TRAIN_GPUS)",
            replicas, each, serving, total.get("CPU", 0.0), total.get("GPU", 0.0),
        )  # fmt: skip

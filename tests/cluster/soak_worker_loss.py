"""Soak: the worker-loss scenario of ``test_cluster.py``, many times in one cluster.

Not part of ``make test`` (the file name does not match ``test_*.py``); run it by name,
ideally under CPU load (one busy process per core)::

    for i in $(seq $(nproc)); do (while :; do :; done) & done
    SOAK_LOOPS=30 .venv/bin/pytest tests/cluster/soak_worker_loss.py -s -p no:cacheprovider
    kill %1 %2

Each loop kills one worker replica under 8 streams in flight, checks every answer (200
with exactly an uninterrupted run's audio, or 503 with Retry-After), then waits until Ray
has replaced the replica. It prints one line per loop and a summary.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from helpers import eventually

sys.path.insert(0, str(Path(__file__).parent))  # test_cluster.py, beside this file
from test_cluster import (
    VOICES,
    check_losses,
    kill_a_worker_mid_stream,
    six_voices,
    uninterrupted_lengths,
)

from voicepocket.engine import Engine

if TYPE_CHECKING:
    from cluster_conftest import Cluster

__all__ = ["six_voices"]  # the module fixture, used here by name
LOOPS = int(os.environ.get("SOAK_LOOPS", "30"))


def _replaced(cluster: Cluster, victim: int) -> bool:
    replicas = cluster.replicas()
    return (
        len(replicas) == 2
        and victim not in [r.pid for r in replicas]
        and not any(r.pool.in_use for r in replicas)
    )


@pytest.mark.timeout(LOOPS * 300)
def test_worker_loss_soak(engine: Engine, cluster: Cluster, six_voices: dict[str, str]) -> None:
    voices = [*VOICES, "joe"]
    expected = uninterrupted_lengths(engine, cluster, voices)
    failures = []
    for loop in range(1, LOOPS + 1):
        started = time.perf_counter()
        victim, results = kill_a_worker_mid_stream(cluster, voices)
        try:
            check_losses(results, expected)
            verdict = "ok"
        except AssertionError as error:
            failures.append((loop, error))
            verdict = f"FAILED: {error}"
        statuses = sorted(str(status) for _, status, _, _ in results)
        print(f"loop {loop}: {statuses} in {time.perf_counter() - started:.1f} s: {verdict}")
        eventually(lambda v=victim: _replaced(cluster, v), timeout_s=240, what="a new replica")
    print(f"{LOOPS} loops, {len(failures)} failed")
    assert failures == []

"""Child processes for untrusted work: no secrets inherited, limited address space, and a
timeout kills everything the child started."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import psutil
import pytest

from voicepocket import children

REPORT = """
import json, os, resource
print(json.dumps({"env": dict(os.environ), "as": resource.getrlimit(resource.RLIMIT_AS)[0]}))
"""


def test_a_child_has_no_secrets_and_a_limited_address_space(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VOICEPOCKET_DATABASE_URL", "postgresql://u:password@db/x")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/secrets/gcs.json")
    done = children.run([sys.executable, "-c", REPORT], timeout_s=60, address_space=2 * 1024**3)
    report = json.loads(done.stdout)
    assert set(report["env"]) <= set(children.PASSED_ENV) | {"LC_CTYPE"}
    assert report["as"] == 2 * 1024**3


def test_a_timeout_kills_the_child_and_what_it_started() -> None:
    spawner = ("import subprocess, sys, time; "
               "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
               "print(p.pid, flush=True); time.sleep(60)")  # fmt: skip
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as raised:
        children.run([sys.executable, "-c", spawner], timeout_s=3)
    assert time.monotonic() - started < 30
    grandchild = int(raised.value.stdout.split()[0])
    assert not psutil.pid_exists(grandchild) or psutil.Process(grandchild).status() == "zombie"

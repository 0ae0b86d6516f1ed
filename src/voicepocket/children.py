"""Child processes for untrusted or heavy work: the registration probe, the coqui compile
and training. Each starts with only the environment it needs, never the service's secrets
(storage keys, the database URL: ``VOICEPOCKET_*``, ``AWS_*`` and the like are not passed),
under an address-space limit that ``prlimit`` sets before the command runs (a
``preexec_fn`` is unsafe in a threaded server), in a session of its own so that a timeout
kills it and everything it started."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

ADDRESS_SPACE_LIMIT = 16 * 1024**3
"""Address space of a probe or compile child, in bytes: far above an honest voice's needs,
well below what would push the server out of memory."""

PASSED_ENV = (
    "PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "PYTHONPATH",
    "LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES",
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
)  # fmt: skip
"""The only variables a child inherits: where programs and libraries are, the locale, and
which devices and threads it may use."""


def child_env() -> dict[str, str]:
    """The environment a child starts with."""
    return {name: os.environ[name] for name in PASSED_ENV if name in os.environ}


def limited(command: Sequence[str], *, address_space: int) -> list[str]:
    """``command`` run under an address-space limit, no core dumps."""
    return ["prlimit", f"--as={address_space}", "--core=0", "--", *command]


def run(
    command: Sequence[str], *, timeout_s: float, cwd: Path | None = None,
    address_space: int = ADDRESS_SPACE_LIMIT,
) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run ``command`` to its end as a limited child, capturing its output as text; on
    ``timeout_s`` its whole process group is killed and ``TimeoutExpired`` raised."""
    with subprocess.Popen(
        limited(command, address_space=address_space),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
        env=child_env(), start_new_session=True,
    ) as process:  # fmt: skip
        try:
            stdout, stderr = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired as timeout:
            kill_group(process)
            timeout.stdout, timeout.stderr = process.communicate()
            raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def kill_group(process: subprocess.Popen[str]) -> None:
    """SIGKILL ``process`` and everything in its session (``start_new_session``)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)

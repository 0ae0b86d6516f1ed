"""Asynchronous jobs: 202 + progress, automatic for long input, and never lost or stored
twice when the service is killed mid-job. Also the CLI's progress bar on a long file."""

from __future__ import annotations

import io
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import soundfile as sf
from helpers import eventually
from server import VOICEPOCKET, Server, start_server

SENTENCES = [
    "The old lighthouse keeper climbed the stairs each evening at dusk.",
    "He counted one hundred and twelve steps, never more and never less.",
    "At the top he lit the lamp and watched the ships pass in the dark.",
    "Some nights the fog was so thick that he could not see the water.",
    "On those nights he rang the bell every minute until the morning came.",
]


def book(chars: int) -> str:
    text, n = "", 0
    while len(text) < chars:
        text += SENTENCES[n % len(SENTENCES)] + " "
        n += 1
    return text.strip()


def wait_for_job(
    client: httpx.Client, job_id: str, *, until: set[str], seconds: float = 300
) -> tuple[dict[str, Any], list[int]]:
    """The job once its status is in ``until``, and the ``chunks_done`` seen on the way."""
    job: dict[str, Any] = {}
    seen: list[int] = []

    def reached() -> bool:
        job.update(client.get(f"/v1/jobs/{job_id}").json())
        seen.append(job["chunks_done"])
        return job["status"] in until

    try:
        eventually(reached, timeout_s=seconds, what=f"job {job_id} to be {until}", interval_s=0.2)
    except AssertionError as error:
        raise AssertionError(f"job stuck: {job}") from error
    return job, seen


def test_async_job_reports_progress_and_stores_one_result(server: Server) -> None:
    with server.client("kate") as kate, server.client("leo") as leo:
        response = kate.post("/v1/syntheses", json={
            "voice": "joe", "input": book(600), "response_format": "mp3", "async": True})
        assert response.status_code == 202, response.text
        job = response.json()
        assert job["status"] == "queued" and job["synthesis_url"] is None
        assert leo.get(f"/v1/jobs/{job['id']}").status_code == 404
        done, seen = wait_for_job(kate, job["id"], until={"done", "failed"})
        assert done["status"] == "done", done
        assert done["chunks_done"] == done["chunks_total"] > 3 and done["progress"] == 1.0
        assert seen == sorted(seen)  # progress only moves forward
        synthesis = kate.get(done["synthesis_url"]).json()
        audio = kate.get(synthesis["url"]).content
        assert sf.info(io.BytesIO(audio)).duration > 20
        assert leo.get(done["synthesis_url"]).status_code == 404


def test_bad_jobs_are_refused_at_once(server: Server) -> None:
    with server.client("kate") as kate:
        for body, status in (({"voice": "nobody/x", "input": "Hi.", "async": True}, 404),
                             ({"voice": "joe", "input": "   ", "async": True}, 400),
                             ({"voice": "joe", "input": "Hi.", "async": True,
                               "response_format": "aac"}, 400)):  # fmt: skip
            assert kate.post("/v1/syntheses", json=body).status_code == status


def test_long_input_becomes_a_job_and_survives_sigkill(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    home = tmp_path_factory.mktemp("jobs") / "home"
    settings = {"max_input_chars": 300, "job_lease_s": 2, "workers": 1}
    first = start_server(home, **settings)
    client = first.client("mia")
    response = client.post("/v1/syntheses", json={"voice": "joe", "input": book(1500),
                                                  "response_format": "wav"})  # fmt: skip
    assert response.status_code == 202  # over max_input_chars: automatically a job
    job_id = response.json()["id"]
    eventually(
        lambda: client.get(f"/v1/jobs/{job_id}").json()["chunks_done"] >= 2,
        timeout_s=120, what="two chunks of the job done", interval_s=0.1,
    )  # fmt: skip
    os.kill(first.process.pid, signal.SIGKILL)  # mid-job, no chance to clean up
    first.process.wait(30)
    second = start_server(home, **settings)
    try:
        with second.client("mia") as again:
            done, _ = wait_for_job(again, job_id, until={"done", "failed"})
            assert done["status"] == "done" and done["attempts"] == 2, done
            listed = again.get("/v1/syntheses").json()["data"]
            assert [s["id"] for s in listed] == [done["synthesis_id"]]
        # A writer killed mid-put can leave bytes in staging, never at a visible key.
        stored = [p for p in (home / "audio").rglob("*")
                  if p.is_file() and ".staging" not in p.parts]  # fmt: skip
        assert [p.name for p in stored] == [f"{done['synthesis_id']}.wav"]
        assert sf.info(str(stored[0])).duration > 60
    finally:
        second.stop()


def test_cli_reads_a_long_file_with_a_progress_bar(tmp_path: Path) -> None:
    text = tmp_path / "book.txt"
    text.write_text(book(5000))
    env = {**os.environ, "VOICEPOCKET_HOME": str(tmp_path / "home"), "VOICEPOCKET_THREADS": "2"}
    output = tmp_path / "book.mp3"
    done = subprocess.run([*VOICEPOCKET, "say", "-f", str(text), "-o", str(output)], env=env,
                          capture_output=True, text=True, timeout=600, check=True)  # fmt: skip
    assert "chunks" in done.stderr and "Synthesizing" in done.stderr
    assert sf.info(str(output)).duration > 250  # about 5 minutes of speech

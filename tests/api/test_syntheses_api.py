"""Stored syntheses: the seed's flow, owner-only, at {owner}/{uuid}.{ext}."""

from __future__ import annotations

import io
import re

import soundfile as sf
from server import Server


def test_store_fetch_list_delete(server: Server) -> None:
    with server.client("hank") as hank, server.client("ivy") as ivy:
        created = hank.post("/v1/syntheses", json={
            "voice": "joe", "input": "Stored for later. Twice as useful.",
            "response_format": "flac"})  # fmt: skip
        assert created.status_code == 201, created.text
        synthesis = created.json()
        assert synthesis["voice"] == "demo/joe" and synthesis["format"] == "flac"
        stored = server.home / "audio" / "hank" / f"{synthesis['id']}.flac"
        assert stored.exists() and stored.stat().st_size == synthesis["bytes"]
        assert re.fullmatch(r"[0-9a-f]{32}", synthesis["id"])
        audio = hank.get(synthesis["url"])
        assert audio.headers["content-type"] == "audio/flac"
        info = sf.info(io.BytesIO(audio.content))
        assert abs(info.duration - synthesis["duration_s"]) < 0.02 * synthesis["duration_s"]
        assert hank.get(f"/v1/syntheses/{synthesis['id']}").json() == synthesis
        assert [s["id"] for s in hank.get("/v1/syntheses").json()["data"]] == [synthesis["id"]]
        # Nobody else can see, fetch or delete it.
        assert ivy.get(f"/v1/syntheses/{synthesis['id']}").status_code == 404
        assert ivy.get(synthesis["url"]).status_code == 404
        assert ivy.delete(f"/v1/syntheses/{synthesis['id']}").status_code == 404
        assert ivy.get("/v1/syntheses").json()["data"] == []
        assert hank.delete(f"/v1/syntheses/{synthesis['id']}").status_code == 204
        assert not stored.exists()
        assert hank.get(synthesis["url"]).status_code == 404


def test_bad_synthesis_requests_store_nothing(server: Server) -> None:
    with server.client("jack") as jack:
        for body in ({"voice": "joe", "input": ""}, {"voice": "nobody/x", "input": "Hi."},
                     {"voice": "joe", "input": "Hi.", "response_format": "aac"}):  # fmt: skip
            assert 400 <= jack.post("/v1/syntheses", json=body).status_code < 500
        assert jack.get("/v1/syntheses").json()["data"] == []
    assert not (server.home / "audio" / "jack").exists()

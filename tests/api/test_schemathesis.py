"""Property-based requests generated from /openapi.json: the server never answers 5xx."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from server import Server

from voicepocket import __version__


def test_no_server_errors(server: Server) -> None:
    """Every operation, 25 generated requests each, as an authenticated caller."""
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    headers = {"Authorization": f"Bearer {server.key('fuzzer')}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)  # fmt: skip
        def check(case) -> None:  # type: ignore[no-untyped-def]
            response = case.call(base_url=server.url, headers=headers, timeout=60)
            where = (case.method, case.formatted_path, response.text[:300])
            assert response.status_code < 500, where
            if response.status_code >= 400:  # every error is OpenAI-shaped JSON
                assert set(response.json()["error"]) == {"message", "type", "param", "code"}

        check()


def test_openapi_describes_the_service(server: Server) -> None:
    import httpx

    spec = httpx.get(f"{server.url}/openapi.json").json()
    assert spec["info"]["version"] == __version__
    assert {"/v1/audio/speech", "/v1/voices", "/v1/syntheses", "/healthz"} <= set(spec["paths"])
    # Swagger UI and ReDoc would load a CDN's scripts on the origin that holds the key.
    for page in ("/docs", "/redoc"):
        assert httpx.get(f"{server.url}{page}").status_code == 404, page

"""Request dependencies: the app's services and the caller behind the API key."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from voicepocket.api.state import Services
from voicepocket.errors import AuthenticationError

_bearer = HTTPBearer(auto_error=False, description="An API key: `voicepocket keys create`.")


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The owner the request's API key acts as."""
    checked = request.scope.get("state", {}).get("owner")
    if checked is not None:  # the body guard (middleware) checked this request's key
        return str(checked)
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise AuthenticationError("Missing API key: send 'Authorization: Bearer <key>'.")
    keys = services(request).engine.registry.keys
    owner = await run_in_threadpool(keys.owner_of, credentials.credentials)
    if owner is None:
        raise AuthenticationError("Invalid or revoked API key.")
    request.state.owner = owner
    return owner


Caller = Annotated[str, Depends(caller)]
ServicesDep = Annotated[Services, Depends(services)]
"""The running app's ``Services``, injected."""

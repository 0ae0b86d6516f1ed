"""One mapping from errors to OpenAI-shaped JSON: ``{"error": {message, type, param, code}}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from voicepocket.errors import RetryLater, StorageError, VoicePocketError

_LOGGER = logging.getLogger(__name__)


def error_response(
    status: int,
    message: str,
    *,
    type: str,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"message": message, "type": type, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def from_error(error: VoicePocketError) -> JSONResponse:
    headers = None
    if isinstance(error, RetryLater):
        headers = {"Retry-After": str(max(1, round(error.retry_after_s)))}
    elif isinstance(error, StorageError):
        headers = {"Retry-After": "5"}
    return error_response(
        error.status,
        error.message,
        type=error.type,
        param=error.param,
        code=error.code,
        headers=headers,
    )


async def _voicepocket_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, VoicePocketError)
    if error.status >= 500:
        _LOGGER.warning("%s: %s", type(error).__name__, error.message, exc_info=error)
    return from_error(error)


async def _validation_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    first = error.errors()[0] if error.errors() else {}
    location = [str(part) for part in first.get("loc", ()) if part != "body"]
    message = first.get("msg", "Invalid request.")
    param = ".".join(location) or None
    text = f"{param}: {message}" if param else message
    return error_response(400, text, type="invalid_request_error", param=param,
                          code="invalid_request")  # fmt: skip


async def _http_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
    return error_response(
        error.status_code,
        str(error.detail),
        type="invalid_request_error",
        code=code,
        headers=dict(error.headers or {}),
    )


async def _unexpected(_: Request, error: Exception) -> JSONResponse:
    _LOGGER.error("Unhandled error", exc_info=error)
    return error_response(500, "Internal server error.", type="server_error",
                          code="internal_error")  # fmt: skip


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(VoicePocketError, _voicepocket_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)

"""The one error type of the gateway, and how every error reaches the client: JSON ``{"error": ...}``."""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.observability import request_id_of

MAX_HEADER_MESSAGE = 500
log = logging.getLogger("gateway.errors")


class GatewayError(Exception):
    """An error with the HTTP status and message the client gets; ``estimated_time`` (seconds) for a model that
    is loading, as the HF API sends it."""

    def __init__(self, status: int, message: str, estimated_time: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.estimated_time = estimated_time


def loading(model_id: str, estimated_time: float) -> GatewayError:
    """The HF Inference API's answer for a model that is not loaded yet."""
    return GatewayError(503, f"Model {model_id} is currently loading", round(max(1.0, estimated_time), 1))


def error_response(
    status: int,
    message: str,
    retry_after_s: int | None = None,
    estimated_time: float | None = None,
    request_id: str = "",
) -> JSONResponse:
    """``{"error": message}`` (plus ``estimated_time`` when given), the message also in ``X-Error-Message`` as
    huggingface_hub reads it."""
    # Headers must be one line of ASCII: a multi-line message (onnxruntime's) would make uvicorn drop the answer.
    one_line = " ".join(message.split())
    headers = {"X-Error-Message": one_line.encode("ascii", "replace").decode()[:MAX_HEADER_MESSAGE]}
    if retry_after_s is not None:
        headers["Retry-After"] = str(retry_after_s)
    body: dict[str, object] = {"error": message}
    if estimated_time is not None:
        body["estimated_time"] = estimated_time
    if request_id:  # the id to quote when reporting it: the same as in the gateway's log and Triton's
        body["request_id"] = request_id
        headers["X-Request-Id"] = request_id
    return JSONResponse(body, status_code=status, headers=headers)


def install(app: FastAPI, retry_after_s: int) -> None:
    """Answer every error as JSON: ours, Starlette's (404 route, 405), and validation errors as 400, not 422."""

    @app.exception_handler(GatewayError)
    async def gateway_error(request: Request, error: GatewayError) -> JSONResponse:
        retry = math.ceil(error.estimated_time) if error.estimated_time is not None else retry_after_s
        return error_response(
            error.status, error.message, retry if error.status == 503 else None, error.estimated_time,
            request_id_of(request.scope),
        )  # fmt: skip

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        response = error_response(error.status_code, str(error.detail), request_id=request_id_of(request.scope))
        response.headers.update(error.headers or {})  # e.g. the Allow header of a 405
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        message = "; ".join(str(e.get("msg")) for e in error.errors())
        return error_response(400, message, request_id=request_id_of(request.scope))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        # A bug, not the client's fault: JSON like every other answer, its traceback logged once, with the id.
        log.error("unexpected error", exc_info=error)
        return error_response(500, "internal error (the gateway's log has the details under this request id)",
                              request_id=request_id_of(request.scope))  # fmt: skip

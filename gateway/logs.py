"""Request ids, the access log and the log format: how an operator follows one request.

Every HTTP answer carries ``X-Request-Id``: the client's (if it is a sane token) or a new one. The id is in
each log line written while the request runs, in error bodies, in the access line, and it is Triton's
inference request id. ``GATEWAY_LOG_FORMAT=json`` writes one JSON object per line (the standard library's
formatter, extended: no dependency for ten lines of code), uvicorn's own lines included.
"""

from __future__ import annotations

import contextvars
import copy
import json
import logging
import re
import time
import uuid
from typing import Any

import uvicorn

REQUEST_ID_HEADER = "x-request-id"
_ACCEPTED_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")  # longer or odd ids are replaced, never echoed
current_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
access_log = logging.getLogger("gateway.access")


def request_id_of(scope: dict[str, Any]) -> str:
    """The id of the request ``scope`` belongs to ("" outside a request)."""
    return scope.get("state", {}).get("request_id", "")


class RequestIds:
    """ASGI middleware: picks the request id, puts it in the answer's headers and the logs' context, and
    writes one access line per HTTP request (method, path, model, status, seconds, bytes, client; never
    the headers, so never the token)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        request_id = given if _ACCEPTED_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = current_request_id.set(request_id)
        started, answer = time.perf_counter(), {"status": 0, "bytes": 0}

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"x-request-id" for name, _ in headers):  # error answers carry it
                    headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            elif message["type"] == "http.response.body":
                answer["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if scope["type"] == "http":
                client = scope.get("client") or ("", 0)
                access_log.info(
                    "%s %s %s %.3fs",
                    scope["method"],
                    scope["path"],
                    answer["status"],
                    time.perf_counter() - started,
                    extra={
                        "model": scope["state"].get("model", ""),
                        "status": answer["status"],
                        "seconds": round(time.perf_counter() - started, 4),
                        "bytes": answer["bytes"],
                        "client": client[0],
                        "method": scope["method"],
                        "path": scope["path"],
                    },
                )
            current_request_id.reset(token)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id.get()
        return True


_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry |= {key: value for key, value in vars(record).items() if key not in _STANDARD}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def log_config(level: str, fmt: str) -> dict[str, Any]:
    """uvicorn's logging setup (applied in every worker) with the gateway's loggers beside uvicorn's, the
    request id in every line, at ``level``, as text or ``json``."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["filters"] = {"request_id": {"()": _RequestIdFilter}}
    if fmt == "json":
        config["formatters"] = {"default": {"()": JsonFormatter}, "access": {"()": JsonFormatter}}
    else:
        config["formatters"]["gateway"] = {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"}
        config["handlers"]["gateway"] = {
            "class": "logging.StreamHandler",
            "formatter": "gateway",
            "stream": "ext://sys.stderr",
            "filters": ["request_id"],
        }
    handler = "gateway" if fmt != "json" else "default"
    for name in config["handlers"]:
        config["handlers"][name].setdefault("filters", ["request_id"])
    config["loggers"]["gateway"] = {"handlers": [handler], "level": level.upper(), "propagate": False}
    for name in ("uvicorn", "uvicorn.error"):
        config["loggers"].setdefault(name, {})["level"] = level.upper()
    return config

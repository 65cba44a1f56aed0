"""The one error type of the gateway: an HTTP status and the message the client reads."""

from __future__ import annotations


class GatewayError(Exception):
    """An error with the HTTP status and message the client gets."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

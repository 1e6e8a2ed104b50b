"""The one error shape every endpoint answers with: {"error": short phrase, "detail": explanation}."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An expected failure with its HTTP status, e.g. a bad upload (400) or a busy server (429)."""

    def __init__(
        self, status: int, error: str, detail: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON body sent to the client."""
        return error_body(self.error, self.detail)


def error_body(error: str, detail: Any = None) -> dict[str, Any]:
    """{"error": ..., "detail": ...}; detail left out when there is nothing to add."""
    return {"error": error} if detail is None else {"error": error, "detail": detail}

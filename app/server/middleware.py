"""Pure ASGI middleware: the catch-all for unexpected errors, security headers, the API key and the
request size limit. Pure ASGI (not BaseHTTPMiddleware) so a request body is streamed, never buffered,
before the size limit has seen it."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Collection

from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.server.errors import error_body

log = logging.getLogger("seglens.server")

TOO_LARGE = "request too large"

_SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    # Predictions of private images must not linger in shared caches.
    (b"cache-control", b"no-store"),
)


class CatchAllMiddleware:
    """Turns any unexpected exception into `500 {"error": "internal error"}` and logs the traceback
    server-side only: a traceback names files, paths and library versions a client has no business with."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            # Method and path only: headers may carry the API key.
            log.exception("internal error while answering %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await JSONResponse(error_body("internal error"), status_code=500)(scope, receive, send)


class SecurityHeadersMiddleware:
    """Adds nosniff / no-referrer / no-store to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def add_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in _SECURITY_HEADERS if k not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, add_headers)


class ApiKeyMiddleware:
    """Requires `Authorization: Bearer KEY` or `X-API-Key: KEY` on every path but the public ones.

    The comparison is constant-time (hmac.compare_digest) and the key is never echoed, logged or put
    in an error message.
    """

    def __init__(self, app: ASGIApp, api_key: str, public_paths: Collection[str]) -> None:
        if not api_key:
            raise ValueError("an empty API key would accept everyone")
        self.app = app
        self._key = api_key.encode("utf-8")
        self._public = frozenset(public_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._public or self._authorized(Headers(scope=scope)):
            await self.app(scope, receive, send)
            return
        response = JSONResponse(
            error_body("unauthorized", "send the API key as 'Authorization: Bearer <key>' or 'X-API-Key'"),
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
        await response(scope, receive, send)

    def _authorized(self, headers: Headers) -> bool:
        candidates = [headers.get("x-api-key", "")]
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            candidates.append(token.strip())
        # Compare every candidate (no early exit) so timing does not reveal which header matched.
        results = [hmac.compare_digest(c.encode("utf-8", "surrogateescape"), self._key) for c in candidates]
        return any(results)


class BodyLimitMiddleware:
    """Answers 413 when a request body exceeds `max_bytes`: at once from Content-Length, or as soon as a
    chunked body streams past the limit (the upload is never read further)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await JSONResponse(error_body(TOO_LARGE, self._detail()), status_code=413)(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # An HTTPException, because FastAPI re-raises those from body parsing (anything else
                    # it turns into a generic 400).
                    raise HTTPException(413, detail=self._detail())
            return message

        await self.app(scope, limited, send)

    def _detail(self) -> str:
        return f"the request body is larger than this server's limit of {self.max_bytes} bytes"

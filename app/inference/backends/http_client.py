"""The one HTTP client behind the remote backends (SegLens REST and Open Inference Protocol v2).

Built on httpx rather than urllib3: httpx.Timeout keeps connect, read, write and pool-wait limits apart,
one httpx.Client is safe to share between the evaluator's worker threads and pools its connections, its
exceptions tell "never connected" from "connection dropped mid-response" from "read timed out", and it is
already in the environment as FastAPI's test client. Retries are ours (httpx only retries connects):

* 429/502/503/504 and dropped connections are retried, at most `retries` times, with exponential backoff
  and full jitter, waiting at least what the server's Retry-After says (seconds or an HTTP date). Every
  request we send is idempotent — predict is a pure function of the image and /switch sets the same state
  twice — so resending after a reset cannot do harm. Other 4xx are the caller's mistake: never retried.
* A read timeout is NOT retried: the server is busy with the request, sending it again only adds load.
* A semaphore per endpoint (base URL, shared by every client in the process) caps requests in flight, so
  the evaluator's workers and the GUI's preview together never exceed what the server is told to take.
* TLS is verified (optionally against a CA bundle); the API key lives in a Secret that never prints, is
  masked out of every message we build and is sent only in the Authorization header.
"""

from __future__ import annotations

import email.utils
import hashlib
import importlib
import json
import logging
import math
import os
import random
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from app.core.domain.errors import ModelLoadError, PredictError
from app.inference.base import Timings

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 502, 503, 504})
_MESSAGE_LIMIT = 300  # characters of a server's error text kept in our messages
ErrorFactory = Callable[[str], Exception]


def load_error(message: str) -> ModelLoadError:
    """A ModelLoadError for a remote model: the message names the URL (ModelLoadError's path is a file)."""
    return ModelLoadError(None, message)


@dataclass(frozen=True)
class RemoteTimings(Timings):
    """Timings of a remote predict(): preprocess/postprocess are local (encode, decode), inference_ms is
    the server's own time when it reports one (else the whole round trip) and network_ms the rest of the
    round trip (transfer, queueing, HTTP)."""

    network_ms: float = 0.0
    server_reported: bool = False

    @property
    def total_ms(self) -> float:
        return self.preprocess_ms + self.inference_ms + self.postprocess_ms + self.network_ms


def split_round_trip(round_trip_ms: float, server_ms: float | None) -> tuple[float, float, bool]:
    """(inference_ms, network_ms, server_reported) from a measured round trip and the server's figure."""
    if server_ms is None or not math.isfinite(server_ms) or server_ms < 0:
        return round_trip_ms, 0.0, False
    server_ms = min(server_ms, round_trip_ms)  # clocks differ; never report negative network time
    return server_ms, round_trip_ms - server_ms, True


class Secret:
    """An API key that does not show itself in repr/str, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The key itself, for the Authorization header only."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


def resolve_api_key(options: Mapping[str, Any], where: str) -> Secret | None:
    """The key named by a manifest's options: `api_key_env` (an environment variable) or
    `keyring_service` (+ optional `keyring_user`, default "seglens") in the OS keyring. None when neither
    is given. A key written into the manifest itself is refused: manifests are shared and committed."""
    if "api_key" in options:
        raise load_error(
            f"{where}: a key in the manifest would be stored in clear text; put it in an environment "
            "variable named by options.api_key_env or in the OS keyring (options.keyring_service)"
        )
    env = options.get("api_key_env")
    if env:
        value = os.environ.get(str(env), "")
        if not value:
            raise load_error(f"{where}: environment variable {env} (options.api_key_env) is not set")
        return Secret(value)
    service = options.get("keyring_service")
    if service:
        return Secret(_keyring_key(str(service), str(options.get("keyring_user", "seglens")), where))
    return None


def _keyring_key(service: str, user: str, where: str) -> str:
    try:
        keyring = importlib.import_module("keyring")
    except ImportError as exc:
        raise load_error(f"{where}: options.keyring_service needs the 'keyring' package") from exc
    try:
        value = keyring.get_password(service, user)
    except Exception as exc:  # keyring backends raise their own types (no backend, locked, ...)
        raise load_error(f"{where}: OS keyring lookup for {service!r} failed: {type(exc).__name__}") from None
    if not value:
        raise load_error(f"{where}: no key for service {service!r}, user {user!r} in the OS keyring")
    return str(value)


@dataclass(frozen=True)
class ClientSettings:
    """Timeouts (seconds), retry policy and TLS for one endpoint; from a manifest's `options`."""

    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    retries: int = 3  # extra attempts after the first
    backoff_base: float = 0.25  # first retry waits up to this, doubling each time (full jitter)
    backoff_max: float = 8.0
    max_retry_after: float = 30.0  # a server asking for a longer pause is reported, not waited for
    max_concurrency: int = 4  # requests in flight to this endpoint from this process
    queue_timeout: float = 120.0  # waiting for one of those slots
    max_response_bytes: int = 64 << 20  # a longer body is refused while it streams (decoded size)
    ca_bundle: str | None = None  # PEM file of extra trusted CAs; TLS verification is always on

    @classmethod
    def from_options(cls, options: Mapping[str, Any], where: str) -> ClientSettings:
        """Settings from manifest options (same names as the fields); bad values raise ModelLoadError."""
        values: dict[str, Any] = {}
        for name, kind in (
            ("connect_timeout", float),
            ("read_timeout", float),
            ("retries", int),
            ("backoff_base", float),
            ("backoff_max", float),
            ("max_retry_after", float),
            ("max_concurrency", int),
            ("queue_timeout", float),
            ("max_response_bytes", int),
        ):
            if name in options:
                value = options[name]
                if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                    raise load_error(f"{where}: options.{name} must be a non-negative number, got {value!r}")
                values[name] = kind(value)
        if values.get("max_concurrency", 1) < 1:
            raise load_error(f"{where}: options.max_concurrency must be at least 1")
        if values.get("max_response_bytes", 1) < 1:
            raise load_error(f"{where}: options.max_response_bytes must be at least 1")
        if options.get("ca_bundle") is not None:
            values["ca_bundle"] = str(options["ca_bundle"])
        return cls(**values)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait per a Retry-After header (delta-seconds or an HTTP date), or None if absent or
    unreadable. Dates in the past give 0."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_delay(
    attempt: int, settings: ClientSettings, retry_after: float | None, rng: Callable[[], float]
) -> float:
    """Seconds before retry number `attempt` (0-based): full jitter, uniform in [0, min(max,
    base * 2**attempt)], but never less than the server's Retry-After."""
    ceiling = min(settings.backoff_max, settings.backoff_base * (2.0**attempt))
    jittered = rng() * ceiling
    return max(jittered, retry_after) if retry_after is not None else jittered


def endpoint_label(url: str) -> str:
    """The URL as shown in messages: no user:password@, no query string (either might hold a key)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


_SLOTS: dict[str, threading.BoundedSemaphore] = {}
_SLOTS_LOCK = threading.Lock()


def endpoint_slots(base_url: str, size: int) -> threading.BoundedSemaphore:
    """The process-wide semaphore capping requests in flight to `base_url`. The first client to ask for
    an endpoint sets its size; later ones share it."""
    key = endpoint_label(base_url)
    with _SLOTS_LOCK:
        slots = _SLOTS.get(key)
        if slots is None:
            slots = _SLOTS[key] = threading.BoundedSemaphore(size)
        return slots


class HttpClient:
    """Requests to one endpoint with timeouts, retries, a concurrency cap and a hidden key. Thread-safe."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: Secret | None = None,
        settings: ClientSettings | None = None,
        headers: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        import httpx  # lazily: opening a local model never imports the network stack

        self._httpx = httpx
        self.base_url = base_url.rstrip("/")
        self.endpoint = endpoint_label(self.base_url)
        self.settings = settings or ClientSettings()
        self._secret = api_key
        self._sleep, self._rng = sleep, rng
        self._slots = endpoint_slots(self.base_url, self.settings.max_concurrency)
        s = self.settings
        default_headers = dict(headers or {})
        if api_key is not None:
            default_headers["Authorization"] = f"Bearer {api_key.reveal()}"
        verify: bool | ssl.SSLContext = True
        if s.ca_bundle:
            verify = ssl.create_default_context(cafile=s.ca_bundle)
        self._client: httpx.Client | None = httpx.Client(
            base_url=self.base_url,
            headers=default_headers,
            timeout=httpx.Timeout(
                connect=s.connect_timeout, read=s.read_timeout, write=s.read_timeout, pool=s.queue_timeout
            ),
            limits=httpx.Limits(
                max_connections=s.max_concurrency, max_keepalive_connections=s.max_concurrency
            ),
            verify=verify,
            follow_redirects=False,  # a redirect would resend the key to wherever it points
        )

    def __repr__(self) -> str:
        return f"HttpClient({self.endpoint!r}, key={'set' if self._secret else 'none'})"

    def redact(self, text: str) -> str:
        """`text` with the key (if any) masked: servers sometimes echo what they were sent."""
        if self._secret is not None and self._secret.reveal():
            text = text.replace(self._secret.reveal(), "***")
        return text

    def get_json(self, path: str, *, error: ErrorFactory = load_error) -> Any:
        """GET path and parse its JSON body. Raises `error(message)` naming the endpoint."""
        response = self.request("GET", path, error=error, headers={"Accept": "application/json"})
        return self.json_body(response, path, error=error)

    def json_body(self, response: httpx.Response, path: str, *, error: ErrorFactory = PredictError) -> Any:
        """A response's JSON, or `error` naming the endpoint when the body is not JSON."""
        try:
            return response.json()
        except (ValueError, UnicodeDecodeError):
            raise error(
                f"{self.endpoint}{path}: the server answered with something that is not JSON: "
                f"{self.redact(_snippet(response.content))}"
            ) from None

    def request(
        self,
        method: str,
        path: str,
        *,
        error: ErrorFactory = PredictError,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send with retries; returns a 2xx response (body read). Anything else raises `error(message)`
        with the endpoint, the status and the server's own message."""
        last = ""
        for attempt in range(self.settings.retries + 1):
            response, problem, retry_after = self._attempt(method, path, headers, kwargs, error)
            if response is not None:
                return response
            last = problem
            if attempt == self.settings.retries:
                break
            if retry_after is not None and retry_after > self.settings.max_retry_after:
                raise error(
                    f"{self.endpoint}{path}: {problem} (server asks to retry after {retry_after:g} s)"
                )
            delay = backoff_delay(attempt, self.settings, retry_after, self._rng)
            log.info("%s%s: %s; retry %d in %.2f s", self.endpoint, path, problem, attempt + 1, delay)
            self._sleep(delay)
        tries = self.settings.retries + 1
        raise error(f"{self.endpoint}{path}: {last} (gave up after {tries} attempt{'s' * (tries > 1)})")

    def _attempt(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str] | None,
        kwargs: Mapping[str, Any],
        error: ErrorFactory,
    ) -> tuple[httpx.Response | None, str, float | None]:
        """One try: (response, "", None) on 2xx; (None, problem, retry_after) when worth retrying."""
        client = self._client
        if client is None:
            raise error(f"{self.endpoint}: the client is closed")
        httpx = self._httpx
        if not self._slots.acquire(timeout=self.settings.queue_timeout):
            raise error(
                f"{self.endpoint}{path}: no free request slot after {self.settings.queue_timeout:g} s"
            )
        try:
            response = client.send(client.build_request(method, path, headers=headers, **kwargs), stream=True)
            try:
                self._read_capped(response, path, error)
            finally:
                response.close()
        except httpx.ReadTimeout:
            limit = self.settings.read_timeout
            raise error(f"{self.endpoint}{path}: no answer within the read timeout of {limit:g} s") from None
        except (
            httpx.ConnectError,
            httpx.ConnectTimeout,
            httpx.RemoteProtocolError,
            httpx.ReadError,
            httpx.WriteError,
        ) as exc:
            # Never connected, or the connection dropped: safe to resend (see the module docstring).
            return None, f"connection problem: {self.redact(str(exc)) or type(exc).__name__}", None
        except httpx.HTTPError as exc:
            raise error(f"{self.endpoint}{path}: {type(exc).__name__}: {self.redact(str(exc))}") from None
        finally:
            self._slots.release()
        if response.is_success:
            return response, "", None
        problem = f"HTTP {response.status_code}: {self.redact(server_message(response))}"
        if response.status_code in RETRY_STATUSES:
            return None, problem, parse_retry_after(response.headers.get("Retry-After"))
        raise error(f"{self.endpoint}{path}: {problem}")

    def _read_capped(self, response: httpx.Response, path: str, error: ErrorFactory) -> None:
        """Read the body into `response` (as response.read() would), refusing it past max_response_bytes
        before it is all in memory: an endless or oversized answer costs at most the cap."""
        limit = self.settings.max_response_bytes
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit and "Content-Encoding" not in response.headers:
            raise error(
                f"{self.endpoint}{path}: the answer declares {int(declared):,} bytes; the limit is "
                f"{limit:,} (options.max_response_bytes)"
            )
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():  # decoded: a gzip bomb is capped at its inflated size
            size += len(chunk)
            if size > limit:
                raise error(
                    f"{self.endpoint}{path}: the answer is longer than {limit:,} bytes "
                    "(options.max_response_bytes); refused"
                )
            chunks.append(chunk)
        # What httpx's own Response.read() stores; .content/.json() then work as usual.
        response._content = b"".join(chunks)

    def close(self) -> None:
        """Close pooled connections. Idempotent."""
        client, self._client = self._client, None
        if client is not None:
            client.close()


def server_message(response: httpx.Response) -> str:
    """The server's explanation: JSON "error" and "detail" (our server, FastAPI) or "message", else the
    text, truncated."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        parts = [
            value if isinstance(value, str) else json.dumps(value)
            for key in ("error", "detail", "message")
            if (value := body.get(key)) is not None
        ]
        if parts:
            return _truncate(": ".join(parts))
    text = _snippet(response.content)
    return text or (response.reason_phrase or "no message")


def _snippet(content: bytes) -> str:
    return _truncate(content[: _MESSAGE_LIMIT * 4].decode("utf-8", "replace").strip())


def _truncate(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"


# --- shared by the remote backends ----------------------------------------------------------------------


def remote_digest(url: str, document: Any) -> str:
    """sha256 of the endpoint URL and a JSON document describing the served model (canonical form)."""
    payload = endpoint_label(url) + "\n" + json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()

"""The part every remote Segmenter shares (SegLens REST, Open Inference Protocol v2).

RemoteSegmenter opens the HttpClient from the manifest's options (key, timeouts, retries), closes it
again when loading the model's description fails, and runs predict(): check the image, encode it, send
one POST, decode the answer, and split the time into local encode/decode, the server's own time (when it
reports one) and the rest of the round trip. Subclasses say how to load, encode and decode.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from app.inference.backends.http_client import (
    ClientSettings,
    HttpClient,
    RemoteTimings,
    resolve_api_key,
    split_round_trip,
)
from app.inference.base import ModelInfo, Prediction
from app.inference.manifest import ModelManifest
from app.inference.preprocess import check_image

if TYPE_CHECKING:
    import httpx


class RemoteSegmenter:
    """Base of the remote Segmenters: one HttpClient per model, predict() as one POST. Thread-safe as
    long as the subclass's _encode/_decode are (the client is)."""

    _info: ModelInfo

    def __init__(
        self,
        url: str,
        manifest: ModelManifest | None,
        *,
        client: HttpClient | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        options: Mapping[str, Any] = manifest.options if manifest is not None else {}
        self._url = url.rstrip("/")
        self._client = client or HttpClient(
            self._url,
            api_key=resolve_api_key(options, self._url),
            settings=ClientSettings.from_options(options, self._url),
            headers=headers,
        )
        try:
            self._load(manifest, options)
        except BaseException:
            self._client.close()
            raise

    @property
    def info(self) -> ModelInfo:
        """Name, classes, input spec and digest (of the URL and the server's model description)."""
        return self._info

    def predict(self, image: np.ndarray) -> Prediction:
        """Labels (HxW uint8) for an HxWx3 RGB uint8 image, inferred by the server."""
        check_image(image)
        start = time.perf_counter()
        path, request = self._encode(image)
        sent = time.perf_counter()
        response = self._client.request("POST", path, **request)
        received = time.perf_counter()
        labels, server_ms = self._decode(response, (image.shape[0], image.shape[1]))
        done = time.perf_counter()
        inference, network, reported = split_round_trip((received - sent) * 1e3, server_ms)
        return Prediction(
            labels=labels,
            timings=RemoteTimings(
                preprocess_ms=(sent - start) * 1e3,
                inference_ms=inference,
                postprocess_ms=(done - received) * 1e3,
                network_ms=network,
                server_reported=reported,
            ),
        )

    def close(self) -> None:
        """Close the connection pool. Idempotent."""
        self._client.close()

    # --- what a subclass says ---------------------------------------------------------------------

    def _load(self, manifest: ModelManifest | None, options: Mapping[str, Any]) -> None:
        """Ask the server about the model and set self._info (raise load_error when it cannot be used)."""
        raise NotImplementedError

    def _encode(self, image: np.ndarray) -> tuple[str, dict[str, Any]]:
        """The request for a checked image: (path to POST to, HttpClient.request keyword arguments)."""
        raise NotImplementedError

    def _decode(self, response: httpx.Response, size: tuple[int, int]) -> tuple[np.ndarray, float | None]:
        """The labels (HxW = `size`) from a 2xx answer, and the server's own time in ms if it says."""
        raise NotImplementedError

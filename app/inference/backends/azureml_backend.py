"""An Azure ML managed online endpoint running a scoring script (kind "azureml"), as a Segmenter.

Azure ML endpoints run azureml-inference-server-http: `POST /score` hands the raw JSON body to the
script's run() and sends its return value back as JSON; `GET /` answers "Healthy". What goes in and out
is whatever the scoring script defines, so this is the generic HTTP adapter (http_backend) with the
endpoint's conventions filled in::

    name: unet (azure)
    kind: azureml
    url: https://my-endpoint.westeurope.inference.ml.azure.com
    scheme: categories
    options:
      api_key_env: AZUREML_KEY       # or keyring_service; sent as Bearer, never logged
      azureml_deployment: blue       # the azureml-model-deployment header (route to one deployment)
      request: {format: json, key: image}                 # the defaults
      response: {format: json_png, key: mask}             # the default; or json_indices, png
      encoding: indices

Every other http option (params, headers, time_key, colors, ...) applies as documented there. The
scoring URL may be given with or without its /score.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.inference.backends.http_backend import HttpSegmenter, parse_api
from app.inference.backends.http_client import load_error
from app.inference.manifest import ModelManifest


def load_azureml(target: Path | str, manifest: ModelManifest | None = None) -> HttpSegmenter:
    """Registry entry point: a manifest with kind "azureml" and the endpoint's url."""
    if manifest is None or not manifest.url:
        raise load_error(f"{target}: an Azure ML endpoint needs a manifest with a url")
    url = manifest.url.rstrip("/")
    path = "/score"
    if url.endswith("/score"):
        url = url[: -len("/score")]
    options: dict[str, Any] = dict(manifest.options)
    options.setdefault("path", path)
    options.setdefault("health", "/")
    options.setdefault("request", {"format": "json", "key": "image"})
    options.setdefault("response", {"format": "json_png", "key": "mask"})
    deployment = options.get("azureml_deployment")
    if deployment:
        options["headers"] = {
            **dict(options.get("headers") or {}),
            "azureml-model-deployment": str(deployment),
        }
    api = parse_api(options, url)
    return HttpSegmenter(url, manifest, api, backend="azureml")

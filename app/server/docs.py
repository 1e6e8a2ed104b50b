"""/docs (Swagger UI) and /redoc served from assets shipped with the package, not from a CDN: `seglens
serve` runs on machines without internet access, where FastAPI's default pages stay blank.

The assets come from the fastapi-offline wheel (a dependency of the `server` extra: Swagger UI's bundle
and CSS, ReDoc's standalone script, a favicon; ~2.8 MB), served read-only under /docs-assets/. Their pages
are FastAPI's own HTML pointed at those files; each is sent with a Content-Security-Policy allowing
scripts and styles from this server only (plus the page's one inline script, by hash).
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import re
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, Response

ASSETS_URL = "/docs-assets"
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
DOCS_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc", *(f"{ASSETS_URL}/{name}" for name in ASSETS))
"""Public paths (no API key): the API description and its viewer hold no data."""
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)


def assets_folder() -> Path | None:
    """The folder holding the shipped Swagger UI / ReDoc files, or None when fastapi-offline is missing."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "static"
    return folder if all((folder / name).is_file() for name in ASSETS) else None


def install_docs(app: FastAPI, title: str) -> None:
    """Add /docs, /docs/oauth2-redirect, /redoc and their assets to `app` (made with docs_url=None)."""
    folder = assets_folder()
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> Response:
        if folder is None:
            return _missing()
        page = get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - API documentation",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
        )
        return _with_csp(page)

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def oauth2_redirect() -> Response:
        return _with_csp(get_swagger_ui_oauth2_redirect_html())

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> Response:
        if folder is None:
            return _missing()
        page = get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} - API documentation",
            redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
        return _with_csp(page, workers=True)

    @app.get(ASSETS_URL + "/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        if folder is None or name not in ASSETS:  # a fixed list: no path from the request reaches the disk
            return PlainTextResponse("no such asset", status_code=404)
        return FileResponse(
            folder / name, media_type=ASSETS[name], headers={"Cache-Control": "max-age=86400"}
        )


def _with_csp(page: HTMLResponse, workers: bool = False) -> HTMLResponse:
    body = bytes(page.body).decode("utf-8")
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in _INLINE_SCRIPT.findall(body)
    )
    # Swagger UI and ReDoc set styles inline at run time: 'unsafe-inline' for styles only.
    policy = (
        f"default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; frame-ancestors 'none'"
        + ("; worker-src blob:" if workers else "")
    )
    return HTMLResponse(body, headers={"Content-Security-Policy": policy})


def _missing() -> Response:
    return PlainTextResponse(
        "the API documentation needs the fastapi-offline package (pip install 'seglens[server]'); "
        "the schema itself is at /openapi.json",
        status_code=503,
    )

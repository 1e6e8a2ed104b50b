"""GET /: one self-contained HTML page (no external scripts, styles or fonts) to try the server by hand.

The page is static; everything dynamic comes from the API with fetch(), so nothing from a request is
ever written into HTML. Its inline script and style are allowed by hash in a strict Content-Security-
Policy instead of 'unsafe-inline'.
"""

from __future__ import annotations

import base64
import hashlib

_STYLE = """
body { font: 15px system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; padding: 0 1rem; color: #222; }
fieldset { border: 1px solid #ccc; border-radius: 6px; margin-bottom: 1rem; }
label { margin-right: 1rem; }
#out img { max-width: 100%; border: 1px solid #ccc; }
#status { white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: 13px; }
.error { color: #b00020; }
"""

_SCRIPT = """
const $ = (id) => document.getElementById(id);
function headers() {
  const key = $("key").value.trim();
  return key ? { "X-API-Key": key } : {};
}
function show(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}
async function problem(response) {
  try { const body = await response.json(); return `${response.status} ${body.error}: ${body.detail ?? ""}`; }
  catch (e) { return `${response.status} ${response.statusText}`; }
}
async function refresh() {
  const response = await fetch("/health", { headers: headers() });
  if (!response.ok) { show(await problem(response), true); return; }
  const health = await response.json();
  const select = $("model");
  const options = health.models.map((name) => new Option(name, name, false, name === health.active));
  select.replaceChildren(...options);
  const info = await fetch("/info", { headers: headers() }).then((r) => r.json());
  show(`active model: ${info.name} (${info.backend}, ${info.classes.length} classes, ${info.scheme})`, false);
}
async function switchModel() {
  const name = $("model").value;
  const response = await fetch(`/switch/${encodeURIComponent(name)}`, { method: "POST", headers: headers() });
  if (!response.ok) { show(await problem(response), true); return; }
  await refresh();
}
async function run(event) {
  event.preventDefault();
  const file = $("file").files[0];
  if (!file) { show("choose an image first", true); return; }
  const form = new FormData();
  form.append("file", file);
  show("predicting…", false);
  const opacity = $("opacity").value;
  const response = await fetch(`/predict/visualize?opacity=${opacity}`, {
    method: "POST", body: form, headers: headers(),
  });
  if (!response.ok) { show(await problem(response), true); return; }
  const img = document.createElement("img");
  img.src = URL.createObjectURL(await response.blob());
  img.alt = "segmentation overlay";
  $("out").replaceChildren(img);
  show(`model ${response.headers.get("X-SegLens-Model")}`, false);
}
$("form").addEventListener("submit", run);
$("model").addEventListener("change", switchModel);
$("key").addEventListener("change", refresh);
refresh();
"""

_BODY = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>SegLens server</title>
<style>{style}</style>
</head>
<body>
<h1>SegLens server</h1>
<form id="form">
<fieldset>
<label>Model <select id="model"></select></label>
<label>API key <input id="key" type="password" autocomplete="off" placeholder="if required"></label>
</fieldset>
<fieldset>
<label>Image <input id="file" type="file" accept="image/*"></label>
<label>Opacity <input id="opacity" type="range" min="0" max="1" step="0.05" value="0.5"></label>
<button type="submit">Segment</button>
</fieldset>
</form>
<div id="status"></div>
<div id="out"></div>
<p><a href="/docs">API documentation</a> · <a href="/openapi.json">OpenAPI schema</a></p>
<script>{script}</script>
</body>
</html>
"""


def _csp_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


PAGE_HTML = _BODY.format(style=_STYLE, script=_SCRIPT)
"""The page served at GET /."""

PAGE_CSP = (
    "default-src 'none'; "
    f"script-src {_csp_hash(_SCRIPT)}; style-src {_csp_hash(_STYLE)}; "
    "img-src 'self' blob:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
"""The Content-Security-Policy header sent with the page."""

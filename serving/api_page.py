"""The service's own API page (`GET /`) and OpenAPI document (`GET /docs.json`).

BentoML's page loads Google Tag Manager and shows BentoML's name, version "None" and
contact links, and its document lists 200/400/404/500 whatever a route answers. Here:

- `openapi(base, model, version, token)`: BentoML's generated document (paths, request
  and response schemas) completed with the project's title and version, the served model,
  and every status each route answers with its schema (the safety middleware's 400, 401,
  413, 415 and 422, the service's 500 and 503), BentoML's contact and badges removed;
- `page(doc, model)`: an HTML page from local files only: the routes and their statuses
  rendered on the server (readable without JavaScript), then Swagger UI from the copy
  that ships in BentoML's package (no CDN), configured by a local script with the online
  validator off; a Content-Security-Policy keeps every script, style and request
  same-origin;
- `asset(name)`: the files the page may load (a fixed list: no path from the request
  reaches the file system); the page's own script and style are kept here as text, so
  they travel with the module into any wheel or Bento.
"""

from __future__ import annotations

import copy
import html
import json
import re
from pathlib import Path

from serving.schemas import ErrorResponse

PROJECT = "EIH responder service"

PAGE_JS = """\
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "./docs.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    defaultModelsExpandDepth: 0
  });
});
"""
PAGE_CSS = """\
body { margin: 0; font-family: sans-serif; color: #1b1b1b; }
header, main { max-width: 1100px; margin: 0 auto; padding: 0 20px; }
header h1 { font-size: 1.6em; margin: 0.8em 0 0.2em; }
table.routes { border-collapse: collapse; margin: 1em 0 2em; width: 100%; }
table.routes caption { text-align: left; font-weight: bold; padding-bottom: 0.4em; }
table.routes th, table.routes td { border-bottom: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left;
  vertical-align: top; }
"""
_SWAGGER = {"swagger-ui.css": "text/css", "swagger-ui-bundle.js": "application/javascript"}
_OWN = {"api-page.js": (PAGE_JS, "application/javascript"), "api-page.css": (PAGE_CSS, "text/css")}
ASSET_NAMES = frozenset(_SWAGGER) | frozenset(_OWN)
"""What the page may load from /api-page/."""

CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


def asset(name: str) -> tuple[Path | str, str] | None:
    """(file path or text, media type) of /api-page/NAME, or None for any other name."""
    if name in _OWN:
        return _OWN[name]
    if name in _SWAGGER:
        from bentoml._internal import server

        return Path(server.__file__).resolve().parent / "static_content" / name, _SWAGGER[name]
    return None


_ERR = "#/components/schemas/ErrorResponse"
_TEXTS = {
    200: "OK",
    400: "the body is not JSON, or the Content-Length header is invalid",
    401: "EIH_API_TOKEN is set and the bearer token is missing or wrong",
    413: "the body is larger than the limit (EIH_MAX_BODY_BYTES, 1 MiB by default)",
    415: "the content type is not application/json",
    422: 'the body is not {"records": [...]} with 1-1,000 records, a field is unknown or has the wrong type, or a '
         "record breaks a contract rule: the problems name the record index, the field and the rule, never the value",
    500: "scoring failed (the reason is in the server log, without values)",
    503: "no usable model is loaded yet (the reason is in the body and the server log)",
}
_GUARDED = (400, 401, 413)
"""What the safety middleware can answer on every route but the probes, before the route runs."""
PROBES = frozenset({"/livez", "/readyz", "/healthz"})
STATUSES: dict[tuple[str, str], tuple[int, ...]] = {
    ("post", "/predict"): (200, *_GUARDED, 415, 422, 500, 503),
    ("post", "/explain"): (200, *_GUARDED, 415, 422, 500, 503),
    ("post", "/recommend"): (200, *_GUARDED, 415, 422, 500, 503),  # the same middleware, its own gate
    ("get", "/metadata"): (200, *_GUARDED, 503),
    ("get", "/metrics"): (200, *_GUARDED),
    ("get", "/livez"): (200,),
    ("get", "/healthz"): (200,),
    ("get", "/readyz"): (200, 503),
}
"""Every status each route answers (serving/middleware.py, serving/service.py)."""


def _error_schemas() -> dict:
    schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    return {"ErrorResponse": schema, **defs}


def _responses(method: str, path: str, old: dict) -> dict:
    """The responses of one operation: the statuses of STATUSES; for a route not listed there,
    BentoML's own plus what the middleware answers in front of it."""
    old = {str(k): v for k, v in old.items()}  # BentoML's document keys statuses by int until it is JSON
    if (method, path) not in STATUSES:
        if path in PROBES:
            return old
        guarded = {str(s): _error(s) for s in _GUARDED if str(s) not in old}
        return dict(sorted({**old, **guarded}.items()))
    out = {}
    for status in STATUSES[(method, path)]:
        if status == 200:
            out["200"] = old.get("200") or {"description": "OK"}
        elif status == 503 and path == "/readyz":
            out["503"] = {"description": "not ready: no usable model is loaded yet"}
        else:
            out[str(status)] = _error(status)
    return out


def _error(status: int) -> dict:
    return {"description": _TEXTS[status], "content": {"application/json": {"schema": {"$ref": _ERR}}}}


def openapi(base: dict, model: dict | None, version: str, token: bool) -> dict:
    """BentoML's generated document `base`, completed (see the module docstring). `model` is
    the served model's name/version (None while none is loaded); `token`: EIH_API_TOKEN is set."""
    doc = copy.deepcopy(base)
    doc["info"] = {"title": f"{PROJECT} API", "version": version, "description": _description(model)}
    for path, ops in doc.get("paths", {}).items():
        for method, op in ops.items():
            op["responses"] = _responses(method, path, op.get("responses", {}))
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    text = json.dumps(doc["paths"])
    for bentoml_own in ("InvalidArgument", "NotFound", "InternalServerError"):
        if f'"#/components/schemas/{bentoml_own}"' not in text:
            schemas.pop(bentoml_own, None)
    schemas.update(_error_schemas())
    if token:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
        for path in ("/livez", "/readyz", "/healthz"):
            for op in doc.get("paths", {}).get(path, {}).values():
                op["security"] = []
    return doc


def model_line(model: dict | None) -> str:
    """"model eih-responder version 3", or that no model is loaded yet."""
    if not model:
        return "no model loaded yet"
    return f"model {model.get('name') or 'from a URI'} version {model.get('version') or '?'}"


def _description(model: dict | None) -> str:
    served = (f"Serving {model_line(model)}." if model else
              "No model is loaded yet (GET /readyz turns 200 when one is).")
    return (f"{served} Probabilities of hypoalgesia, no change and hyperalgesia after one "
            "exercise bout, with the exact reasons (TreeSHAP). Send `{\"records\": [record, ...]}` (1 to 1,000 "
            "records of data contract 1.0) to POST /predict or POST /explain; GET /metadata describes the served "
            "model. Errors never quote a submitted value.")


def _first_sentence(text: str) -> str:
    plain = " ".join(re.sub(r"<[^>]*>", "", text).split())
    head, dot, _ = plain.partition(". ")
    return head + ("." if dot else "")


def page(doc: dict, model: dict | None) -> str:
    """The HTML of GET / for the completed document `doc`."""
    title = f"{doc['info']['title']} · {model_line(model)} · eih-service {doc['info']['version']}"
    rows = []
    for path, ops in doc.get("paths", {}).items():
        for method, op in ops.items():
            codes = ", ".join(sorted(op.get("responses", {})))
            summary = _first_sentence(op.get("summary") or op.get("description") or "")
            rows.append(f"<tr><td><code>{html.escape(method.upper())} {html.escape(path)}</code></td>"
                        f"<td>{html.escape(codes)}</td><td>{html.escape(summary)}</td></tr>")
    e = html.escape
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}</title>
<link rel="stylesheet" href="./api-page/swagger-ui.css">
<link rel="stylesheet" href="./api-page/api-page.css">
</head>
<body>
<header>
<h1>{e(doc['info']['title'])}</h1>
<p>{e(model_line(model))} · eih-service {e(doc['info']['version'])} ·
<a href="./docs.json">OpenAPI document</a> · <a href="./metadata">model metadata</a></p>
</header>
<main>
<table class="routes"><caption>Routes and the statuses they answer</caption>
<thead><tr><th scope="col">route</th><th scope="col">statuses</th><th scope="col">what it does</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
<div id="swagger-ui"></div>
</main>
<script src="./api-page/swagger-ui-bundle.js"></script>
<script src="./api-page/api-page.js"></script>
</body>
</html>
"""

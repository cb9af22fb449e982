"""The MLflow UI of `eih ui`, without MLflow's usage-data banner.

MLflow 3.17's home page shows "MLflow collects usage data to improve the product ..."
whatever the server's telemetry setting: the banner (component
`mlflow.home.telemetry-alert`) is hidden only by the browser's localStorage key
`mlflow.telemetry.info.alert.dismissed_v1`, which its close button sets. No environment
variable or `mlflow server` flag hides it; MLFLOW_DISABLE_TELEMETRY / DO_NOT_TRACK (set
by every eih command) only stop the collection itself (GET /ajax-api/3.0/mlflow/ui-telemetry
then answers `disable_ui_telemetry: true`).

So `eih ui` runs `mlflow server` with its own options, but has uvicorn serve `app` below:
MLflow's ASGI app behind a thin layer that adds one same-origin script to the UI's HTML
page. The script, run before MLflow's bundle, records the banner as read and the UI's
telemetry preference as off (the collection is off anyway). Everything else passes
through unchanged.

`python -m eih.mlflow_ui ARGS` runs `mlflow server ARGS` that way.
"""

from __future__ import annotations

import sys
from typing import Any

MLFLOW_APP = "mlflow.server.fastapi_app:app"
THIS_APP = "eih.mlflow_ui:app"
SCRIPT_NAME = "eih-ui-defaults.js"
DISMISSED_KEY = "mlflow.telemetry.info.alert.dismissed_v1"
TELEMETRY_PREF_KEY = "mlflow.settings.telemetry.enabled_v1"
SCRIPT = (
    "// eih ui: MLflow's usage-data notice marked as read; telemetry is off on this server\n"
    "try {\n"
    f"  window.localStorage.setItem({DISMISSED_KEY!r}, 'true');\n"
    f"  window.localStorage.setItem({TELEMETRY_PREF_KEY!r}, 'false');\n"
    "} catch (e) { /* storage disabled: the notice shows, nothing else changes */ }\n"
).encode()
TAG = f'<script src="{SCRIPT_NAME}"></script>'.encode()


class BannerOff:
    """ASGI layer in front of MLflow's app: serves SCRIPT_NAME and adds it to HTML pages."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        if scope.get("path", "").endswith("/" + SCRIPT_NAME):
            await _send(send, 200, SCRIPT, b"application/javascript", head=scope["method"] == "HEAD")
            return
        await self.app(scope, receive, _Injector(send))


class _Injector:
    """A `send` that holds back an HTML 200 response until its body is complete, then adds TAG
    after <head>; any other response passes straight through."""

    def __init__(self, send) -> None:
        self.send = send
        self.start: dict | None = None
        self.chunks: list[bytes] = []

    async def __call__(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            headers = dict((k.lower(), v) for k, v in message.get("headers", []))
            is_html = headers.get(b"content-type", b"").startswith(b"text/html")
            if message["status"] == 200 and is_html and b"content-encoding" not in headers:
                self.start = message
                return
        elif message["type"] == "http.response.body" and self.start is not None:
            self.chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = inject(b"".join(self.chunks))
            headers = [(k, v) for k, v in self.start.get("headers", []) if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await self.send({**self.start, "headers": headers})
            await self.send({"type": "http.response.body", "body": body})
            return
        await self.send(message)


def inject(page: bytes) -> bytes:
    """The HTML `page` with TAG right after <head> (before MLflow's deferred bundle)."""
    if TAG in page:
        return page
    at = page.find(b"<head>")
    return page[: at + 6] + TAG + page[at + 6 :] if at >= 0 else TAG + page


async def _send(send, status: int, body: bytes, media: bytes, head: bool = False) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", media), (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-cache")]})
    await send({"type": "http.response.body", "body": b"" if head else body})


def __getattr__(name: str) -> Any:
    if name == "app":  # built on first use, in the uvicorn worker only
        from mlflow.server.fastapi_app import app as mlflow_app

        globals()["app"] = wrapped = BannerOff(mlflow_app)
        return wrapped
    raise AttributeError(name)


def main(argv: list[str]) -> None:
    """`mlflow server ARGV`, with uvicorn serving THIS_APP instead of MLflow's own app.

    When a later MLflow builds its command differently the UI still starts, banner and all."""
    import mlflow.server as mlflow_server
    from mlflow.cli import cli

    build = getattr(mlflow_server, "_build_uvicorn_command", None)
    if build is not None:
        def ours(uvicorn_opts, host, port, workers, app_name, *args, **kwargs):
            return build(uvicorn_opts, host, port, workers, THIS_APP if app_name == MLFLOW_APP else app_name,
                         *args, **kwargs)

        mlflow_server._build_uvicorn_command = ours
    else:  # pragma: no cover - depends on the MLflow release
        print("eih ui: this MLflow release starts its server differently; its usage-data notice may show",
              file=sys.stderr)
    cli.main(args=["server", *argv], prog_name="mlflow")


if __name__ == "__main__":  # pragma: no cover - run by `eih ui`
    main(sys.argv[1:])

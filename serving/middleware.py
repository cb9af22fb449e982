"""ASGI middleware of the HTTP service: safe by default, in front of every route.

`SafetyMiddleware` (added with `Service.add_asgi_middleware`, so it also covers mounted
apps) does, in order:

1. Health probes (`/livez`, `/readyz`, `/healthz`) pass straight through: no token, no body.
2. Bearer token: when a token is configured (`EIH_API_TOKEN`), every other route needs
   `Authorization: Bearer <token>`, compared in constant time; 401 otherwise.
3. Body size: a declared `Content-Length` above the limit is refused with 413 before any
   byte is read; a streamed body is read chunk by chunk and refused with 413 as soon as it
   passes the limit (never read whole).
4. For the model endpoints (POST /predict, POST /explain): the content type must be
   `application/json` (415 otherwise), and the body goes through `serving.gate`
   (400 malformed JSON, 422 schema or contract rule, naming record index, field and rule).
   The validated records travel to the endpoint in `scope["state"]`, so BentoML's own
   parsing can never fail on them (its failure path logs the pydantic error, input
   included) and nothing is validated twice.

It writes no log line with a header, a body or a value; rejections are counted by the
access log (path and status only).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread

from serving.gate import GateError, validate_body

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]

PROBE_PATHS = frozenset({"/livez", "/readyz", "/healthz"})
MODEL_PATHS = frozenset({"/predict", "/explain"})
DEFAULT_MAX_BODY_BYTES = 1_048_576
STATE_KEY = "eih.records"
OFFLOAD_BYTES = 64 * 1024
"""Bodies larger than this are validated in a worker thread, off the event loop."""


def _digest(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


class SafetyMiddleware:
    def __init__(
        self,
        app,
        *,
        token: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        probe_paths: frozenset[str] = PROBE_PATHS,
        model_paths: frozenset[str] = MODEL_PATHS,
        gate: Callable[[bytes], list[dict]] = validate_body,
    ) -> None:
        self.app = app
        self._token_digest = _digest(token.encode()) if token else None
        self.max_body_bytes = int(max_body_bytes)
        self.probe_paths = probe_paths
        self.model_paths = model_paths
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: C901 - one flat list of guards
        typ = scope["type"]
        if typ not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path in self.probe_paths:
            await self.app(scope, receive, send)
            return
        if self._token_digest is not None and not self._authorized(scope):
            if typ == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await _respond(send, 401, {"error": "missing or invalid bearer token"},
                           extra=[(b"www-authenticate", b'Bearer realm="eih"')], close=True)
            return
        if typ == "websocket":
            await self.app(scope, receive, send)
            return

        # ---- the body: refused early when too large, never read whole then ------------------
        declared = _header(scope, b"content-length")
        if declared is not None:
            try:
                n = int(declared)
                if n < 0:
                    raise ValueError
            except ValueError:
                await _respond(send, 400, {"error": "invalid Content-Length header"}, close=True)
                return
            if n > self.max_body_bytes:
                await _respond(send, 413, self._too_large(), close=True)
                return
        is_model_call = path in self.model_paths and scope.get("method") == "POST"
        if is_model_call:
            media = (_header(scope, b"content-type") or b"").split(b";")[0].strip().lower()
            if media != b"application/json":
                await _respond(send, 415, {"error": "unsupported content type: send the body as application/json"},
                               close=True)
                return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await _respond(send, 413, self._too_large(), close=True)
                return
            if chunk:
                chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)

        if is_model_call:
            try:
                if len(body) > OFFLOAD_BYTES:
                    records = await anyio.to_thread.run_sync(self.gate, body)
                else:
                    records = self.gate(body)
            except GateError as exc:
                await _respond(send, exc.status, exc.body())
                return
            scope.setdefault("state", {})[STATE_KEY] = records

        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _authorized(self, scope: Scope) -> bool:
        scheme, _, credential = (_header(scope, b"authorization") or b"").strip().partition(b" ")
        # compare fixed-length digests: constant time whatever the length of the input
        same = hmac.compare_digest(_digest(credential.strip()), self._token_digest)
        return same and scheme.lower() == b"bearer"

    def _too_large(self) -> dict:
        return {"error": f"request body too large: the limit is {self.max_body_bytes} bytes "
                         f"(send at most 1,000 records per request)"}


def _header(scope: Scope, name: bytes) -> bytes | None:
    for k, v in scope.get("headers") or ():
        if k.lower() == name:
            return v
    return None


async def _respond(send: Send, status: int, payload: dict, extra: list[tuple[bytes, bytes]] | None = None,
                   close: bool = False) -> None:
    """A JSON answer; `close` when the request body was not read (the connection cannot be reused)."""
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})


__all__ = ["DEFAULT_MAX_BODY_BYTES", "MODEL_PATHS", "PROBE_PATHS", "STATE_KEY", "SafetyMiddleware"]

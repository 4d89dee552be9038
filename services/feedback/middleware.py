"""Pure ASGI middleware (no per-request task or copy, unlike Starlette's BaseHTTPMiddleware):
request metrics by route template, and the request body size limit."""

from __future__ import annotations

import time
from typing import Any

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.feedback.metrics import UNMATCHED_ROUTE, FeedbackMetrics

# Any token is a method to an HTTP server: others are counted as "other" (bounded series).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


class RequestMetrics:
    """``ahunt_feedback_requests_total{route,method,status}`` and
    ``ahunt_feedback_request_seconds{route}``; ``route`` is the matched path template (the router
    writes it into the scope), so ids in paths never become label values."""

    def __init__(self, app: ASGIApp, metrics: FeedbackMetrics) -> None:
        self.app, self.metrics = app, metrics
        # Labelled children, looked up once: ``labels()`` costs a lock and a tuple per call.
        self._counters: dict[tuple[str, str, str], Any] = {}
        self._histograms: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        code = 500  # unless a response starts: an exception escaping the app becomes a 500

        async def send_and_note(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE
            method = scope["method"] if scope["method"] in METHODS else "other"
            key = (route, method, str(code))
            counter = self._counters.get(key)
            if counter is None:
                counter = self._counters[key] = self.metrics.requests.labels(*key)
            histogram = self._histograms.get(route)
            if histogram is None:
                histogram = self._histograms[route] = self.metrics.request_seconds.labels(route)
            counter.inc()
            histogram.observe(time.perf_counter() - started)


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413: at once when ``Content-Length`` says
    so, otherwise as soon as the streamed (chunked) body passes the limit. The check runs when
    the route reads its body, so the 413 is counted under the route's template."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = 0
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = int(value) if value.isdigit() else 0
        limit = self.max_bytes
        seen = 0

        def too_large() -> HTTPException:
            return HTTPException(413, f"request body over {limit} bytes")

        async def limited_receive() -> Message:
            nonlocal seen
            if declared > limit:
                raise too_large()
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise too_large()
            return message

        await self.app(scope, limited_receive, send)

"""Methods as RFC 9110 has them: HEAD wherever GET is, and a 405's `Allow` naming every
method of the resource.

FastAPI routes each (path, method) on its own, so a 405 names only the methods of the
route that matched the path first (`PUT /v1/domains`: `Allow: GET`, though POST creates
one), and a route declared for GET refuses HEAD. `HeadAsGet` answers HEAD as the GET it
stands for, without the body; `allowed_methods` asks the router which methods a path takes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.routing import BaseRoute, Match

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")  # every method a route of the API may declare


def allowed_methods(routes: list[BaseRoute], scope: Scope) -> list[str]:
    """The methods the routes take at `scope`'s path (HEAD with GET: `HeadAsGet`)."""
    allowed = []
    for method in METHODS:
        # A fresh scope: matching may note the route it tries in the scope it is given.
        probe = {"type": "http", "method": method, "path": scope["path"], "root_path": scope.get("root_path", "")}
        if any(route.matches(probe)[0] is Match.FULL for route in routes):
            allowed.append(method)
    if "GET" in allowed:
        allowed.insert(1, "HEAD")
    return allowed


class HeadAsGet:
    """Answers HEAD as GET with the same status and headers (Content-Length included, as
    RFC 9110 allows) and no body."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def bodiless(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        # A copy: the server keeps its own scope saying HEAD (uvicorn then sends no body).
        as_get = {**scope, "method": "GET"}
        try:
            await self.app(as_get, receive, bodiless)
        finally:
            if "route" in as_get:  # what the request metrics label it by
                scope["route"] = as_get["route"]

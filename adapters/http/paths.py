"""Keys with a slash in a path segment: `pol%2Fx` reaches the policy named `pol/x`.

Names and access keys may hold `/` (they are free text of visible characters). A client
sends it as `%2F`, but the server hands routing the decoded path, where that `/` splits
the segment and no route matches: such an entity was stored and never reachable again
over HTTP. `EncodedSlashes` routes on the raw path instead (a path with any `%` escape,
each segment decoded once), with each encoded slash turned into a private-use character
no name may hold (`domain.parsers` refuses the whole category), and `with_slashes` turns
it back into `/` in the key parameters.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final
from urllib.parse import unquote

SLASH: Final = "\ue000"  # stands for a `/` inside one segment while the path is routed

Scope = MutableMapping[str, Any]
App = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


def with_slashes(value: str) -> str:
    """A key parameter's value with the slashes its segment encoded."""
    return value.replace(SLASH, "/")


class EncodedSlashes:
    """Routes a path whose raw form encodes a slash (`%2F`) segment by segment."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]], send: Any) -> None:
        raw = scope.get("raw_path") if scope["type"] == "http" and not scope.get("root_path") else None
        if raw and b"%" in raw:  # decoded once, here, from what the client sent
            segments = raw.decode("ascii", "replace").split("/")
            scope = {**scope, "path": "/".join(unquote(s).replace("/", SLASH) for s in segments)}
        await self.app(scope, receive, send)

"""The HTTP API (issue 13): `create_app(url)` is the ASGI app; `ledger serve` runs it."""

from adapters.http.app import create_app

__all__ = ["create_app"]

"""The HTTP API (issue 13): `create_app(url)` is the ASGI app; `ledger serve` runs it.

The app is imported when first asked for, so the composition root can use this package's
idempotency table (cleared on erasures) without importing the app, which imports it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from adapters.bootstrap import Ledger


def create_app(url: str | None = None, *, ledger: Ledger | None = None, timezone: str | None = None) -> FastAPI:
    """The API over the ledger at `url` (see `adapters.http.app.create_app`)."""
    from adapters.http.app import create_app as build

    return build(url, ledger=ledger, timezone=timezone)


__all__ = ["create_app"]

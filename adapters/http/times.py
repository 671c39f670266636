"""The API's JSON response: every time in the one form `adapters.json_times` writes."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from adapters.json_times import utc_z


class LedgerJSONResponse(JSONResponse):
    """The API's JSON response: times in their one form."""

    def render(self, content: Any) -> bytes:
        return super().render(utc_z(content))

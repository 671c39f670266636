from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapters.bootstrap import Ledger
from tests.adapters.http.api import Api, api_over


@pytest.fixture
def api(ledger: Ledger) -> Iterator[Api]:
    """The API over a fresh ledger, on SQLite and on PostgreSQL."""
    with api_over(ledger) as opened:
        yield opened

"""The CLI tests' ledger: a SQLite file per test (the store itself is tested on both backends)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'l.db'}"

"""The CLI tests' ledger: a SQLite file per test (the store itself is tested on both backends)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from adapters.bootstrap import open_ledger


@pytest.fixture(scope="session")
def made_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new ledger's files, made once: commands that only read refuse a path with no
    ledger, so each test starts from a copy of one that exists, as after a first write."""
    folder = tmp_path_factory.mktemp("made-ledger")
    open_ledger(f"sqlite:///{folder / 'l.db'}").close()
    return folder


@pytest.fixture
def db(tmp_path: Path, made_ledger: Path) -> str:
    for file in made_ledger.iterdir():
        shutil.copy2(file, tmp_path / file.name)
    return f"sqlite:///{tmp_path / 'l.db'}"

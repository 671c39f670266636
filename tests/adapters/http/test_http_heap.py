"""`ledger serve` settles its heap once the ledger is open (adapters/http/app.py
`_settle_heap`); an app embedded in another process leaves the collector alone."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from adapters.http.app import GC_YOUNG_THRESHOLD, create_app


@pytest.fixture
def collector() -> Iterator[None]:
    """The test process's collector as it was, whatever the test did to it."""
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_a_server_process_freezes_its_startup_heap(collector: None, ledger_url: str) -> None:
    gc.unfreeze()
    with TestClient(create_app(ledger_url, server_process=True)) as client:
        assert client.get("/healthz").status_code == 200
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] >= GC_YOUNG_THRESHOLD


def test_an_embedded_app_leaves_the_collector_alone(collector: None, ledger_url: str) -> None:
    gc.unfreeze()
    before = gc.get_threshold()
    with TestClient(create_app(ledger_url)) as client:
        assert client.get("/healthz").status_code == 200
        assert gc.get_freeze_count() == 0 and gc.get_threshold() == before

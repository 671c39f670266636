"""The event store: configured from one URL, append-only in the database, hash-chained."""

from adapters.store.application import LedgerApplication
from adapters.store.config import StoreConfig, parse_url

__all__ = ["LedgerApplication", "StoreConfig", "parse_url"]

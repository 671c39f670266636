"""A PostgreSQL ledger's persistence module: the library's, failing at once when the server
does not answer at all.

The library retries every read and append ten times on an `OperationalError`, and a
connection the pool cannot get is one after its timeout (5 s): with the server gone, a
command took 20 s and a query 50 s to fail. When the pool times out, one direct connection
now tells a busy pool (the wait is the library's, retried as before) from a server that
does not answer (`ServerUnreachable`, which the library does not retry).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from eventsourcing.persistence import OperationalError
from eventsourcing.postgres import PostgresDatastore, PostgresFactory
from eventsourcing.utils import Environment, EnvType
from psycopg_pool import PoolClosed, PoolTimeout

from adapters.store.config import ServerUnreachable, StoreClosed
from projections.database import iso_dates


class LedgerPostgresDatastore(PostgresDatastore):
    @contextmanager
    def get_connection(self) -> Iterator[Any]:
        try:
            with super().get_connection() as conn:
                iso_dates(conn)  # the subject keys' created_at is read through this pool
                yield conn
        except OperationalError as exc:
            if isinstance(exc.__cause__, PoolClosed):
                raise StoreClosed from exc
            if isinstance(exc.__cause__, PoolTimeout):
                problem = self._unreachable()
                if problem is not None:
                    raise ServerUnreachable(f"the PostgreSQL server does not answer: {problem}") from exc
            raise

    def _unreachable(self) -> str | None:
        """Why a new connection cannot be made, or None when one can (the pool was busy)."""
        timeout = max(1, round(self.pool.timeout))
        kwargs = self.pool.kwargs  # the pool may take them from a function
        params = {**(kwargs() if callable(kwargs) else kwargs or {}), "connect_timeout": timeout}
        try:
            psycopg.connect(**params).close()
        except psycopg.Error as exc:
            return " ".join(str(exc).split())
        return None


class LedgerPostgresFactory(PostgresFactory):
    """`PERSISTENCE_MODULE` of a PostgreSQL ledger: the library's factory over the datastore above."""

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        # The library's datastore as it is built (its pool not opened yet), with the
        # connection wait above: the class carries no state of its own.
        self.datastore.__class__ = LedgerPostgresDatastore

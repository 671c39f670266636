"""Responses to requests sent with an `Idempotency-Key`, kept so a retry gets the first one.

They are copies of what the ledger answered, so an erasure clears them all
(`clear_after_erasures`): a response may hold the erased subject's values in clear. That
clearing runs in the erasing process after its commit, so it is lost if that process dies
first: each response also keeps the store's head from before its request ran, and one an
erasing event follows is never served, and is dropped with every other when a server
starts or a retry finds it (`sweep`).

Whether a request was applied is the event store's to say (`domain.idempotency`: its
record is appended with the request's own events); this table only keeps what was
answered, written just after the commit. A retry whose first response is not here yet
waits briefly for it (the first request may be finishing); one lost in a crash between
the commit and this write is answered `idempotency_already_applied` (409), never by
applying the request again. Rows may be deleted (they are copies): `prune` drops old ones.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa

from domain.errors import IdempotencyKeyReused, IdempotentRequestApplied, InvalidAPIParameters, StoreUnavailable
from domain.idempotency import IdempotentRequest, request_key
from domain.personal import ERASED
from projections.database import ReadModelDatabase

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
# An operation's `openapi_extra` member saying that it refuses the header (token issue):
# read and removed when the document is built, so the header is not offered there.
REFUSED = "x-idempotency-key-refused"
WAIT_FOR_FIRST = 2.0  # seconds a retry waits for its twin's response to be stored
KEEP = timedelta(days=1)
PRUNE_EVERY = 1000  # stored responses between two prunes

metadata = sa.MetaData()
responses = sa.Table(
    "http_idempotent_responses",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("headers", sa.JSON, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False, index=True),
    # The store's head before the request ran: an erasing event after it may be in the response.
    sa.Column("position", sa.BigInteger, nullable=False),
)


@dataclass(frozen=True)
class StoredResponse:
    status: int
    headers: dict[str, str]
    body: str


def parse_key(raw: str) -> str:
    key = raw.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidAPIParameters(f"must be 1 to {MAX_KEY_LENGTH} printable characters", field=HEADER)
    return key


def request_hash(method: str, path: str, body: Any, query: Iterable[tuple[str, str]] = ()) -> str:
    """What makes two requests the same: method, path, the query's parameters in any order
    and the body's JSON value (so a retry may re-serialise it with other spacing or key
    order)."""
    # default=str: a number too large for a float is parsed as a Decimal (`json_float`).
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False, default=str)
    # Only a request with a query hashes one: the hashes of requests without (stored
    # before the query counted) stay as they were.
    target = f"{path}?{urlencode(sorted(query))}" if query else path
    return hashlib.sha256(f"{method}\n{target}\n{canonical}".encode()).hexdigest()


class IdempotentResponses:
    def __init__(self, db: ReadModelDatabase, erased_after: Callable[[int], bool]) -> None:
        """`erased_after(position)`: whether the store holds an erasing event after it."""
        self._db = db
        self._erased_after = erased_after
        self._stored = 0
        try:
            _create_table(db)
        except StoreUnavailable:
            # Another process starting beside this one created it between check and create
            # (PostgreSQL; SQLite's check and create hold the write lock together).
            try:
                _create_table(db)
            except StoreUnavailable as exc:
                raise StoreUnavailable(f"cannot create the idempotent responses table: {exc}") from exc
        self.prune()
        self.sweep()

    def key_for(self, caller: str, raw_key: str) -> str:
        return request_key(caller, parse_key(raw_key))

    def replay(self, key: str, hash_: str, recorded: IdempotentRequest | None) -> StoredResponse | None:
        """The first response to this key, or None when the request was never applied.
        Refuses a reuse of the key for another request (422)."""
        found = self._find_hash(key)
        if found is None and recorded is None:
            return None
        action = recorded.fields.get("action_id") if recorded is not None else None
        recorded_hash = recorded.fields.get("request_hash") if recorded is not None else None
        if recorded_hash == ERASED:
            # Sealed under the key every erasure destroys: nothing left to compare with.
            if found is not None and self._erased_after(found[2]):
                self.forget_all()  # what the erasing process had to drop, and may not have
            raise IdempotentRequestApplied(
                f"the request with this Idempotency-Key was applied (action {action}); an erasure since "
                "took what it could be compared with, so this one is not applied; read the resource to see its state"
            )
        if recorded is not None and recorded_hash != hash_:
            raise IdempotencyKeyReused("was used for another request", field=HEADER)
        deadline = time.monotonic() + WAIT_FOR_FIRST
        while True:
            if found is not None:
                stored_hash, response, position = found
                if stored_hash != hash_:
                    raise IdempotencyKeyReused("was used for another request", field=HEADER)
                if self._erased_after(position):
                    self.forget_all()  # what the erasing process had to drop, and may not have
                    raise IdempotentRequestApplied(
                        f"the request with this Idempotency-Key was applied (action {action}); its response "
                        "was dropped since by an erasure; read the resource to see its state"
                    )
                return response
            if time.monotonic() >= deadline:
                raise IdempotentRequestApplied(
                    f"the request with this Idempotency-Key was applied (action {action}), but its response "
                    "was lost; read the resource to see its state"
                )
            time.sleep(0.05)
            found = self._find_hash(key)

    def _find_hash(self, key: str) -> tuple[str, StoredResponse, int] | None:
        with self._db.connect() as conn:
            row = conn.execute(sa.select(responses).where(responses.c.key == key)).first()
        if row is None:
            return None
        return row.request_hash, StoredResponse(row.status, dict(row.headers), row.body), row.position

    def store(self, key: str, hash_: str, response: StoredResponse, position: int) -> None:
        """Keeps `response`; `position`: the store's head read before its request ran."""
        row = {
            "key": key,
            "request_hash": hash_,
            "status": response.status,
            "headers": response.headers,
            "body": response.body,
            "stored_at": datetime.now(UTC),
            "position": position,
        }
        try:
            with self._db.begin() as conn:
                conn.execute(responses.insert().values(**row))
        except StoreUnavailable as exc:
            if not isinstance(exc.__cause__, sa.exc.IntegrityError):
                raise
            # A twin stored the same first response.
        if self._erased_after(position):
            # An erasure committed while the request ran has cleared the table already (or
            # will, after this check): this copy, written after that clearing, goes too.
            with self._db.begin() as conn:
                conn.execute(responses.delete().where(responses.c.key == key))
        self._stored += 1
        if self._stored % PRUNE_EVERY == 0:  # a long-running server keeps a day, not forever
            self.prune()

    def forget_all(self) -> int:
        """Drops every cached response (an erasure: any of them may hold the erased subject's
        values; a retry after this is answered `idempotency_already_applied`)."""
        return _forget_all(self._db)

    def sweep(self) -> int:
        """Drops every response when an erasing event follows the oldest one's request:
        the clearing its erasing process owed, if that process died before it."""
        return sweep_after_erasures(self._db, self._erased_after)

    def prune(self, now: datetime | None = None) -> int:
        """Drops responses older than a day (their requests stay recorded: a retry after that
        is answered `idempotency_already_applied`)."""
        cutoff = (now or datetime.now(UTC)) - KEEP
        with self._db.begin() as conn:
            return conn.execute(responses.delete().where(responses.c.stored_at < cutoff)).rowcount or 0


def sweep_after_erasures(db: ReadModelDatabase, erased_after: Callable[[int], bool]) -> int:
    """`IdempotentResponses.sweep` for a process that serves none (`ledger compact`): the
    table exists once a server has run, and its rows outlive a killed eraser until a server
    starts again or a client retries, which neither may ever do."""
    with db.connect() as conn:
        if not sa.inspect(conn).has_table(responses.name):
            return 0
        oldest = conn.execute(sa.select(sa.func.min(responses.c.position))).scalar()
    return _forget_all(db) if oldest is not None and erased_after(oldest) else 0


def _forget_all(db: ReadModelDatabase) -> int:
    with db.begin() as conn:
        return conn.execute(responses.delete()).rowcount or 0


def _create_table(db: ReadModelDatabase) -> None:
    """The table as this release keeps it. One of an older release lacks the position its
    rows are checked against: its rows are copies, so it is made again empty (a retry of
    one of them is then answered `idempotency_already_applied`)."""
    # One transaction that takes SQLite's write lock first: begun deferred, its CREATE
    # failed at once ("database is locked") whenever another process (a server starting
    # beside this one, catching up its read models) committed after the check.
    with db.begin(immediate=True) as conn:
        if sa.inspect(conn).has_table(responses.name):
            columns = {column["name"] for column in sa.inspect(conn).get_columns(responses.name)}
            if "position" in columns:
                return
            responses.drop(conn)
        metadata.create_all(conn, checkfirst=True)


def clear_after_erasures(db: ReadModelDatabase) -> Callable[[list[str]], None]:
    """An erasure listener (`LedgerApplication.erasure_listeners`) that drops every cached
    response, if this ledger has the table (it exists once a server has run)."""

    def clear(_subjects: list[str]) -> None:
        if sa.inspect(db.engine).has_table(responses.name):
            _forget_all(db)

    return clear

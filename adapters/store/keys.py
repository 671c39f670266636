"""Erasure's keys (issue 14, docs/ERASURE.md): the master key, and each subject's data key
stored wrapped under it in the event store's own database.

A subject (`user:<uuid>`, `group:<uuid>`) has one 256-bit data key, kept in
`ledger_subject_keys` as AES-GCM under the master key with the subject as associated data:
deleting its row erases everything sealed with it. `ledger_master_check` holds one value
wrapped under the master key, so a ledger opened with the wrong master key (or without it,
when a new one was made) is refused at once, never decrypted into garbage.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import logging
import os
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from adapters.store.chain import row_tuple
from adapters.store.config import StoreConfig
from adapters.store.quoting import quote_identifier
from domain.errors import ConfigurationError, DamagedEvent, MasterKeyRotatedAway
from domain.idempotency import REQUEST_HASH_SUBJECT

log = logging.getLogger(__name__)

MASTER_KEY_VARIABLE = "LEDGER_MASTER_KEY"
KEY_BYTES = 32
NONCE_BYTES = 12
KEYS_TABLE = "ledger_subject_keys"
CHECK_TABLE = "ledger_master_check"
# The check value's associated data: not a subject (subjects are `user:` or `group:`).
CHECK_SUBJECT = "ledger:master-check"
CHECK_PLAINTEXT = b"policy-ledger master key check v1"
# The subject of the key that tags snapshots (adapters/store/snapshot_check.py): the
# ledger's own, never a person's or a group's (`user:<id>`, `group:<id>`), so no erasure
# reaches it; a rotation wraps it as any other.
SNAPSHOT_SUBJECT = "ledger:snapshots"
# The ledger's own keys: rotated with the others, never counted as a subject's (`count`).
OWN_SUBJECTS = (SNAPSHOT_SUBJECT, REQUEST_HASH_SUBJECT)
WRONG_MASTER = (
    f"{MASTER_KEY_VARIABLE}: the master key does not open this ledger's keys "
    "(give the key this ledger was set up or last rotated with)"
)
# To a process whose master key opened the ledger when it started: the key changed since.
ROTATED_AWAY = (
    "the master key this process opened the ledger with does not open its keys any more: another "
    "process rotated it (`ledger keys rotate`); restart this process with the new master key"
)
FILE_PREFIX = "file:"
MAX_KEY_FILE_BYTES = 4096  # read of a key file: far more than a key in base64 and a newline
# Key rows a master key is tried on when the check value is missing: a wrong key opens none.
_KEYS_TRIED = 16


def with_every_erasure(subjects: Iterable[str]) -> list[str]:
    """The subjects an erasure of `subjects` destroys the keys of: those, and (when there is
    any) the key sealing HTTP requests' hashes (`domain.idempotency.REQUEST_HASH_SUBJECT`),
    which may have hashed any subject's values with the rest of a request."""
    listed = list(dict.fromkeys(subjects))
    return [*listed, REQUEST_HASH_SUBJECT] if listed and REQUEST_HASH_SUBJECT not in listed else listed


class MasterKey:
    """The key every subject key is wrapped under. Never printed: its repr says only that it is one."""

    __slots__ = ("_aead", "_raw")

    def __init__(self, raw: bytes) -> None:
        if len(raw) != KEY_BYTES:
            raise ValueError(f"a master key is {KEY_BYTES} bytes, not {len(raw)}")
        self._raw = bytes(raw)
        self._aead = AESGCM(self._raw)

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(secrets.token_bytes(KEY_BYTES))

    def encoded(self) -> str:
        """The base64 form `LEDGER_MASTER_KEY` and key files hold."""
        return base64.b64encode(self._raw).decode("ascii")

    def __repr__(self) -> str:
        return "MasterKey(...)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MasterKey) and secrets.compare_digest(self._raw, other._raw)

    def __hash__(self) -> int:
        return hash(self._raw)

    def wrap(self, subject: str, data_key: bytes) -> bytes:
        """nonce + AES-GCM(data_key), the subject as associated data: a blob moved to
        another subject's row does not open."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data_key, subject.encode())

    def unwrap(self, subject: str, blob: bytes) -> bytes:
        blob = bytes(blob)
        try:
            return self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], subject.encode())
        except (InvalidTag, ValueError):  # ValueError: too short to hold a nonce (a row cut short)
            raise ConfigurationError(WRONG_MASTER) from None


# Loading the master key


def load_master_key(config: StoreConfig, environ: Mapping[str, str] | None = None) -> MasterKey:
    """The master key of the ledger `config` names: `LEDGER_MASTER_KEY` (base64 of 32 bytes,
    or `file:PATH` of a file holding it); without it, a SQLite file ledger's key file beside
    the database (made on first open), an in-memory ledger's throwaway key. A PostgreSQL
    ledger requires the variable. Every refusal is one line naming the variable, never the key."""
    environ = os.environ if environ is None else environ
    value = environ.get(MASTER_KEY_VARIABLE)
    if value is not None:
        return _from_variable(value)
    path = config.sqlite_path
    if path is not None:
        key_file = default_key_file(path)
        # A ledger that holds keys already lost its key file: a new one would not open them
        # and would stay where the lost one is to be restored. (Its maker links the file
        # before it stores the check value, so a new ledger never looks like this. After a
        # killed rotation the pending file opens the keys: `finish_rotation`.)
        if not key_file.exists() and not pending_key_file(path).exists() and _holds_keys(path):
            raise ConfigurationError(
                f"{MASTER_KEY_VARIABLE} is not set and the key file {str(key_file)!r} of this ledger is missing: "
                "restore it from where the database is backed up (its keys cannot be opened without it)"
            )
        return _key_file(key_file)
    if config.kind == "sqlite":
        return MasterKey.generate()  # in memory: the keys go with the database
    raise ConfigurationError(
        f"{MASTER_KEY_VARIABLE} is not set: a PostgreSQL ledger needs its master key "
        f"(the base64 of {KEY_BYTES} bytes, or {FILE_PREFIX}PATH of a file holding it)"
    )


def _decode(text: str, where: str) -> MasterKey:
    """`where` names what held the text, as each refusal begins (`_from_variable`,
    `_key_file`)."""
    text = text.strip()
    if not text:
        raise ConfigurationError(f"{where} is empty")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(f"{where} is not base64") from None
    if len(raw) != KEY_BYTES:
        raise ConfigurationError(f"{where} decodes to {len(raw)} bytes, not the {KEY_BYTES} of a master key")
    return MasterKey(raw)


def _from_variable(value: str) -> MasterKey:
    if not value.startswith(FILE_PREFIX):
        return _decode(value, f"{MASTER_KEY_VARIABLE}: the value")
    name = value[len(FILE_PREFIX) :].strip()
    if not name:
        raise ConfigurationError(f"{MASTER_KEY_VARIABLE}: {FILE_PREFIX} names no file")
    path = Path(name)
    return _decode(
        _read_key_file(path, f"{MASTER_KEY_VARIABLE}: the key file"), f"{MASTER_KEY_VARIABLE}: the file {str(path)!r}"
    )


def _read_key_file(path: Path, named: str) -> str:
    """The key file's text; `named` begins a refusal (the variable names the file, or the
    ledger's own file beside it is read)."""
    try:
        with path.open("rb") as file:
            # A key file is 45 bytes: an endless one (/dev/zero) was read whole, until MemoryError.
            return file.read(MAX_KEY_FILE_BYTES).decode("ascii")
    except UnicodeDecodeError:
        return "!"  # not base64: _decode says so, without the bytes
    except OSError as exc:
        raise ConfigurationError(f"{named} {str(path)!r} cannot be read: {exc.strerror or exc}") from None


def _key_file(path: Path) -> MasterKey:
    """The key file of a SQLite ledger, made on first open. It appears whole or not at all
    (written under a private name, then linked into place, which fails if it exists), so
    of two processes opening a new ledger at once the loser reads the winner's key."""
    if not path.exists():
        key = MasterKey.generate()
        temporary = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, (key.encoded() + "\n").encode("ascii"))
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(temporary, path)
                return key
            except FileExistsError:
                pass  # another process made it first: its key is the ledger's
            finally:
                temporary.unlink(missing_ok=True)
        except OSError as exc:
            if not path.exists():
                raise ConfigurationError(
                    f"{MASTER_KEY_VARIABLE} is not set and the key file {str(path)!r} cannot be created: "
                    f"{exc.strerror or exc}"
                ) from None
    # The ledger's own file, read when the variable is unset: refusals say so, not that the
    # variable (which may never have been set) holds something wrong.
    unset = f"{MASTER_KEY_VARIABLE} is not set and the key file"
    return _decode(_read_key_file(path, unset), f"{unset} {str(path)!r}")


def _holds_keys(database: Path) -> bool:
    """Whether the SQLite file holds the check value of a master key (read only; False
    when it cannot tell, leaving the refusal to the open itself)."""
    if not database.exists():
        return False
    try:
        conn = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error:
        return False
    try:
        return conn.execute(f"SELECT 1 FROM {CHECK_TABLE} LIMIT 1").fetchone() is not None
    except sqlite3.Error:  # no such table: a new ledger, or one from before the keys
        return False
    finally:
        conn.close()


def pending_key_file(database: Path) -> Path:
    """Where `ledger keys rotate` writes a SQLite ledger's new master key before it commits."""
    return Path(f"{default_key_file(database)}.new")


def finish_rotation(config: StoreConfig, keys: SubjectKeys) -> bool:
    """A SQLite ledger whose key file no longer opens it, beside a new key file that does:
    a rotation committed and its process died before moving the new key into place. The
    move is finished here (True, `keys` on the new key); anything else is left as it is
    (False: the caller's refusal stands)."""
    path = config.sqlite_path
    if MASTER_KEY_VARIABLE in os.environ or path is None or not pending_key_file(path).exists():
        return False
    pending, old = pending_key_file(path), keys.master
    try:
        keys.master = _decode(_read_key_file(pending, "the pending key file"), f"the key file {str(pending)!r}")
        keys.check_master()
    except ConfigurationError:
        keys.master = old
        return False
    os.replace(pending, default_key_file(path))
    log.warning("finished a key rotation that was interrupted: %s is now the master key file", default_key_file(path))
    return True


# The tables


@dataclass(frozen=True)
class Statements:
    """The key tables' SQL in one dialect."""

    create: tuple[Any, ...]
    select: Any  # wrapped of one subject
    created: Any  # created_at of one subject's key
    select_many: Any  # subject, wrapped of the subjects `many` packs into one parameter
    insert: Any  # subject, wrapped; a subject that has a key keeps it
    delete: Any  # subject
    count: Any  # of the subjects `many` packs into one parameter left out
    select_all: Any  # subject, wrapped, for rotation
    update: Any  # wrapped, subject
    check_select: Any
    check_share: Any  # the check value, locked against a rotation until the transaction ends
    check_lock: Any  # the check value, locked for a rotation (the first statement: a write on SQLite)
    check_insert: Any  # wrapped; the first stored stays
    check_update: Any  # wrapped
    prepare_delete: tuple[Any, ...]  # run on a transaction's connection before deleting keys
    many: Callable[[Sequence[str]], Any]

    @staticmethod
    def sqlite() -> Statements:
        keys, check = quote_identifier(KEYS_TABLE), quote_identifier(CHECK_TABLE)
        now = "(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"
        # Read as a blob whatever a row holds: SQLite keeps any type, and a value rewritten
        # as text that is not UTF-8 failed the driver's read ('Could not decode to UTF-8')
        # before the ledger could say the row was altered.
        wrapped = "CAST(wrapped AS BLOB) AS wrapped"
        return Statements(
            create=(
                f"CREATE TABLE IF NOT EXISTS {keys} (subject TEXT PRIMARY KEY, wrapped BLOB NOT NULL, "
                f"created_at TEXT NOT NULL DEFAULT {now})",
                f"CREATE TABLE IF NOT EXISTS {check} (id INTEGER PRIMARY KEY CHECK (id = 1), "
                f"wrapped BLOB NOT NULL, created_at TEXT NOT NULL DEFAULT {now})",
            ),
            select=f"SELECT {wrapped} FROM {keys} WHERE subject = ?",
            created=f"SELECT created_at FROM {keys} WHERE subject = ?",
            select_many=f"SELECT subject, {wrapped} FROM {keys} WHERE subject IN (SELECT value FROM json_each(?))",
            insert=f"INSERT INTO {keys} (subject, wrapped) VALUES (?, ?) ON CONFLICT (subject) DO NOTHING",
            delete=f"DELETE FROM {keys} WHERE subject = ?",
            count=f"SELECT count(*) FROM {keys} WHERE subject NOT IN (SELECT value FROM json_each(?))",
            select_all=f"SELECT subject, {wrapped} FROM {keys} ORDER BY subject",
            update=f"UPDATE {keys} SET wrapped = ? WHERE subject = ?",
            check_select=f"SELECT {wrapped} FROM {check} WHERE id = 1",
            # SQLite has one writer: after the append's own write the value cannot change.
            check_share=f"SELECT {wrapped} FROM {check} WHERE id = 1",
            # A write first, so the transaction takes the write lock (waiting its turn)
            # before it reads, rather than failing to upgrade a stale read snapshot.
            check_lock=f"UPDATE {check} SET wrapped = wrapped WHERE id = 1 RETURNING {wrapped}",
            check_insert=f"INSERT INTO {check} (id, wrapped) VALUES (1, ?) ON CONFLICT (id) DO NOTHING",
            check_update=f"UPDATE {check} SET wrapped = ? WHERE id = 1",
            # Deleted key bytes are overwritten in the page, not left in free space.
            prepare_delete=("PRAGMA secure_delete = ON",),
            many=lambda subjects: json.dumps(list(subjects)),
        )

    @staticmethod
    def postgres(schema: str) -> Statements:
        from psycopg.sql import SQL, Composed, Identifier  # only PostgreSQL ledgers load psycopg

        names = {"keys": Identifier(schema, KEYS_TABLE), "check": Identifier(schema, CHECK_TABLE)}

        def sql(text: str) -> Composed:
            return SQL(text).format(**names)

        return Statements(
            create=(
                sql(
                    "CREATE TABLE IF NOT EXISTS {keys} (subject text PRIMARY KEY, wrapped bytea NOT NULL, "
                    "created_at timestamptz NOT NULL DEFAULT now())"
                ),
                sql(
                    "CREATE TABLE IF NOT EXISTS {check} (id smallint PRIMARY KEY CHECK (id = 1), "
                    "wrapped bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
                ),
            ),
            select=sql("SELECT wrapped FROM {keys} WHERE subject = %s"),
            created=sql("SELECT created_at FROM {keys} WHERE subject = %s"),
            select_many=sql("SELECT subject, wrapped FROM {keys} WHERE subject = ANY(%s)"),
            insert=sql("INSERT INTO {keys} (subject, wrapped) VALUES (%s, %s) ON CONFLICT (subject) DO NOTHING"),
            delete=sql("DELETE FROM {keys} WHERE subject = %s"),
            count=sql("SELECT count(*) FROM {keys} WHERE subject <> ALL(%s)"),
            select_all=sql("SELECT subject, wrapped FROM {keys} ORDER BY subject"),
            update=sql("UPDATE {keys} SET wrapped = %s WHERE subject = %s"),
            check_select=sql("SELECT wrapped FROM {check} WHERE id = 1"),
            # A rotation holds the row FOR UPDATE: a key made meanwhile waits for it, then
            # reads the new check value, which its old master key does not open.
            check_share=sql("SELECT wrapped FROM {check} WHERE id = 1 FOR SHARE"),
            check_lock=sql("SELECT wrapped FROM {check} WHERE id = 1 FOR UPDATE"),
            check_insert=sql("INSERT INTO {check} (id, wrapped) VALUES (1, %s) ON CONFLICT (id) DO NOTHING"),
            check_update=sql("UPDATE {check} SET wrapped = %s WHERE id = 1"),
            prepare_delete=(),
            many=list,
        )


def _first(curs: Any) -> Any:
    row = curs.fetchone()
    return None if row is None else row_tuple(row)[0]


class SubjectKeys:
    """The subjects' data keys, in the event store's own database, reached through the
    application's recorder (its datastore's pooled connections and transactions).

    Unwrapped keys are cached in the process; `forget` drops them (an erasure must).
    Thread-safe: the cache is locked, and each call runs in its own pooled transaction."""

    def __init__(self, recorder: Any, master: MasterKey) -> None:
        self.datastore = recorder.datastore
        schema = getattr(self.datastore, "schema", None)
        self.kind = "sqlite" if schema is None else "postgresql"
        self.schema: str | None = schema
        self.sql = Statements.sqlite() if schema is None else Statements.postgres(schema)
        self.master = master
        self._lock = threading.Lock()
        self._cache: dict[str, bytes] = {}
        # Bumped by every `forget`: a key read before a forget is not cached after it.
        self._generation = 0
        self._opened = False  # the master key opened the check value once (`check_master`)

    # Setting up

    def create_table(self) -> None:
        """Creates the tables unless they exist, then stores the check value (first open)
        and refuses a master key that does not open it."""
        if not self._tables_exist():
            with self.datastore.transaction(commit=True) as curs:
                if self.kind == "postgresql":
                    # Two processes opening one ledger at once must not race on the DDL.
                    curs.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"ledger-keys:{self.schema}",))
                for statement in self.sql.create:
                    curs.execute(statement)
        self.check_master()

    def _tables_exist(self) -> bool:
        """On PostgreSQL, whether both tables exist (then no DDL runs: `IF NOT EXISTS` still
        needs CREATE on the schema, which a role that only uses a ledger has not)."""
        if self.kind != "postgresql":
            return False  # SQLite's DDL is cheap and needs no privilege
        names = [f"{quote_identifier(str(self.schema))}.{quote_identifier(t)}" for t in (KEYS_TABLE, CHECK_TABLE)]
        with self.datastore.transaction(commit=False) as curs:
            curs.execute("SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL", names)
            return bool(_first(curs))

    def check_master(self) -> None:
        """Stores the check value if there is none yet, and refuses (ConfigurationError) a
        master key that does not open the stored one."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self.sql.check_select)
            stored = _first(curs)
        if stored is None:
            self._refuse_unless_it_opens_the_keys()
            with self.datastore.transaction(commit=True) as curs:
                curs.execute(self.sql.check_insert, (self.master.wrap(CHECK_SUBJECT, CHECK_PLAINTEXT),))
                curs.execute(self.sql.check_select)
                stored = _first(curs)
        self._verify(self.master, stored)
        self._opened = True

    def confirm_master(self) -> None:
        """Refuses (ConfigurationError) a master key that no longer opens the stored check
        value: another process rotated it since this one opened. Reads only."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self.sql.check_select)
            stored = _first(curs)
        self._still_opens(stored)

    def _refuse_unless_it_opens_the_keys(self) -> None:
        """A ledger holding keys but no check value lost it outside the ledger: any key
        would otherwise be stored as the check, and the keys made after wrapped under it,
        so a wrong key would split the ledger in two. The key is taken only if it opens a
        stored key (AES-GCM: no other key can), and the check value made again is logged."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self.sql.select_all)
            rows = [row_tuple(row) for row in itertools.islice(iter(curs.fetchone, None), _KEYS_TRIED)]
        if not rows:
            return  # a new ledger: this key becomes its master
        for subject, wrapped in rows:
            try:
                self.master.unwrap(subject, bytes(wrapped))
            except ConfigurationError:
                continue  # that row may be the one altered: try another
            log.warning("the ledger's master key check value was missing (removed outside the ledger): stored again")
            return
        raise ConfigurationError(WRONG_MASTER)

    def _still_opens(self, stored: Any) -> None:
        """`_verify` of this process's master key after it opened the ledger: a refusal then
        means another process rotated the key, which the operator fixes by a restart (the
        generic refusal named a variable a SQLite ledger's own key file does not use)."""
        try:
            self._verify(self.master, stored)
        except ConfigurationError:
            if self._opened:
                raise MasterKeyRotatedAway(ROTATED_AWAY) from None
            raise

    @staticmethod
    def _verify(master: MasterKey, stored: Any) -> None:
        if stored is None or master.unwrap(CHECK_SUBJECT, bytes(stored)) != CHECK_PLAINTEXT:
            raise ConfigurationError(WRONG_MASTER)

    # Reading and making keys

    def key(self, subject: str) -> bytes | None:
        """The subject's data key, or None when it has none (never made, or erased)."""
        with self._lock:
            cached = self._cache.get(subject)
            generation = self._generation
        if cached is not None:
            return cached
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self.sql.select, (subject,))
            wrapped = _first(curs)
        if wrapped is None:
            return None
        data_key = self._unwrap(subject, wrapped)
        self._remember({subject: data_key}, generation)
        return data_key

    def stored_key(self, subject: str) -> bytes | None:
        """The subject's key as stored now, opened, bypassing the cache (which may hold a
        key another process erased since); None when it has none or it does not open."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self.sql.select, (subject,))
            wrapped = _first(curs)
        try:
            return None if wrapped is None else self.master.unwrap(subject, bytes(wrapped))
        except (ConfigurationError, TypeError, ValueError):  # altered: `opening` names it
            return None

    def stored(self, subject: str) -> bool:
        """Whether the subject has a key row now, read from the store (not the cache: another
        process may have erased it since this one cached it)."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self.sql.created, (subject,))
            return _first(curs) is not None

    def made_after(self, subject: str, moment: datetime) -> bool:
        """Whether the subject's key was made after `moment` (read for a value that failed
        to open: rare, so not cached). False when it has no key."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self.sql.created, (subject,))
            created = _first(curs)
        if created is None:
            return False
        made = created if isinstance(created, datetime) else datetime.fromisoformat(str(created))
        return made > (moment if moment.tzinfo else moment.replace(tzinfo=UTC))

    def ensure(self, subjects: Iterable[str], gone: Callable[[str], bool] | None = None) -> dict[str, bytes]:
        """Every subject's data key, made for those that have none. Two processes making one
        subject's key at once agree: the first insert wins and both read it back. A subject
        without a key for which `gone(subject)` holds was erased for good: it gets a key
        that is neither stored nor cached, so what is sealed with it is erased already."""
        wanted = list(dict.fromkeys(subjects))
        with self._lock:
            found = {s: self._cache[s] for s in wanted if s in self._cache}
            generation = self._generation
        missing = [s for s in wanted if s not in found]
        if not missing:
            return found
        with self.datastore.transaction(commit=False) as curs:
            read = self._read_many(curs, missing)
        missing = [s for s in missing if s not in read]
        lost = {s: secrets.token_bytes(KEY_BYTES) for s in missing if gone is not None and gone(s)}
        missing = [s for s in missing if s not in lost]
        if missing:
            # In one order everywhere: two PostgreSQL transactions inserting the same
            # subjects wait for each other's rows in turn instead of deadlocking.
            fresh = [(s, self.master.wrap(s, secrets.token_bytes(KEY_BYTES))) for s in sorted(missing)]
            with self.datastore.transaction(commit=True) as curs:
                curs.executemany(self.sql.insert, fresh)
                # Checked after the insert (the write lock on SQLite), locked against a
                # rotation on PostgreSQL: a process still on the old master key fails here
                # rather than store a key the new master key cannot open.
                curs.execute(self.sql.check_share)
                self._still_opens(_first(curs))
                read |= self._read_many(curs, missing)
        self._remember(read, generation)
        return found | read | lost

    def _read_many(self, curs: Any, subjects: Sequence[str]) -> dict[str, bytes]:
        curs.execute(self.sql.select_many, (self.sql.many(subjects),))
        rows = [row_tuple(row) for row in curs.fetchall()]
        return {str(subject): self._unwrap(str(subject), wrapped) for subject, wrapped in rows}

    def _unwrap(self, subject: str, wrapped: Any) -> bytes:
        """A stored key opened with the master key. One that does not open while the master
        key still opens the check value was altered outside the ledger: that is said, not
        blamed on the master key (a process whose master key was rotated away still is)."""
        try:
            return self.master.unwrap(subject, bytes(wrapped))
        except ConfigurationError:
            with self.datastore.transaction(commit=False) as curs:
                curs.execute(self.sql.check_select)
                self._still_opens(_first(curs))  # raises: the master key is the wrong one
            raise DamagedEvent(
                f"the stored key of {subject} does not open under the master key, which opens the "
                "ledger's check value: the key row was altered outside the ledger; `ledger verify` names it"
            ) from None

    def _remember(self, keys: Mapping[str, bytes], generation: int) -> None:
        with self._lock:
            if generation == self._generation:
                self._cache.update(keys)

    def forget(self, subjects: Iterable[str]) -> None:
        """Drops the subjects' keys from this process's cache (an erasure's, with the key
        every erasure destroys: `with_every_erasure`)."""
        with self._lock:
            self._generation += 1
            for subject in with_every_erasure(subjects):
                self._cache.pop(subject, None)

    def forget_all(self) -> None:
        """Drops every key from this process's cache."""
        with self._lock:
            self._generation += 1
            self._cache.clear()

    def count(self) -> int:
        """How many subjects have a key (the ledger's own keys, OWN_SUBJECTS, are not ones)."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self.sql.count, (self.sql.many(OWN_SUBJECTS),))
            return int(_first(curs))

    def opening(self) -> dict[str, bool]:
        """Every subject with a stored key, and whether that key opens under the master key
        (one that does not was altered outside the ledger: `ledger verify` says so)."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self.sql.select_all)
            rows = [row_tuple(row) for row in curs.fetchall()]
        opens: dict[str, bool] = {}
        for subject, wrapped in rows:
            try:
                self.master.unwrap(str(subject), bytes(wrapped))
            except (ConfigurationError, TypeError, ValueError):  # SQLite keeps any type: text, a number
                opens[str(subject)] = False
            else:
                opens[str(subject)] = True
        return opens

    # Erasing

    def destroy_in(self, cursor: Any, subjects: Iterable[str]) -> None:
        """Deletes the subjects' keys in the caller's transaction (`cursor` is of this
        ledger's dialect: the recorder's append passes its own). Their cached copies are
        dropped now; the caller drops them again (`forget`) once the transaction commits,
        since a read racing the commit may have cached a key about to be deleted."""
        subjects = with_every_erasure(subjects)
        self.forget(subjects)
        if not subjects:
            return
        for statement in self.sql.prepare_delete:
            cursor.execute(statement)
        cursor.executemany(self.sql.delete, [(subject,) for subject in subjects])

    def destroy(self, subjects: Iterable[str]) -> None:
        """Deletes the subjects' keys in a transaction of its own."""
        subjects = list(subjects)
        with self.datastore.transaction(commit=True) as curs:
            self.destroy_in(curs, subjects)
        self.forget(subjects)

    # Rotating

    def rotate(self, new_master: MasterKey) -> int:
        """Wraps every key, and the check value, under `new_master`, in one transaction;
        returns how many keys. The data keys do not change, so nothing sealed is rewritten.
        Refused (ConfigurationError) when this store's master key does not open the ledger."""
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(self.sql.check_lock)
            self._still_opens(_first(curs))
            curs.execute(self.sql.select_all)
            rows = [row_tuple(row) for row in curs.fetchall()]
            rewrapped = [
                (new_master.wrap(str(subject), self.master.unwrap(str(subject), bytes(wrapped))), str(subject))
                for subject, wrapped in rows
            ]
            curs.executemany(self.sql.update, rewrapped)
            curs.execute(self.sql.check_update, (new_master.wrap(CHECK_SUBJECT, CHECK_PLAINTEXT),))
        self.master = new_master
        return sum(1 for _, subject in rewrapped if subject not in OWN_SUBJECTS)  # as `count` counts


def master_key_source(config: StoreConfig, environ: Mapping[str, str] | None = None) -> str:
    """Where the ledger's master key comes from, for operators: the variable, the key file
    beside a SQLite ledger, or an in-memory ledger's throwaway key. Never the key."""
    environ = os.environ if environ is None else environ
    value = environ.get(MASTER_KEY_VARIABLE)
    if value is not None:
        if value.startswith(FILE_PREFIX):
            return f"{MASTER_KEY_VARIABLE} (the file {value[len(FILE_PREFIX) :].strip()})"
        return f"{MASTER_KEY_VARIABLE} (its value)"
    path = config.sqlite_path
    if path is not None:
        return f"the key file {default_key_file(path)}"
    return "a throwaway key (an in-memory ledger)"


def wrong_master(config: StoreConfig, environ: Mapping[str, str] | None = None) -> str:
    """WRONG_MASTER naming where the refused key came from: a SQLite ledger's own key file
    when the variable is not set (then the variable is not what to fix)."""
    environ = os.environ if environ is None else environ
    path = config.sqlite_path
    if MASTER_KEY_VARIABLE in environ or path is None:
        return WRONG_MASTER
    return (
        f"{MASTER_KEY_VARIABLE} is not set and the key file {str(default_key_file(path))!r} does not open "
        "this ledger's keys (restore the file this ledger was set up or last rotated with, or give that key "
        f"as {MASTER_KEY_VARIABLE})"
    )


def default_key_file(database: Path) -> Path:
    """The key file beside a SQLite ledger's database."""
    return database.with_name(database.name + ".key")


def write_key_file(path: Path, key: MasterKey) -> None:
    """Writes `key` to a new file `path` (mode 0600); refuses to overwrite one."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigurationError(f"the key file {str(path)!r} exists: name a new file") from None
    except OSError as exc:
        raise ConfigurationError(f"cannot create the key file {str(path)!r}: {exc.strerror or exc}") from None
    try:
        os.write(fd, (key.encoded() + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)

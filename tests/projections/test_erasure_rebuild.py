"""Read models follow an erasure (issue 14): when a purge destroys a group's key, every
read-model row that held one of its personal values in clear (the group's row and
members, its kernels' usage rows, the audit rows of actions on it) becomes what a rebuild
from the first event reads, and no file of a SQLite ledger keeps the plaintext."""

from __future__ import annotations

import json
import sqlite3
import uuid
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.bootstrap import Ledger, open_ledger
from domain.personal import ERASED
from projections.database import _sqlite_read_model_settings
from tests.projections.commands import (
    GROUPS,
    KERNELS,
    USERS,
    Command,
    commands,
    description,
    email,
    full_name,
    kernel_access_key,
    kernel_user,
    personal_commands,
    run,
    session_name,
)
from tests.projections.readmodels import clean_rebuild, dump

# Purges often, and the commands that hold personal values as often as all others.
steps = st.lists(
    st.tuples(
        st.one_of(commands, personal_commands, st.tuples(st.just("group_purge"), st.integers(0, len(GROUPS) - 1))),
        st.booleans(),
    ),
    min_size=3,
    max_size=25,
)
# Groups with members, descriptions and kernels of named sessions, each action audited.
PRELUDE: list[Command] = [
    *[("group", i) for i in range(len(GROUPS))],
    ("members", 0, "add", USERS[:2]),
    ("members", 1, "add", USERS[1:3]),
    *[("describe", i, 0) for i in range(len(GROUPS))],
    *[("named_start", i, i, 5, 0) for i in range(len(GROUPS))],
    ("end", 1, 50),  # a purge is refused while its group has running kernels
    *[("user_named", i, 0) for i in range(2)],
]
# Every kernel ended, so that the purge at the end erases its group.
ENDS: list[Command] = [("end", kernel, 3000) for kernel in range(len(KERNELS))]


def _erased(ledger: Ledger, subject: str) -> bool:
    return ledger.app.keys.key(subject) is None


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    history=steps,
    batch_size=st.integers(1, 12),
    purged=st.integers(0, len(GROUPS) - 1),
    erased=st.integers(0, len(USERS) - 1),
)
def test_after_erasures_a_rebuild_equals_the_live_read_models(
    history: list[tuple[Command, bool]], batch_size: int, purged: int, erased: int
) -> None:
    with open_ledger("sqlite:///:memory:") as ledger:
        for command, catch_up in (
            [(c, True) for c in PRELUDE]
            + history
            + [(c, False) for c in [*ENDS, ("group_purge", purged), ("user_erase", erased)]]
        ):
            run(ledger, command, audited=True)
            if catch_up:
                ledger.runner.catch_up()
        ledger.runner.catch_up()
        live = dump(ledger.read_models, ledger.projections.all())
        assert live == clean_rebuild(ledger, batch_size)
        shown = repr(live)
        # No row keeps a clear value of a subject whose key is gone (each value names its subject).
        for group in range(len(GROUPS)):
            if _erased(ledger, f"group:{GROUPS[group]}"):
                assert f"-g{group}-" not in shown
        for user in range(len(USERS)):
            if _erased(ledger, f"user:{USERS[user]}"):
                assert f"-u{user}-" not in shown
        assert _erased(ledger, f"user:{USERS[erased]}")
        assert ERASED in shown  # the prelude's values of an erased group read erased


def _audit_specs(ledger: Ledger) -> list[dict[str, Any]]:
    entries = ledger.projections.audit.entries
    with ledger.read_models.connect() as conn:
        return [row.spec for row in conn.execute(sa.select(entries.c.spec).order_by(entries.c.position))]


def test_the_audit_and_user_rows_of_an_erased_subject_read_erased_and_others_stay(ledger: Ledger) -> None:
    for command in [*PRELUDE, *ENDS, ("group_purge", 0), ("user_erase", 0)]:
        run(ledger, command, audited=True)
        # Each caught up at once: the rows hold the values in clear before the erasures
        # (read after them, the events would give erased values to any read model).
        ledger.runner.catch_up()
    specs = _audit_specs(ledger)
    described = {spec["group_id"]: spec["modifier"] for spec in specs if "group_id" in spec and "modifier" in spec}
    assert described[str(GROUPS[0])]["description"] == ERASED
    assert described[str(GROUPS[1])]["description"] == description(1, 0)
    members = [spec for spec in specs if spec.get("user_uuids")]
    assert {str(GROUPS[0]), str(GROUPS[1])} == {spec["group_id"] for spec in members}
    for spec in members:
        assert (spec["user_uuids"] == [ERASED, ERASED]) is (spec["group_id"] == str(GROUPS[0]))
    starts = {spec["group_id"]: spec for spec in specs if "session_name" in spec}
    assert {starts[str(GROUPS[0])][f] for f in ("session_name", "user_id", "access_key")} == {ERASED}
    assert starts[str(GROUPS[1])]["session_name"] == session_name(1, 0)
    named = {spec["user_id"]: spec["modifier"] for spec in specs if "user_id" in spec and "modifier" in spec}
    assert named[str(USERS[0])] == {"email": ERASED, "full_name": ERASED}
    assert named[str(USERS[1])] == {"email": email(1, 0), "full_name": full_name(1, 0)}
    erased, kept = ledger.queries.user(USERS[0]), ledger.queries.user(USERS[1])
    assert erased is not None and (erased.email, erased.full_name) == (ERASED, ERASED)
    assert kept is not None and kept.email == email(1, 0)
    # The erased rows are those a rebuild reads.
    assert dump(ledger.read_models, ledger.projections.all()) == clean_rebuild(ledger)


def _forms(value: str) -> list[bytes]:
    """How a value may sit in a file: as text, and a UUID as its 32 hex digits too."""
    forms = [value.encode()]
    with suppress(ValueError):
        forms.append(uuid.UUID(value).hex.encode())
    return forms


def _occurrences(folder: Path, values: list[str]) -> dict[str, int]:
    """How often each value occurs in the raw bytes of every file in the folder."""
    contents = b"".join(path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file())
    return {value: sum(contents.count(form) for form in _forms(value)) for value in values}


# A group with two members, a description and a named kernel, as the purge tests build it.
PURGED_GROUPS_WORLD: list[Command] = [
    ("group", 0),
    ("members", 0, "add", USERS[:2]),
    ("describe", 0, 0),
    ("named_start", 0, 0, 5, 0),
    ("end", 0, 60),
]


def _checkpoint(database: Path) -> None:
    with sqlite3.connect(database) as conn:
        assert conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0  # not busy


def test_a_purge_leaves_no_plaintext_in_any_file_of_a_sqlite_ledger(tmp_path: Path) -> None:
    database = tmp_path / "ledger.db"
    group, members = str(GROUPS[0]), [str(user) for user in USERS[:2]]
    personal = [description(0, 0), session_name(0, 0), kernel_access_key(0, 0), str(kernel_user(0))]
    # Members are users: their ids stay, as the users' own. What must go are the copies the
    # membership made: a member row (the group's id then the member's) and the list of ids
    # of the audited action's input, as JSON.
    membership = [group + member for member in members] + [json.dumps(members)]
    with open_ledger(f"sqlite:///{database}") as ledger:
        for command in PURGED_GROUPS_WORLD:
            run(ledger, command, audited=True)
        ledger.runner.catch_up()
        assert ledger.queries.group(GROUPS[0]) is not None
        _checkpoint(database)
        # The scan sees every value in clear in the read models before the purge.
        assert all(_occurrences(tmp_path, personal + membership).values())
        run(ledger, ("group_purge", 0), audited=True)
        ledger.runner.catch_up()
        _checkpoint(database)
        assert (database.parent / "ledger.db-wal").stat().st_size == 0
        assert _occurrences(tmp_path, personal + membership) == dict.fromkeys(personal + membership, 0)
        assert ledger.queries.group(GROUPS[0]) is None  # purged indeed


def test_read_model_connections_zero_what_they_delete() -> None:
    """Set on every read-model connection, whatever the SQLite library's default (which
    the scan above cannot tell apart on a build whose default is on)."""
    conn = sqlite3.connect(":memory:")
    conn.execute("PRAGMA secure_delete=OFF")
    _sqlite_read_model_settings(conn, None)
    assert conn.execute("PRAGMA secure_delete").fetchone() == (1,)
    conn.close()


def test_a_purge_leaves_no_row_holding_its_values_on_postgresql(postgres_url: str) -> None:
    """Every table of the ledger's schema (events, snapshots, keys, read models), each row
    read as text: none holds the purged group's values after the purge. Dead tuples keep
    the old row versions on disk until VACUUM (README); the rows themselves are gone."""
    import psycopg

    from tests.conftest import PG_DATABASE, PG_SERVER

    schema = postgres_url.rpartition("schema=")[2]
    group = str(GROUPS[0])
    personal = [description(0, 0), session_name(0, 0), kernel_access_key(0, 0), str(kernel_user(0))]

    def rows_holding() -> dict[str, int]:
        found = dict.fromkeys(personal, 0)
        with psycopg.connect(f"{PG_SERVER}/{PG_DATABASE}") as conn:
            tables = conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
            ).fetchall()
            assert len(tables) > 5, tables
            for (table,) in tables:
                for (text,) in conn.execute(f'SELECT t::text FROM "{schema}"."{table}" AS t'):
                    raw = text.encode()
                    for value in found:
                        found[value] += sum(raw.count(form) for form in _forms(value))
        return found

    with open_ledger(postgres_url) as ledger:
        for command in PURGED_GROUPS_WORLD:
            run(ledger, command, audited=True)
        ledger.runner.catch_up()
        assert all(rows_holding().values())  # in clear in the read models before the purge
        run(ledger, ("group_purge", 0), audited=True)
        ledger.runner.catch_up()
        assert rows_holding() == dict.fromkeys(personal, 0)
        assert ledger.queries.group(group) is None and not ledger.queries.group_members(group)


def test_a_purge_empties_another_time_zones_usage_read_model_of_its_kernels(ledger: Ledger, ledger_url: str) -> None:
    """A report in another zone (`ledger usage month --timezone Asia/Seoul`) keeps that
    zone's usage read model in the same database. A purge in this process's zone must take
    the group's kernels out of it too: left there, their session names, user ids and access
    keys stayed in clear until some process of that zone happened to catch up."""
    for command in PURGED_GROUPS_WORLD:
        run(ledger, command, audited=True)
    with open_ledger(ledger_url, timezone="Asia/Seoul") as seoul:
        seoul.runner.catch_up()
        kernels = seoul.projections.usage.kernels
    held = sa.select(kernels.c.session_name).where(kernels.c.group_id == str(GROUPS[0]))
    with ledger.read_models.connect() as conn:
        assert conn.execute(held).scalars().all() == [session_name(0, 0)]
    run(ledger, ("group_purge", 0), audited=True)
    assert ledger.queries.group(GROUPS[0]) is None  # purged indeed
    with ledger.read_models.connect() as conn:
        assert conn.execute(held).scalars().all() == []


def test_a_purge_empties_another_zones_usage_read_model_of_an_older_version(
    ledger: Ledger, ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another zone's usage read model is of the version the code that last read it had:
    after an upgrade that bumped it, no process of that zone has built the new version
    yet. The erasure caught up only this code's version of each zone, so the older one
    kept the purged group's session names, user ids and access keys in clear."""
    from projections.usage import UsageProjection

    for command in PURGED_GROUPS_WORLD:
        run(ledger, command, audited=True)
    monkeypatch.setattr(UsageProjection, "version", UsageProjection.version - 1)  # the release before
    with open_ledger(ledger_url, timezone="Asia/Seoul") as seoul:
        seoul.runner.catch_up()
    monkeypatch.undo()

    def held() -> list[str]:
        """The session names of the group in Seoul's kernels tables, any version's, retired ones too."""
        with ledger.read_models.connect() as conn:
            names = [n for n in sa.inspect(conn).get_table_names() if n.endswith("asia_seoul_kernels")]
            return [
                name
                for table in names
                for name in conn.execute(
                    sa.text(f'SELECT session_name FROM "{table}" WHERE group_id = :g'), {"g": str(GROUPS[0])}
                ).scalars()
            ]

    assert held() == [session_name(0, 0)]  # the older version's table only
    run(ledger, ("group_purge", 0), audited=True)
    assert ledger.queries.group(GROUPS[0]) is None  # purged indeed
    assert held() == []


class _Killed(Exception):
    """Stands for a `projections rebuild --force` killed midway."""


def test_a_purge_empties_another_zones_usage_rebuild_left_midway(ledger: Ledger, ledger_url: str) -> None:
    """`LEDGER_TIMEZONE=Asia/Seoul ledger projections rebuild --force usage` killed past the
    group's kernel keeps that zone's build tables (`usage_v6_asia_seoulr1_kernels`) in the
    database. The erasure caught up this zone's forced rebuilds but only the active versions
    of the other zones: the build kept the purged group's session names, user ids and
    access keys in clear, through `ledger compact` too."""
    for command in PURGED_GROUPS_WORLD:
        run(ledger, command, audited=True)
    with open_ledger(ledger_url, timezone="Asia/Seoul") as seoul:
        seoul.runner.catch_up()
        builds = seoul.runner.force([seoul.projections.usage])

        def killed_near_the_head(position: int, head: int) -> None:
            if position >= head - 1:  # past the kernel's start, short of the head
                raise _Killed

        seoul.runner.batch_size = 2
        with pytest.raises(_Killed):
            seoul.runner.catch_up(builds, killed_near_the_head)

    def held() -> dict[str, list[str]]:
        """The session names of the group in every table of Seoul's kernels, builds' too."""
        with ledger.read_models.connect() as conn:
            names = [n for n in sa.inspect(conn).get_table_names() if "asia_seoul" in n and n.endswith("_kernels")]
            found = {
                table: list(
                    conn.execute(
                        sa.text(f'SELECT session_name FROM "{table}" WHERE group_id = :g'), {"g": str(GROUPS[0])}
                    ).scalars()
                )
                for table in names
            }
        return {table: sessions for table, sessions in found.items() if sessions}

    assert any(name.endswith("r1_kernels") for name in held()), held()  # the build holds them
    run(ledger, ("group_purge", 0), audited=True)
    assert ledger.queries.group(GROUPS[0]) is None  # purged indeed
    assert held() == {}
    ledger.compact()
    assert held() == {}

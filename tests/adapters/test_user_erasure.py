"""Erasing a user (issue 14, docs/ERASURE.md), on both backends: the user's key is
destroyed in the erasure's own append, its email and full name read `[erased]` in every
history, state and diff, while its keypairs, groups, kernels, usage reports and every
query keep answering and the chain still verifies. Who asked and why is kept. A stream
holding values stored in clear by an older release is refused unless accepted."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from adapters.bootstrap import Ledger, open_ledger
from adapters.store.chain import verify
from domain.errors import InsufficientPermission, UserClearHistory
from domain.group import ModifyGroupAction, UsagePerMonthAction
from domain.personal import ERASED
from domain.user import CreateUserAction, EraseUserAction, ModifyUserAction, User
from domain.workload import StartKernelAction, TerminateKernelAction
from tests.actions import DOMAIN, ROOT, T0, World, build_world, meta, run
from tests.adapters.store.raw import as_older_release

EMAIL = "grace.erasable@example.org"
FULL_NAME = "Grace Erasable-Hopper"
OLD_EMAIL = "grace.old.release@example.org"
OLD_NAME = "Grace Stored-In-Clear"
REASON = "GDPR article 17 request, ticket 4711"


def _subject(user: uuid.UUID) -> str:
    return f"user:{user}"


def _erase(ledger: Ledger, user: uuid.UUID, *, accept: bool = False, who: Any = ROOT) -> Any:
    action = EraseUserAction(user_id=user, reason=REASON, accept_clear_history=accept)
    return run(ledger, "user", "erase_user", action, who)


def _personal_world(ledger: Ledger) -> tuple[World, uuid.UUID]:
    """The world's user with an email and a name, a member of two groups, owning the
    world's keypair and a kernel of its own (started and ended: usage to report)."""
    world = build_world(ledger)
    modifier = {"email": EMAIL, "full_name": FULL_NAME}
    run(ledger, "user", "modify_user", ModifyUserAction(user_id=world.user, modifier=modifier))
    for group in (world.group, world.spare_group):
        add = ModifyGroupAction(group_id=group, user_update_mode="add", user_uuids=[str(world.user)])
        run(ledger, "group", "modify_group", add)
    kernel = uuid.uuid4()
    start = StartKernelAction(
        kernel_id=kernel,
        session_id=kernel,
        session_name="grace-session",
        group_id=world.group,
        domain_name=DOMAIN,
        user_id=world.user,
        access_key=world.access_key,
        occupied_slots={"cpu": "2"},
        started_at=T0,
    )
    run(ledger, "workload", "start_kernel", start)
    end = TerminateKernelAction(kernel_id=kernel, terminated_at=T0.replace(hour=5))
    run(ledger, "workload", "terminate_kernel", end)
    return world, kernel


def _no_clear_value(*found: Any) -> None:
    shown = repr(found)
    assert EMAIL not in shown and FULL_NAME not in shown, shown


def test_an_erased_user_reads_erased_and_everything_else_still_answers(ledger: Ledger) -> None:
    world, kernel = _personal_world(ledger)
    user = world.user
    assert ledger.app.keys.key(_subject(user)) is not None
    usage_before = run(ledger, "group", "usage_per_month", UsagePerMonthAction(month="202410"))
    versions = len(ledger.queries.history("user", str(user)))

    result = _erase(ledger, user)
    assert result.user.email == ERASED and result.user.full_name == ERASED and result.clear_values == 0

    assert ledger.app.keys.key(_subject(user)) is None
    history = ledger.queries.history("user", str(user))
    assert len(history) == versions + 1
    modified = next(e for e in history if e.event == "Modified")
    assert modified.changes["email"]["new"] == ERASED and modified.changes["full_name"]["new"] == ERASED
    erased = history[-1]
    assert erased.event == "Erased"
    assert erased.details["reason"] == REASON and erased.details["requested_by"] == str(ROOT.user_id)
    assert erased.details["accept_clear_history"] is False and erased.details["clear_values"] == 0
    for version in range(1, versions + 2):
        state = ledger.queries.state_at("user", str(user), version=version)
        assert state is not None and state.fields["email"] in (None, ERASED)
        assert state.fields["full_name"] in (None, ERASED)
    latest = ledger.queries.state_at("user", str(user))
    assert latest is not None and latest.fields["email"] == ERASED and latest.fields["domain_name"] == DOMAIN
    diff = ledger.queries.diff("user", str(user), from_version=1, to_version=versions + 1)
    assert diff["email"] == {"old": None, "new": ERASED}
    _no_clear_value(history, latest, diff)

    # The rest of the world is untouched and still answers.
    keypair = ledger.queries.keypair(world.access_key)
    assert keypair is not None and keypair.user_id == user
    assert ledger.queries.directory.user_keypair_count(str(user)) == 1
    for group in (world.group, world.spare_group):
        assert ledger.queries.group(group) is not None and user in ledger.queries.group_members(group)
    assert ledger.queries.user(user) is not None
    assert any(u.user_id == user for u in ledger.queries.users(DOMAIN))
    assert ledger.queries.history("kernel", str(kernel))[0].event == "Created"
    assert ledger.queries.state_at("kernel", str(kernel)) is not None
    usage_after = run(ledger, "group", "usage_per_month", UsagePerMonthAction(month="202410"))
    assert len(usage_after.result) == len(usage_before.result)
    ledger.queries.usage_totals(T0.date(), T0.date(), world.group)
    assert verify(ledger.app).ok

    # The audit record names who asked and why, and holds no personal value.
    (record,) = ledger.queries.audit_log(entity_type="user", entity_id=str(user), operation="erase")
    assert record.status == "success" and record.triggered_by == str(ROOT.user_id) and record.role == "superadmin"
    assert record.spec["reason"] == REASON and record.spec["user_id"] == str(user)
    creation = ledger.queries.audit_log(entity_type="user", entity_id=str(user), operation="modify")
    _no_clear_value(record, creation)

    # The user may be modified again: a new email is sealed under a new key.
    again = ModifyUserAction(user_id=user, modifier={"email": "grace.new@example.org"})
    assert run(ledger, "user", "modify_user", again).user.email == "grace.new@example.org"
    assert ledger.app.keys.key(_subject(user)) is not None
    latest = ledger.queries.state_at("user", str(user))
    assert latest is not None and latest.fields["email"] == "grace.new@example.org"
    assert latest.fields["full_name"] == ERASED
    assert verify(ledger.app).ok


def test_the_erasure_outlives_the_process(ledger_url: str) -> None:
    with open_ledger(ledger_url) as first:
        world, _ = _personal_world(first)
        _erase(first, world.user)
    with open_ledger(ledger_url) as again:
        assert again.app.keys.key(_subject(world.user)) is None
        state = again.queries.state_at("user", str(world.user))
        assert state is not None and state.fields["email"] == ERASED
        _no_clear_value(again.queries.history("user", str(world.user)))
        assert verify(again.app).ok


def test_only_a_superadmin_erases(ledger: Ledger) -> None:
    world, _ = _personal_world(ledger)
    for role in ("admin", "user", "service"):
        with pytest.raises(InsufficientPermission):
            _erase(ledger, world.user, who=meta(role))
    assert ledger.app.keys.key(_subject(world.user)) is not None
    found = ledger.queries.user(world.user)
    assert found is not None and found.email == EMAIL
    (denied, *_rest) = ledger.queries.audit_log(entity_type="user", entity_id=str(world.user), operation="erase")
    assert denied.status == "denied"


def _old_release_user(ledger: Ledger) -> uuid.UUID:
    """A user whose email and name were stored in clear, as a release before sealing
    wrote them: a Modified with them, and a later one that does not name its user (events
    carried no `key` then). A sealed change follows, as this release writes it."""
    user = uuid.uuid4()
    run(ledger, "user", "create_user", CreateUserAction(creator={"user_id": user, "domain_name": DOMAIN}))
    app = ledger.app
    with as_older_release(app):
        stored = app.get(User.id_for(str(user)), User)
        assert stored is not None
        stored.modify({"email": OLD_EMAIL, "full_name": OLD_NAME})
        app.save(stored)
        stored.modify({"email": "grace.older@example.org"})
        vars(stored.pending_events[0]).pop("key")  # stored as the old release wrote it
        app.save(stored)
    assert OLD_EMAIL.encode() in b"".join(e.state for e in app.recorder.select_events(User.id_for(str(user))))
    modifier = {"full_name": FULL_NAME}
    run(ledger, "user", "modify_user", ModifyUserAction(user_id=user, modifier=modifier))
    return user


def test_clear_history_is_refused_unless_accepted(ledger: Ledger) -> None:
    build_world(ledger)
    user = _old_release_user(ledger)

    with pytest.raises(UserClearHistory) as refused:
        _erase(ledger, user)
    message = refused.value.message
    assert "2 stored events" in message and "4 personal values" in message and "accept_clear_history" in message
    assert refused.value.code == "user_erase_clear_history"
    assert ledger.app.keys.key(_subject(user)) is not None  # nothing erased
    (failed,) = ledger.queries.audit_log(entity_type="user", entity_id=str(user), operation="erase")
    assert failed.status == "error" and failed.error_code == "user_erase_clear_history"

    result = _erase(ledger, user, accept=True)
    assert result.clear_values == 4
    assert ledger.app.keys.key(_subject(user)) is None
    history = ledger.queries.history("user", str(user))
    assert history[-1].details["accept_clear_history"] is True and history[-1].details["clear_values"] == 4
    # What was sealed is gone; what the old release stored in clear stays, as accepted.
    assert history[-2].changes["full_name"] == {"old": ERASED, "new": ERASED}
    assert history[1].changes["email"]["new"] == OLD_EMAIL
    latest = ledger.queries.state_at("user", str(user))
    assert latest is not None and latest.fields["full_name"] == ERASED and latest.fields["email"] == ERASED
    assert verify(ledger.app).ok


def test_a_deleted_user_is_erased_and_an_unknown_one_is_not_found(ledger: Ledger) -> None:
    world = build_world(ledger)
    from domain.errors import ObjectNotFound
    from domain.user import DeleteUserAction

    modifier = {"email": EMAIL, "full_name": FULL_NAME}
    run(ledger, "user", "modify_user", ModifyUserAction(user_id=world.spare_user, modifier=modifier))
    run(ledger, "user", "delete_user", DeleteUserAction(user_id=world.spare_user))
    _erase(ledger, world.spare_user)
    assert ledger.app.keys.key(_subject(world.spare_user)) is None
    _no_clear_value(ledger.queries.history("user", str(world.spare_user)))
    with pytest.raises(ObjectNotFound) as missing:
        _erase(ledger, uuid.uuid4())
    assert missing.value.code == "user_not_found"


def test_clear_values_in_older_audit_records_and_snapshots_are_counted(ledger: Ledger) -> None:
    """An older release also wrote the action's audit record and the user's snapshots in
    clear: each is a stored copy the erasure cannot remove, so each is counted."""
    build_world(ledger)
    user = uuid.uuid4()
    run(ledger, "user", "create_user", CreateUserAction(creator={"user_id": user, "domain_name": DOMAIN}))
    app = ledger.app
    with as_older_release(app):
        # Through the processor: the user's Modified and the audit record, both in clear.
        run(ledger, "user", "modify_user", ModifyUserAction(user_id=user, modifier={"email": OLD_EMAIL}))
        stored = app.get(User.id_for(str(user)), User)
        assert stored is not None and app.snapshots is not None
        app.snapshots.put([User.Snapshot.take(stored)])  # type: ignore[attr-defined]

    with pytest.raises(UserClearHistory) as refused:
        _erase(ledger, user)
    assert "3 stored events" in refused.value.message and "3 personal values" in refused.value.message
    assert _erase(ledger, user, accept=True).clear_values == 3


def test_an_erased_user_given_new_values_reads_its_old_ones_erased_without_a_tamper_warning(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    """After an erasure a modify makes the user a new key; reading the history then
    warned that the values sealed under the erased key were tampered with."""
    from adapters.store.sealing import failed_openings

    world, _ = _personal_world(ledger)
    _erase(ledger, world.user, accept=True)
    renewed = {"email": "grace.renewed@example.org"}
    run(ledger, "user", "modify_user", ModifyUserAction(user_id=world.user, modifier=renewed))
    ledger.app.cache.clear()
    before = failed_openings()
    with caplog.at_level("WARNING"):
        history = ledger.queries.history("user", str(world.user))
        changed = [e.changes for e in history]
    assert failed_openings() == before and "tampered" not in caplog.text
    _no_clear_value(changed)
    assert any((c.get("email") or {}).get("new") == "grace.renewed@example.org" for c in changed), changed
    assert any((c.get("email") or {}).get("new") == ERASED for c in changed), changed
    assert verify(ledger.app).ok


def test_the_erasure_reaches_the_read_models_and_the_files_at_once(ledger_url: str, tmp_path: Any) -> None:
    """The read models held the erased values in clear until a later read caught them up,
    and a SQLite file's WAL kept the old rows while the process stayed open."""
    import sqlalchemy as sa

    with open_ledger(ledger_url) as ledger:
        world, _ = _personal_world(ledger)
        assert ledger.queries.user(world.user) is not None  # the read models hold the values now
        _erase(ledger, world.user, accept=True)
        # No read after the erasure: what the read models hold is what the erasure left.
        with ledger.read_models.engine.connect() as conn:
            tables = [t for t in sa.inspect(conn).get_table_names() if not t.startswith("projection_")]
            rows = [tuple(row) for t in tables for row in conn.execute(sa.text(f'SELECT * FROM "{t}"'))]
        _no_clear_value(rows)
        path = ledger.config.sqlite_path
        if path is not None:  # and nothing of them in the database file or its WAL
            wal = path.with_name(path.name + "-wal")
            stored = path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
            assert EMAIL.encode() not in stored and FULL_NAME.encode() not in stored


class _Killed(Exception):
    """Stands for a `projections rebuild --force` killed midway."""


def test_the_erasure_reaches_a_forced_rebuild_left_midway(ledger: Ledger) -> None:
    """A forced rebuild killed (or still running) past the user's values kept them in clear
    in its own tables: the erasure caught up the active versions only."""
    import sqlalchemy as sa

    world, _ = _personal_world(ledger)
    runner = ledger.runner
    builds = runner.force([ledger.projections.users, ledger.projections.audit])

    def killed_near_the_head(position: int, head: int) -> None:
        if position >= head - 4:  # past the user's modify, short of the head
            raise _Killed

    runner.batch_size = 2
    with pytest.raises(_Killed):
        runner.catch_up(builds, killed_near_the_head)
    runner.batch_size = 1000
    _erase(ledger, world.user)
    with ledger.read_models.engine.connect() as conn:
        tables = [t for t in sa.inspect(conn).get_table_names() if not t.startswith("projection_")]
        assert any("r1_" in t for t in tables) or not runner.builds()  # the build's tables were scanned
        rows = [tuple(row) for t in tables for row in conn.execute(sa.text(f'SELECT * FROM "{t}"'))]
    _no_clear_value(rows)


class _Died(BaseException):
    """Stands for the erasing process killed (no handler of the ledger's catches it)."""


def test_the_read_models_served_follow_the_erasure_before_a_forced_rebuild_left_midway(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a forced rebuild left far behind, the erasure caught it up together with the
    active versions, batch by batch from the build's position: the served rows kept the
    erased values in clear until the whole rebuild was done (minutes on a large ledger),
    and for good if the erasing process died during it."""
    world, _ = _personal_world(ledger)
    runner = ledger.runner
    runner.catch_up()
    (build,) = runner.force([ledger.projections.users])

    def killed_early(position: int, _head: int) -> None:
        if position >= 4:
            raise _Killed

    runner.batch_size = 2
    with pytest.raises(_Killed):
        runner.catch_up([build], killed_early)

    def died(*_args: Any) -> None:
        raise _Died

    monkeypatch.setattr(build, "apply_batch", died)  # the process dies while it catches the build up
    with pytest.raises(_Died):
        _erase(ledger, world.user)
    rows = ledger.projections.users.rows
    with ledger.read_models.connect() as conn:  # as the erasure left them: no catch-up
        served = conn.execute(sa.select(rows.c.fields).where(rows.c.key == str(world.user))).scalar_one()
    _no_clear_value(served)


def test_a_past_state_read_by_another_process_after_the_erasure_reads_erased(ledger_url: str) -> None:
    """A process that had read the user (its data key cached) answered a state at a past
    version or time, and the user's history, in clear after another process erased the
    user: it forgot the key only when its own catch-up decoded the erasing event, and the
    read models' positions, shared by every process, had been moved past it."""
    with open_ledger(ledger_url) as reader, open_ledger(ledger_url) as eraser:
        world, _ = _personal_world(reader)
        user = str(world.user)
        before = reader.queries.state_at("user", user)
        assert before is not None and before.fields["email"] == EMAIL  # the key is cached now
        moment = before.recorded_at
        _erase(eraser, world.user)  # which catches the read models up past the erasure
        reader.runner.refresh()  # as `projections status` does: the reader sees them there
        _no_clear_value(reader.queries.history("user", user))
        past = reader.queries.state_at("user", user, version=before.version)
        assert past is not None and past.fields["email"] == ERASED
        _no_clear_value(
            past,
            reader.queries.state_at("user", user, at=moment),
            reader.queries.diff("user", user, from_version=1, to_version=before.version),
        )


def test_the_erasure_reaches_the_tables_a_rebuild_replaced(ledger: Ledger) -> None:
    """On SQLite a version or rebuild swapped in by a catch-up leaves the tables it replaced
    renamed `replaced_…` until a later drop: they kept the user's values in clear after the
    erasure (on PostgreSQL they are dropped in the swap)."""
    import sqlalchemy as sa

    world, _ = _personal_world(ledger)
    runner = ledger.runner
    runner.catch_up()  # the active tables hold the values, then are replaced
    runner.catch_up(runner.force([ledger.projections.users, ledger.projections.audit]))  # swapped in, not dropped
    _erase(ledger, world.user)
    with ledger.read_models.engine.connect() as conn:
        tables = [t for t in sa.inspect(conn).get_table_names() if not t.startswith("projection_")]
        rows = [tuple(row) for t in tables for row in conn.execute(sa.text(f'SELECT * FROM "{t}"'))]
    _no_clear_value(rows)

"""Erasing a user or group id that names no entity (docs/ERASURE.md, "A subject without an
entity"), on both backends. A refused `user create` seals its input (the email, the full
name) in its audit record under the id's key `user:<id>`, a refused `group create` its
description under `group:<id>` (the id the audit trail names); no entity's stream exists to
erase, so that key, and the refused input with it, outlived every erasure. `user erase` and
`group purge` of such an id now destroy the key in their own append (a `SubjectErasure`),
through the processor: superadmin only, audited, and followed by the read models, a
rebuild and `verify`."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from adapters.bootstrap import Ledger, open_ledger
from adapters.store.chain import verify
from domain.errors import InsufficientPermission, ObjectNotFound
from domain.group import CreateGroupAction, PurgeGroupAction
from domain.personal import ERASED
from domain.user import CreateUserAction, EraseUserAction
from tests.actions import DOMAIN, ROOT, build_world, meta, run

EMAIL = "refused.person@example.org"
FULL_NAME = "Refused Never-Created"
REASON = "GDPR article 17 request, ticket 4712"
DESCRIPTION = "Refused group of Jane Personal-Description"


def _subject(user: uuid.UUID) -> str:
    return f"user:{user}"


def _refused_create(ledger: Ledger, user: uuid.UUID, email: str = EMAIL) -> None:
    """A create refused by the ledger (its domain does not exist): only its audit record,
    which seals the input under the id's key, is stored."""
    creator = {"user_id": str(user), "domain_name": "no-such-domain", "email": email, "full_name": FULL_NAME}
    with pytest.raises(ObjectNotFound) as refused:
        run(ledger, "user", "create_user", CreateUserAction(creator=creator))
    assert refused.value.code == "domain_not_found"


def _erase(ledger: Ledger, user: uuid.UUID, who: Any = ROOT) -> Any:
    return run(ledger, "user", "erase_user", EraseUserAction(user_id=user, reason=REASON), who)


def _records(ledger: Ledger, user: uuid.UUID, operation: str) -> list[Any]:
    return list(ledger.queries.audit_log(entity_type="user", entity_id=str(user), operation=operation))


def _no_clear_value(*found: Any) -> None:
    shown = repr(found)
    assert EMAIL not in shown and FULL_NAME not in shown and DESCRIPTION not in shown, shown


def _read_model_rows(ledger: Ledger) -> list[tuple[Any, ...]]:
    with ledger.read_models.engine.connect() as conn:
        tables = [t for t in sa.inspect(conn).get_table_names() if not t.startswith("projection_")]
        return [tuple(row) for t in tables for row in conn.execute(sa.text(f'SELECT * FROM "{t}"'))]


def test_a_refused_create_s_input_is_erased_by_erasing_its_id(ledger: Ledger) -> None:
    build_world(ledger)
    user = uuid.uuid4()
    _refused_create(ledger, user)
    assert ledger.app.keys.key(_subject(user)) is not None
    (create,) = _records(ledger, user, "create")
    assert create.spec["creator"]["email"] == EMAIL  # what the auditor found: readable for good

    result = _erase(ledger, user)
    assert result.user is None and result.user_id == str(user) and result.clear_values == 0

    assert ledger.app.keys.key(_subject(user)) is None
    (create,) = _records(ledger, user, "create")
    assert create.spec["creator"]["email"] == ERASED and create.spec["creator"]["full_name"] == ERASED
    (erase,) = _records(ledger, user, "erase")
    assert erase.status == "success" and erase.triggered_by == str(ROOT.user_id)
    assert erase.spec["reason"] == REASON
    _no_clear_value(ledger.queries.audit_log(entity_id=str(user)), _read_model_rows(ledger))
    assert ledger.queries.user(user) is None  # no user came of it
    report = verify(ledger.app)
    assert report.ok, report

    # Nothing is left to erase: the id is unknown again.
    with pytest.raises(ObjectNotFound) as missing:
        _erase(ledger, user)
    assert missing.value.code == "user_not_found"


def test_an_id_with_neither_user_nor_key_stays_not_found(ledger: Ledger) -> None:
    build_world(ledger)
    user = uuid.uuid4()
    with pytest.raises(ObjectNotFound) as missing:
        _erase(ledger, user)
    assert missing.value.code == "user_not_found"
    assert ledger.app.keys.key(_subject(user)) is None


def test_only_a_superadmin_erases_a_refused_create_s_input(ledger: Ledger) -> None:
    build_world(ledger)
    user = uuid.uuid4()
    _refused_create(ledger, user)
    for role in ("admin", "user", "service"):
        with pytest.raises(InsufficientPermission):
            _erase(ledger, user, who=meta(role))
    assert ledger.app.keys.key(_subject(user)) is not None
    assert all(record.status == "denied" for record in _records(ledger, user, "erase"))


def test_the_id_is_erased_again_after_a_later_refusal_and_can_then_be_created(ledger: Ledger) -> None:
    """A user erased keeps its id usable (a later value gets a new key): so does an id erased
    without a user. Each refusal sealed under a new key is erased by the next erasure."""
    build_world(ledger)
    user = uuid.uuid4()
    _refused_create(ledger, user)
    _erase(ledger, user)
    _refused_create(ledger, user, email="second." + EMAIL)
    assert ledger.app.keys.key(_subject(user)) is not None  # a new key for the new refusal
    _erase(ledger, user)
    assert ledger.app.keys.key(_subject(user)) is None
    for record in _records(ledger, user, "create"):
        assert record.spec["creator"]["email"] == ERASED
    assert [r.status for r in _records(ledger, user, "erase")] == ["success", "success"]

    creator = {"user_id": str(user), "domain_name": DOMAIN, "email": "new.owner@example.org"}
    created = run(ledger, "user", "create_user", CreateUserAction(creator=creator)).user
    assert created.email == "new.owner@example.org"
    found = ledger.queries.user(user)
    assert found is not None and found.email == "new.owner@example.org"
    assert verify(ledger.app).ok


def test_the_erasure_outlives_the_process_and_a_rebuild(ledger_url: str) -> None:
    user = uuid.uuid4()
    with open_ledger(ledger_url) as first:
        build_world(first)
        _refused_create(first, user)
        first.queries.audit_log(entity_id=str(user))  # the audit trail holds the input now
        with open_ledger(ledger_url) as second:  # another process's cached key is dropped too
            assert second.app.keys.key(_subject(user)) is not None
            _erase(first, user)
            _no_clear_value(second.queries.audit_log(entity_id=str(user)))
    with open_ledger(ledger_url) as again:
        runner = again.runner
        projections = again.projections
        runner.catch_up(runner.force([projections.audit, projections.history, projections.users]))
        _no_clear_value(again.queries.audit_log(entity_id=str(user)), _read_model_rows(again))
        assert again.queries.user(user) is None
        assert verify(again.app).ok


def _refused_group(ledger: Ledger) -> uuid.UUID:
    """A group create refused (its domain does not exist), the id chosen by the ledger: the
    operator learns it from the audit trail, where the refusal is recorded."""
    create = CreateGroupAction(input={"name": "refused", "domain_name": "no-such-domain", "description": DESCRIPTION})
    with pytest.raises(ObjectNotFound):
        run(ledger, "group", "create_group", create)
    (record,) = [r for r in ledger.queries.audit_log(entity_type="group", operation="create") if r.status == "error"]
    assert record.spec["input"]["description"] == DESCRIPTION
    return uuid.UUID(record.entity_id)


def test_a_refused_group_create_s_input_is_erased_by_purging_its_id(ledger: Ledger) -> None:
    world = build_world(ledger)
    group = _refused_group(ledger)
    assert ledger.app.keys.key(f"group:{group}") is not None
    purge = PurgeGroupAction(group_id=group)
    with pytest.raises(ObjectNotFound) as hidden:  # an admin's purge of it stays "not found"
        run(ledger, "group", "purge_group", purge, meta("admin"))
    assert hidden.value.code == "group_not_found"
    assert ledger.app.keys.key(f"group:{group}") is not None

    result = run(ledger, "group", "purge_group", purge)
    assert result.data is None and result.group_id == group
    assert ledger.app.keys.key(f"group:{group}") is None
    (create,) = [r for r in ledger.queries.audit_log(entity_id=str(group), operation="create")]
    assert create.spec["input"]["description"] == ERASED
    _no_clear_value(ledger.queries.audit_log(entity_id=str(group)), _read_model_rows(ledger))
    assert verify(ledger.app).ok
    with pytest.raises(ObjectNotFound) as missing:  # nothing left to erase
        run(ledger, "group", "purge_group", purge)
    assert missing.value.code == "group_not_found"

    # The id stays usable, under a new key; the live groups are untouched.
    again = CreateGroupAction(input={"name": "now-real", "domain_name": DOMAIN, "description": "d"}, group_id=group)
    assert run(ledger, "group", "create_group", again).data.description == "d"
    assert ledger.queries.group(world.group) is not None


def test_a_user_created_racing_the_erasure_reads_erased_in_its_row_as_in_a_rebuild(ledger: Ledger) -> None:
    """The erasure is decided when no stream holds the id; a create racing it sealed the new
    user's values under the key it then destroyed. Stood for here by storing the erasure
    after the create, as such a race commits them: the users row must read what a rebuild
    reads (the values erased), not keep them in clear."""
    from domain.erasure import SubjectErasure

    build_world(ledger)
    user = uuid.uuid4()
    creator = {"user_id": str(user), "domain_name": DOMAIN, "email": EMAIL, "full_name": FULL_NAME}
    run(ledger, "user", "create_user", CreateUserAction(creator=creator))
    found = ledger.queries.user(user)
    assert found is not None and found.email == EMAIL
    ledger.app.save(SubjectErasure.erase(None, _subject(user), REASON, None, False, 0))

    live = ledger.queries.user(user)
    assert live is not None and (live.email, live.full_name) == (ERASED, ERASED)
    _no_clear_value(_read_model_rows(ledger))
    runner = ledger.runner
    runner.catch_up(runner.force([ledger.projections.users]))
    assert ledger.queries.user(user) == live
    assert verify(ledger.app).ok


def test_a_group_created_racing_the_purge_of_its_id_reads_erased_in_reads_commands_and_a_rebuild(
    ledger: Ledger,
) -> None:
    """As above, for a group created with a chosen id while a superadmin purged that id
    (which then named no group): its dotfiles sealed under the destroyed key read
    `[erased]`, which did not decode, so reading the group, a command on it and a rebuild
    of the groups read model failed, and its row kept the values in clear."""
    from domain.erasure import SubjectErasure
    from domain.group import ModifyGroupAction

    world = build_world(ledger)
    group = uuid.uuid4()
    fields = {
        "name": "raced",
        "domain_name": DOMAIN,
        "description": DESCRIPTION,
        "dotfiles": "c2VjcmV0LWRvdGZpbGU=",
        "container_registry": {"registry": "reg.example.org", "project": "jane-personal"},
    }
    run(ledger, "group", "create_group", CreateGroupAction(input=fields, group_id=group))
    ledger.app.save(SubjectErasure.erase(None, f"group:{group}", REASON, None, False, 0))

    live = ledger.queries.group(group)
    assert live is not None
    assert (live.description, live.dotfiles, live.container_registry) == (ERASED, b"", None)
    _no_clear_value(_read_model_rows(ledger))
    modify = ModifyGroupAction(group_id=group, modifier={"description": "after"})
    assert run(ledger, "group", "modify_group", modify).data.description == "after"
    runner = ledger.runner
    runner.catch_up(runner.force([ledger.projections.groups]))
    rebuilt = ledger.queries.group(group)
    assert rebuilt is not None and rebuilt.description == "after" and rebuilt.dotfiles == b""
    assert ledger.queries.group(world.group) is not None
    assert verify(ledger.app).ok

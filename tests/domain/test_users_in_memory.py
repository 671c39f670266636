"""Users on the in-memory store: a user names a live, active domain and is recorded on
it; default policies must be live and, for an admin, allowed by the domain; a user
owning keypairs is not deleted; hostile input is refused with the field named."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from domain.actions import ActionTriggerMeta, action_context
from domain.domains import CreateDomainAction, DeleteDomainAction, Domain, DomainService, ModifyDomainAction
from domain.errors import (
    DomainNotActive,
    DomainNotEmpty,
    DuplicateUser,
    ObjectNotFound,
    PolicyNotAllowedInDomain,
    UserInUse,
)
from domain.keypair_resource_policy import CreateKeyPairResourcePolicyAction, KeyPairResourcePolicyService
from domain.shown import shown
from domain.user import (
    CreateUserAction,
    DeleteUserAction,
    ModifyUserAction,
    User,
    UserCreator,
    UserData,
    UserModifier,
    UserService,
)
from domain.user.service import user_data
from domain.user.types import MAX_EMAIL, MAX_FULL_NAME
from tests.domain.fakes import InMemoryStore
from tests.domain.inputs import HUGE, refused

U1 = uuid.UUID("00000000-0000-0000-0000-0000000000a1")
U2 = uuid.UUID("00000000-0000-0000-0000-0000000000a2")


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


@pytest.fixture
def store() -> InMemoryStore:
    store = InMemoryStore()
    create_domain(store, "d")
    return store


def create_domain(store: InMemoryStore, name: str, **fields: Any) -> None:
    run(DomainService(store).create_domain(CreateDomainAction(creator={"name": name, **fields})))


def create_policy(store: InMemoryStore, name: str) -> None:
    action = CreateKeyPairResourcePolicyAction(creator={"name": name})
    run(KeyPairResourcePolicyService(store).create_keypair_resource_policy(action))


def create(store: InMemoryStore, user_id: uuid.UUID = U1, domain_name: str = "d", **fields: Any) -> UserData:
    action = CreateUserAction(creator={"user_id": user_id, "domain_name": domain_name, **fields})
    return run(UserService(store).create_user(action)).user


def modify(store: InMemoryStore, user_id: uuid.UUID = U1, **fields: Any) -> Any:
    return run(UserService(store).modify_user(ModifyUserAction(user_id=user_id, modifier=fields)))


def delete(store: InMemoryStore, user_id: uuid.UUID = U1) -> UserData:
    return run(UserService(store).delete_user(DeleteUserAction(user_id=user_id))).user


def stored(store: InMemoryStore, user_id: uuid.UUID = U1) -> UserData:
    user = store.get(User.id_for(str(user_id)), User)
    assert user is not None
    return user_data(user)


@contextmanager
def acting_as(role: str) -> Iterator[None]:
    meta = ActionTriggerMeta(user_id=None, access_key="AK-ACTOR", role=role, domain_name="d")
    with action_context(meta, "user", "create"):
        yield


# Create, modify, delete


def test_a_user_is_created_in_a_domain_and_recorded_on_it(store: InMemoryStore) -> None:
    data = create(store, email="Kim@Example.com", full_name="김 민수 (Kim)")
    assert (data.user_id, data.domain_name, data.email, data.full_name) == (U1, "d", "Kim@Example.com", "김 민수 (Kim)")
    assert data.default_keypair_resource_policy is None
    assert stored(store) == data
    assert json.loads(json.dumps(data.to_json()))["user_id"] == str(U1)
    assert store.events(User.id_for(str(U1))) == ["Created"]
    assert store.events(Domain.id_for("d"))[-1] == "UserAdded"
    assert User.id_for(str(U1)) != U1  # a user id never names another kind's stream


def test_the_domain_must_exist_be_live_and_active(store: InMemoryStore) -> None:
    with pytest.raises(ObjectNotFound, match="domain 'typo' not found") as missing:
        create(store, domain_name="typo")
    assert (missing.value.entity_type, missing.value.entity_id) == ("domain", "typo")
    assert store.events(User.id_for(str(U1))) == []  # nothing stored by the refusal
    run(DomainService(store).modify_domain(ModifyDomainAction(domain_name="d", modifier={"is_active": False})))
    with pytest.raises(DomainNotActive) as inactive:
        create(store)
    assert inactive.value.code == "domain_add_user_inactive"
    create_domain(store, "gone")
    run(DomainService(store).delete_domain(DeleteDomainAction(domain_name="gone")))
    with pytest.raises(ObjectNotFound, match="domain 'gone' not found"):
        create(store, domain_name="gone")


def test_a_live_user_is_a_duplicate_and_a_deleted_one_comes_back_anywhere(store: InMemoryStore) -> None:
    create(store)
    with pytest.raises(DuplicateUser) as duplicate:
        create(store)
    assert duplicate.value.code == "user_create_duplicate_id"
    assert delete(store).user_id == U1
    create_domain(store, "other")
    assert create(store, domain_name="other").domain_name == "other"
    assert store.events(User.id_for(str(U1))) == ["Created", "Deleted", "Recreated"]
    assert store.events(Domain.id_for("d"))[-2:] == ["UserAdded", "UserRemoved"]


def test_a_domain_with_users_is_not_deleted_until_they_are(store: InMemoryStore) -> None:
    create(store)
    create(store, U2)
    domains = DomainService(store)
    with pytest.raises(DomainNotEmpty, match="2 user"):
        run(domains.delete_domain(DeleteDomainAction(domain_name="d")))
    delete(store)
    delete(store, U2)
    run(domains.delete_domain(DeleteDomainAction(domain_name="d")))
    with pytest.raises(ObjectNotFound, match=r"user .* not found") as missing:
        modify(store, full_name="x")
    assert (missing.value.entity_type, missing.value.entity_id) == ("user", str(U1))


def finish(coroutine: Any) -> Any:
    """Runs a coroutine that never awaits (every service method) inside a running loop."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("the coroutine awaited")


class InterleavingStore(InMemoryStore):
    """Runs `between` once, right after a command first loads `watched`: another writer
    acting between this command's read and its save."""

    def __init__(self, watched: uuid.UUID) -> None:
        super().__init__()
        self.watched = watched
        self.between: Callable[[], None] | None = None

    def get(self, aggregate_id: uuid.UUID, cls: type[Any]) -> Any:
        found = super().get(aggregate_id, cls)
        between, self.between = self.between, None
        if between is not None and aggregate_id == self.watched:
            between()
        elif between is not None:
            self.between = between
        return found


def test_a_user_created_while_the_domain_is_deleted_keeps_it() -> None:
    store = InterleavingStore(Domain.id_for("d"))
    create_domain(store, "d")
    action = CreateUserAction(creator={"user_id": U1, "domain_name": "d"})
    store.between = lambda: finish(UserService(store).create_user(action))
    with pytest.raises(DomainNotEmpty, match="1 user"):
        run(DomainService(store).delete_domain(DeleteDomainAction(domain_name="d")))  # retried, then refused
    assert store.events(Domain.id_for("d")) == ["Created", "UserAdded"]


def test_modify_records_only_real_changes_and_nullifies(store: InMemoryStore) -> None:
    create(store, email="a@b.c")
    assert modify(store, email="a@b.c").changed is False
    result = modify(store, email=None, full_name="New Name")
    assert result.changed is True
    assert (result.user.email, result.user.full_name) == (None, "New Name")
    assert stored(store) == result.user
    assert store.events(User.id_for(str(U1))) == ["Created", "Modified"]


def test_a_user_owning_keypairs_is_not_deleted(store: InMemoryStore) -> None:
    create(store)
    user = store.get(User.id_for(str(U1)), User)
    assert user is not None
    user.add_keypair("AK1")
    store.save(user)
    with pytest.raises(UserInUse, match="AK1") as refusal:
        delete(store)
    assert refusal.value.code == "user_delete_in_use"
    user = store.get(User.id_for(str(U1)), User)
    assert user is not None
    user.remove_keypair("AK1")
    user.remove_keypair("AK1")  # twice records nothing
    store.save(user)
    delete(store)
    assert store.events(User.id_for(str(U1))) == ["Created", "KeyPairAdded", "KeyPairRemoved", "Deleted"]


# Default policies


def test_the_default_policy_must_be_live(store: InMemoryStore) -> None:
    with pytest.raises(ObjectNotFound, match="default_keypair_resource_policy: keypair resource policy 'gold'"):
        create(store, default_keypair_resource_policy="gold")
    assert store.events(User.id_for(str(U1))) == []
    create_policy(store, "gold")
    assert create(store, default_keypair_resource_policy="gold").default_keypair_resource_policy == "gold"
    with pytest.raises(ObjectNotFound, match="'silver' not found"):
        modify(store, default_keypair_resource_policy="silver")
    assert modify(store, default_keypair_resource_policy=None).user.default_keypair_resource_policy is None


def test_an_admin_assigns_only_policies_the_domain_allows(store: InMemoryStore) -> None:
    create_policy(store, "gold")
    create_policy(store, "silver")
    create_domain(store, "open")  # no list: any policy
    create_domain(store, "strict", allowed_keypair_resource_policies=["silver"])
    with acting_as("admin"):
        assert create(store, U1, "open", default_keypair_resource_policy="gold").default_keypair_resource_policy
        with pytest.raises(PolicyNotAllowedInDomain, match="'gold' is not allowed in domain 'strict'") as refusal:
            create(store, U2, "strict", default_keypair_resource_policy="gold")
        assert refusal.value.code == "domain_assign_policy_policy_not_allowed"
        create(store, U2, "strict", default_keypair_resource_policy="silver")
        with pytest.raises(PolicyNotAllowedInDomain):
            modify(store, U2, default_keypair_resource_policy="gold")
        assert modify(store, U2, default_keypair_resource_policy=None).changed  # clearing is always allowed
    with acting_as("superadmin"):
        assert modify(store, U2, default_keypair_resource_policy="gold").changed
    assert modify(store, U2, full_name="no context: a direct service call").changed
    with acting_as("admin"):
        assert modify(store, U2, full_name="unrelated change, outside-list default kept").changed


# Actions


def test_actions_name_the_user_and_the_domain_they_target() -> None:
    create = CreateUserAction(creator=UserCreator(user_id=str(U1), domain_name="d"))
    modify = ModifyUserAction(user_id=str(U1), modifier={"email": None})
    delete = DeleteUserAction(user_id=U1)
    for action, operation in ((create, "create"), (modify, "modify"), (delete, "delete")):
        assert (action.entity_type(), action.operation_type(), action.entity_id()) == ("user", operation, str(U1))
        assert json.loads(json.dumps(action.spec())) == action.spec()
    assert create.target_domains() == {"d"}
    assert modify.target_domains() == delete.target_domains() == set()  # the validator reads the user's domain
    assert modify.spec() == {"user_id": str(U1), "modifier": {"email": None}}


# Input


@pytest.mark.parametrize(
    "email",
    [
        "a@b",
        "first.last+tag@example.co.kr",
        "홍길동@예시.한국",
        "x" * 64 + "@" + "h" * 63 + ".com",
        "O'Brien@ex-ample.org",
    ],
)
def test_plausible_emails_are_kept_as_given(email: str) -> None:
    assert UserCreator(user_id=U1, domain_name="d", email=email).email == email
    assert UserModifier(email=email).fields_json() == {"email": email}


@pytest.mark.parametrize(
    ("field", "raw"),
    [
        ("user_id", "not-a-uuid"),
        ("user_id", 12),
        ("user_id", None),
        ("domain_name", ""),
        ("domain_name", "d\x1b"),
        ("domain_name", "x" * 10**6),
        ("email", ""),
        ("email", "no-at-sign"),
        ("email", "@host"),
        ("email", "name@"),
        ("email", "a@b@c"),
        ("email", "a b@c"),
        ("email", "a@b c"),
        ("email", "a@b..c"),
        ("email", "a@.b"),
        ("email", "a@b."),
        ("email", "<a>@b"),
        ("email", "a@b\x00"),
        ("email", "a\u202e@b"),
        ("email", "x" * 65 + "@b"),
        ("email", "a@" + "h" * 64),
        ("email", "a@" + "h." * MAX_EMAIL),
        ("email", "a@b\n"),
        ("email", 42),
        ("email", HUGE.values[0]),
        ("email", ["a@b"]),
        ("full_name", "x" * (MAX_FULL_NAME + 1)),
        ("full_name", "x" * 10**6),
        ("full_name", "two\nlines"),
        ("full_name", "bell\x07"),
        ("full_name", "rtl\u202eoverride"),
        ("full_name", b"bytes"),
        ("default_keypair_resource_policy", ""),
        ("default_keypair_resource_policy", {"name": "gold"}),
        ("default_keypair_resource_policy", float("nan")),
    ],
    ids=lambda v: shown(v, 30),
)
def test_hostile_input_is_refused_naming_the_field(field: str, raw: Any) -> None:
    fields = {"user_id": U1, "domain_name": "d", field: raw}
    refused(UserCreator, field=field, **fields)
    refused(CreateUserAction, field=field, creator=fields)
    if field in UserModifier.model_fields and raw is not None:
        refused(UserModifier, field=field, **{field: raw})


def test_the_domain_is_not_modifiable_and_unknown_fields_are_refused() -> None:
    refused(UserModifier, field="domain_name", domain_name="other")
    refused(ModifyUserAction, field="user_id", user_id="x", modifier={})
    refused(DeleteUserAction, field="user_id")
    refused(UserCreator, field="is_admin", user_id=U1, domain_name="d", is_admin=True)

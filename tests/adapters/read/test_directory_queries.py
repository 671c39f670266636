"""Domains and users looked up and listed on SQLite and PostgreSQL: filters run in SQL,
paging with `limit`/`after` yields every live row once in key order, deleted ones are
neither shown nor listed, and bad filter values are refused naming the field."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from adapters.bootstrap import Ledger
from domain.errors import InvalidAPIParameters
from tests.adapters.directory import create_domain, create_user, delete_domain, delete_user, modify_domain

USERS = [uuid.UUID(f"{i:08x}-0000-4000-8000-{i:012x}") for i in (0xC, 0xA, 0xE, 0xB, 0xD)]


def pages(fetch: Callable[..., list[Any]], key: Callable[[Any], str], limit: int, **filters: Any) -> list[Any]:
    """Every row of a listing, following the cursor until a page comes back short."""
    found: list[Any] = []
    after: str | None = None
    while True:
        page = fetch(after=after, limit=limit, **filters)
        assert len(page) <= limit
        found += page
        if len(page) < limit:
            return found
        after = key(page[-1])


def test_a_domain_is_shown_with_its_fields_and_not_once_deleted(ledger: Ledger) -> None:
    create_domain(ledger, "lab", description="GPU lab", total_resource_slots={"cpu": "8"})
    found = ledger.queries.domain("lab")
    assert found is not None and found.name == "lab" and found.description == "GPU lab"
    assert found.total_resource_slots.to_json() == {"cpu": "8"} and found.is_active
    assert found.allowed_keypair_resource_policies is None and found.default_keypair_resource_policy is None
    assert ledger.queries.domain("Lab") is None  # names are case-sensitive
    delete_domain(ledger, "lab")
    assert ledger.queries.domain("lab") is None
    assert "lab" not in [d.name for d in ledger.queries.domains()]


def test_domains_by_prefix_and_activity_and_paged(ledger: Ledger) -> None:
    for name in ("web-1", "web-2", "Web-3", "web_x", "batch", "w%b"):
        create_domain(ledger, name)
    modify_domain(ledger, "web-2", is_active=False)
    modify_domain(ledger, "batch", is_active=False)
    queries = ledger.queries
    assert [d.name for d in queries.domains(name_prefix="web")] == ["web-1", "web-2", "web_x"]
    assert [d.name for d in queries.domains(name_prefix="web_")] == ["web_x"]  # '_' is a plain character
    assert [d.name for d in queries.domains(name_prefix="w%")] == ["w%b"]
    assert [d.name for d in queries.domains(active=False)] == ["batch", "web-2"]
    assert [d.name for d in queries.domains(name_prefix="web", active=True)] == ["web-1", "web_x"]
    assert queries.domains(name_prefix="nothing", active=True) == []
    everything = [d.name for d in queries.domains()]
    assert everything == sorted(["default", "web-1", "web-2", "Web-3", "web_x", "batch", "w%b"])
    for limit in (1, 2, 3, 7, 8):
        assert [d.name for d in pages(queries.domains, lambda d: d.name, limit)] == everything
    assert [d.name for d in pages(queries.domains, lambda d: d.name, 1, active=True)] == [
        n for n in everything if n not in ("batch", "web-2")
    ]


def test_a_user_is_shown_with_its_fields_and_not_once_deleted(ledger: Ledger) -> None:
    create_domain(ledger, "lab")
    create_user(ledger, USERS[0], "lab", email="c@example.org", full_name="Cee")
    found = ledger.queries.user(USERS[0])
    assert found is not None and found.user_id == USERS[0] and found.domain_name == "lab"
    assert (found.email, found.full_name, found.default_keypair_resource_policy) == ("c@example.org", "Cee", None)
    assert ledger.queries.user(str(USERS[0]).upper()) == found  # any spelling of the UUID
    assert ledger.queries.user(USERS[1]) is None
    delete_user(ledger, USERS[0])
    assert ledger.queries.user(USERS[0]) is None
    assert ledger.queries.users() == []


def test_users_by_domain_and_paged(ledger: Ledger) -> None:
    create_domain(ledger, "lab")
    create_domain(ledger, "lab2")
    for n, user in enumerate(USERS):
        create_user(ledger, user, "lab" if n % 2 == 0 else "lab2")
    queries = ledger.queries
    everything = sorted(USERS, key=str)
    assert [u.user_id for u in queries.users()] == everything
    in_lab = [u for n, u in enumerate(USERS) if n % 2 == 0]
    assert [u.user_id for u in queries.users("lab")] == sorted(in_lab, key=str)
    assert queries.users("nowhere") == []
    for limit in (1, 2, 5, 6):
        assert [u.user_id for u in pages(queries.users, lambda u: str(u.user_id), limit)] == everything
        paged = pages(queries.users, lambda u: str(u.user_id), limit, domain_name="lab")
        assert [u.user_id for u in paged] == sorted(in_lab, key=str)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda q: q.users(after="not-a-uuid"), "after"),
        (lambda q: q.users(domain_name=""), "domain_name"),
        (lambda q: q.users(limit=0), "limit"),
        (lambda q: q.domains(limit=0), "limit"),
        (lambda q: q.user("nope"), "user_id"),
    ],
)
def test_bad_filter_values_are_refused_naming_the_field(ledger: Ledger, call: Any, field: str) -> None:
    with pytest.raises(InvalidAPIParameters) as info:
        call(ledger.queries)
    assert info.value.field == field

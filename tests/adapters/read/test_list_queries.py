"""Policies, keypairs and groups listed with filters and a keyset cursor, on SQLite and
PostgreSQL: each filter runs in SQL, paging with `limit`/`after` yields every row once in
order, a group is found by its name in its domain, and bad filter values are refused
naming the field."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import psycopg
import pytest

from adapters.bootstrap import Ledger, open_ledger
from adapters.read.queries import group_cursor
from domain.errors import InvalidAPIParameters
from domain.keypair import CreateKeyPairAction
from tests.adapters.directory import create_domain
from tests.adapters.groups import create_group, delete_group, modify_group, purge_group
from tests.conftest import own_database
from tests.domain.fakes import ensure_user
from tests.projections.stalls import create_policy

OWNER_A = uuid.UUID("aaaaaaaa-0000-4000-8000-00000000000a")
OWNER_B = uuid.UUID("bbbbbbbb-0000-4000-8000-00000000000b")
OWNER_C = uuid.UUID("cccccccc-0000-4000-8000-00000000000c")
OWNER_D = uuid.UUID("dddddddd-0000-4000-8000-00000000000d")


def create_keypair(ledger: Ledger, access_key: str, owner: uuid.UUID, domain_name: str, policy: str) -> None:
    ensure_user(ledger.app.store, owner, domain_name)  # the owner is a user of the keypair's domain
    action = CreateKeyPairAction(access_key=access_key, user_id=owner, domain_name=domain_name, resource_policy=policy)
    asyncio.run(ledger.services.keypair.create_keypair(action))


def pages(fetch: Callable[..., list[Any]], key: Callable[[Any], str], limit: int) -> list[list[Any]]:
    """Every page of a listing, following the cursor until a page comes back short."""
    found: list[list[Any]] = []
    after: str | None = None
    while True:
        page = fetch(after=after, limit=limit)
        found.append(page)
        if len(page) < limit:
            return found
        after = key(page[-1])


def test_policies_by_prefix_and_paged(ledger: Ledger) -> None:
    for name in ("web-1", "web-2", "Web-3", "web_x", "batch", "w%b"):
        create_policy(ledger, name)
    queries = ledger.queries
    assert [p.name for p in queries.keypair_resource_policies(name_prefix="web")] == ["web-1", "web-2", "web_x"]
    # '_' and '%' are plain characters in a prefix, and case counts on both backends.
    assert [p.name for p in queries.keypair_resource_policies(name_prefix="web_")] == ["web_x"]
    assert [p.name for p in queries.keypair_resource_policies(name_prefix="w%")] == ["w%b"]
    everything = [p.name for p in queries.keypair_resource_policies()]
    assert everything == sorted(["default", "web-1", "web-2", "Web-3", "web_x", "batch", "w%b"])
    for limit in (1, 2, 3, 7, 8):
        paged = pages(queries.keypair_resource_policies, lambda p: p.name, limit)
        assert [p.name for page in paged for p in page] == everything
        assert all(len(page) <= limit for page in paged)
    assert [p.name for p in queries.keypair_resource_policies(name_prefix="web", after="web-1", limit=1)] == ["web-2"]


def test_keypairs_filtered_in_sql_and_paged(ledger: Ledger) -> None:
    create_policy(ledger, "p")
    rows = [
        ("AK1", OWNER_A, "d1", "p"),
        ("AK2", OWNER_B, "d1", "default"),
        ("AK3", OWNER_C, "d2", "p"),
        ("AK4", OWNER_D, "d2", "p"),
        ("AK5", OWNER_A, "d1", "default"),
    ]
    for row in rows:
        create_keypair(ledger, *row)
    queries = ledger.queries

    def keys(found: list[Any]) -> list[str]:
        return [k.access_key for k in found]

    assert keys(queries.keypairs(domain_name="d1")) == ["AK1", "AK2", "AK5"]
    assert keys(queries.keypairs(owner=OWNER_A)) == ["AK1", "AK5"]
    assert keys(queries.keypairs(owner=str(OWNER_B).upper())) == ["AK2"]  # any spelling of the UUID
    assert keys(queries.keypairs("p", domain_name="d2", owner=OWNER_D)) == ["AK4"]
    assert keys(queries.keypairs("p", owner=OWNER_A)) == ["AK1"]
    assert keys(queries.keypairs(domain_name="d1", owner=OWNER_C)) == []  # the filters all apply
    assert keys(queries.keypairs("default")) == ["AK2", "AK5"]
    for limit in (1, 2, 5, 6):
        paged = pages(queries.keypairs, lambda k: k.access_key, limit)
        assert [k for page in paged for k in keys(page)] == ["AK1", "AK2", "AK3", "AK4", "AK5"]
    filtered = pages(lambda **page: queries.keypairs("p", **page), lambda k: k.access_key, 1)
    assert [k for page in filtered for k in keys(page)] == ["AK1", "AK3", "AK4"]


def test_groups_filtered_and_paged_by_domain_then_name(ledger: Ledger) -> None:
    made = {
        (domain, name): create_group(ledger, name, domain)
        for domain, name in [("d1", "web-a"), ("d1", "web-b"), ("d1", "db"), ("d2", "web-a"), ("d2", "ml")]
    }
    delete_group(ledger, made["d1", "web-b"].id)  # soft-deleted: listed, inactive
    purge_group(ledger, made["d2", "ml"].id)  # purged: gone
    queries = ledger.queries

    def names(found: list[Any]) -> list[str]:
        return [group_cursor(g) for g in found]

    everything = ["d1/db", "d1/web-a", "d1/web-b", "d2/web-a"]
    assert names(queries.groups()) == everything
    assert names(queries.groups("d1", name_prefix="web")) == ["d1/web-a", "d1/web-b"]
    assert names(queries.groups(name="web-a")) == ["d1/web-a", "d2/web-a"]
    assert names(queries.groups(active=True)) == ["d1/db", "d1/web-a", "d2/web-a"]
    assert names(queries.groups(active=False)) == ["d1/web-b"]
    assert names(queries.groups("d1", active=False, name_prefix="db")) == []
    for limit in (1, 2, 3, 4, 5):
        paged = pages(queries.groups, group_cursor, limit)
        assert [g for page in paged for g in names(page)] == everything
    assert names(queries.groups(after="d1/web-b")) == ["d2/web-a"]
    assert names(queries.groups(after="d1/zzz", limit=1)) == ["d2/web-a"]  # a cursor needs no group


def test_group_by_name_in_its_domain(ledger: Ledger) -> None:
    first = create_group(ledger, "team", "d1")
    second = create_group(ledger, "team", "d2")
    assert ledger.queries.group_by_name("d1", "team") == first
    assert ledger.queries.group_by_name("d2", "team") == second
    assert ledger.queries.group_by_name("d3", "team") is None
    delete_group(ledger, first.id)
    assert ledger.queries.group_by_name("d1", "team") == ledger.queries.group(first.id)  # soft delete keeps the name
    renamed = modify_group(ledger, second.id, name="crew")
    assert ledger.queries.group_by_name("d2", "team") is None
    assert ledger.queries.group_by_name("d2", "crew") == renamed
    purge_group(ledger, first.id)
    assert ledger.queries.group_by_name("d1", "team") is None


def test_a_group_its_members_and_its_history_are_found_by_any_spelling_of_its_uuid(ledger: Ledger) -> None:
    """The commands take a group id in any spelling of the UUID (capitals, no hyphens,
    braces, a URN); `group`, `group_members`, `groups(member=)` and `history` found it
    only as stored, and answered as if it did not exist."""
    group = create_group(ledger, "team", "d1")
    modify_group(ledger, group.id, mode="add", users=[OWNER_A], description="ours")
    spellings = [str(group.id).upper(), group.id.hex, "{" + str(group.id) + "}", group.id.urn]
    stored = ledger.queries.history("group", str(group.id))
    assert len(stored) == 3  # created, members added, modified
    for spelling in spellings:
        assert ledger.queries.group(spelling) == ledger.queries.group(group.id)
        assert ledger.queries.group_members(spelling) == {OWNER_A}
        assert [e.version for e in ledger.queries.history("group", spelling)] == [e.version for e in stored]
    assert [g.id for g in ledger.queries.groups(member=str(OWNER_A).upper())] == [group.id]
    assert ledger.queries.group(str(uuid.uuid4()).upper()) is None


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda q: q.keypair_resource_policies(limit=0), "limit"),
        (lambda q: q.keypairs(limit=-1), "limit"),
        (lambda q: q.groups(limit=0), "limit"),
        (lambda q: q.keypairs(owner="not-a-uuid"), "owner"),
        (lambda q: q.keypairs(domain_name=" d1"), "domain_name"),
        (lambda q: q.groups(domain_name=""), "domain_name"),
        (lambda q: q.groups(after="no-slash"), "after"),
        (lambda q: q.groups(after="d1/"), "after"),
        (lambda q: q.groups(member="not-a-uuid"), "member"),
    ],
)
def test_bad_filter_values_are_refused_naming_them(ledger: Ledger, call: Callable[[Any], Any], field: str) -> None:
    with pytest.raises(InvalidAPIParameters) as raised:
        call(ledger.queries)
    assert raised.value.field == field


@pytest.fixture
def collated_ledger() -> Iterator[tuple[Ledger, str]]:
    """A ledger in a PostgreSQL database whose collation is ICU's en-US, as many servers'
    are (names compare case- and punctuation-blind first), where this suite's is C."""
    icu = "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'"
    with ExitStack() as stack:
        try:
            url = stack.enter_context(own_database("ledger_test_collated", icu))
        except psycopg.errors.FeatureNotSupported as exc:
            pytest.skip(f"this PostgreSQL server has no ICU collations: {exc}")
        yield stack.enter_context(open_ledger(url)), url


def test_lists_page_exactly_in_a_database_whose_collation_is_not_c(collated_ledger: tuple[Ledger, str]) -> None:
    """The README's promise: on PostgreSQL names sort by the database's collation, and
    paging still yields every row once, in that order."""
    ledger, url = collated_ledger
    names = ["web-1", "Web-3", "web_x", "web2", "_z", "a-c", "ab", "B", "b"]
    for name in names:
        create_policy(ledger, name)
        create_group(ledger, name, "default")
        create_keypair(ledger, f"AK{name}", OWNER_A, "d", name)
        create_domain(ledger, f"d{name}")
    with psycopg.connect(url) as conn:
        collated = [r[0] for r in conn.execute("SELECT n FROM unnest(%s::text[]) AS n ORDER BY n", (names,))]
    assert collated != sorted(names)  # the point of the test: not code point order
    queries = ledger.queries
    listings: list[tuple[Callable[..., list[Any]], Callable[[Any], str]]] = [
        (queries.keypair_resource_policies, lambda p: p.name),
        (queries.groups, group_cursor),
        (queries.keypairs, lambda k: k.access_key),
        (queries.domains, lambda d: d.name),
    ]
    for fetch, key in listings:
        everything = [key(item) for item in fetch()]
        for limit in (1, 2, 4):
            assert [key(item) for page in pages(fetch, key, limit) for item in page] == everything
    assert [p.name for p in queries.keypair_resource_policies() if p.name != "default"] == collated

"""A page of a list is a walk of an index range, not a scan of its whole table and a sort:
on SQLite, the plan of the statement each query runs (captured as it runs it) searches
an index in the list's order. The same calls run on PostgreSQL, whose plans depend on
its statistics, for their answers only."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from adapters.bootstrap import Ledger
from adapters.read.usage import SqlUsageReader
from domain.domains import CreateDomainAction
from domain.group import CreateGroupAction
from domain.workload import CreateVFolderAction, RecordWorkloadBatchAction
from tests.adapters.groups import create_group
from tests.adapters.kernels import T0, start, vfolder
from tests.adapters.sessions import PLATFORM, SessionWorld, run


@contextmanager
def statements(ledger: Ledger) -> Iterator[list[tuple[str, Any]]]:
    """The statements the read models run meanwhile, with their parameters."""
    found: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, many: bool) -> None:
        if not many:
            found.append((statement, parameters))

    engine = ledger.read_models.engine
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield found
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def plan(ledger: Ledger, table: sa.Table, query: Callable[[], list[Any]]) -> list[str]:
    """Runs the query (at least one row found); on SQLite, the plan of its one statement
    that lists `table` in an order (else none)."""
    query()  # caught up first: the catch-up's own statements are not the query's
    with statements(ledger) as found:
        assert query()
    if ledger.read_models.engine.dialect.name != "sqlite":
        return []
    ours = [(sql, params) for sql, params in found if "ORDER BY" in sql and f"FROM {table.name}" in sql]
    assert len(ours) == 1, found
    return explained(ledger, *ours[0])


def explained(ledger: Ledger, sql: str, params: Any) -> list[str]:
    """SQLite's plan of one statement, a step per line."""
    with ledger.read_models.connect() as conn:
        return [row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)]


def assert_index_walk(steps: list[str], filtered: bool = True) -> None:
    """No sort, and no table walked whole (`SCAN t`, in rowid or any index's order) for a
    filtered list. Unfiltered, the walk of the index in the list's order (no sort) stops
    at the page's end."""
    walks = [s for s in steps if s.startswith("SCAN ")]
    assert not [s for s in steps if "TEMP B-TREE" in s], steps
    assert not (walks if filtered else [s for s in walks if " USING " not in s]), steps


@pytest.fixture
def kernels(ledger: Ledger) -> Ledger:
    group = create_group(ledger, "g").id
    for i in range(4):
        start(ledger, group, T0 + timedelta(minutes=i), access_key=f"AK{i % 2}")
    return ledger


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"access_key": "AK1"},
        {"domain_name": "default"},
        {"status": "RUNNING"},
        {"status": "RUNNING", "domain_name": "default"},
        {"group_id": "GROUP"},
    ],
    ids=lambda f: "-".join(f) or "all",
)
def test_a_page_of_kernels_walks_an_index(kernels: Ledger, filters: dict[str, Any]) -> None:
    """In the list's order, the position of each kernel's start, alone and after each
    filter: no sort (a status alone was a search of the status and a sort of its kernels)."""
    q = kernels.queries
    first = q.kernels(limit=1)[0]
    values = {name: first.group_id if value == "GROUP" else value for name, value in filters.items()}
    table = kernels.projections.usage.kernels
    assert_index_walk(plan(kernels, table, lambda: q.kernels(limit=2, **values)), filtered=bool(values))
    after = q.kernels(limit=1, **values)[0].kernel_id
    # A cursor starts the walk where it stands (not at the list's start, walked up to it).
    assert_index_walk(plan(kernels, table, lambda: q.kernels(limit=2, after=after, **values)))


def test_a_page_of_a_users_kernels_walks_an_index(kernels: Ledger) -> None:
    q = kernels.queries
    user = q.kernels(limit=1)[0].user_id
    assert_index_walk(plan(kernels, kernels.projections.usage.kernels, lambda: q.kernels(limit=2, user_id=user)))


def test_a_page_of_vfolders_walks_an_index(ledger: Ledger) -> None:
    groups = [create_group(ledger, name).id for name in ("a", "b")]
    for i in range(4):
        vfolder(ledger, groups[i % 2], f"v{i}")
    q, table = ledger.queries, ledger.projections.usage.vfolders
    assert_index_walk(plan(ledger, table, lambda: q.vfolders(group_id=groups[1], limit=1)))
    assert_index_walk(plan(ledger, table, lambda: q.vfolders(limit=1)), filtered=False)
    after = q.vfolders(group_id=groups[0], limit=1)[0].vfolder_id
    assert_index_walk(plan(ledger, table, lambda: q.vfolders(group_id=groups[0], limit=1, after=after)))


def test_a_page_of_sessions_walks_an_index(ledger: Ledger) -> None:
    world = SessionWorld(ledger)
    for _ in range(3):
        world.enqueue()
    q, table = ledger.queries, ledger.projections.sessions.rows
    assert_index_walk(plan(ledger, table, lambda: q.sessions(limit=2)), filtered=False)
    assert_index_walk(plan(ledger, table, lambda: q.sessions(limit=2, domain_name="d")))
    after = q.sessions(limit=1)[0].session_id
    assert_index_walk(plan(ledger, table, lambda: q.sessions(limit=2, after=after)))


@pytest.mark.parametrize("newest_first", [True, False], ids=["newest_first", "oldest_first"])
def test_a_page_of_a_domains_audit_trail_walks_an_index(ledger: Ledger, newest_first: bool) -> None:
    world = SessionWorld(ledger)
    for _ in range(3):
        world.enqueue()
    q, table = ledger.queries, ledger.projections.audit.domains
    page = lambda **more: q.audit_log(domain_name="d", limit=2, newest_first=newest_first, **more)  # noqa: E731
    assert_index_walk(plan(ledger, table, page))
    cursor = page()[0].position
    assert_index_walk(plan(ledger, table, lambda: page(after=cursor)))
    assert_index_walk(plan(ledger, table, lambda: page(since=T0 - timedelta(days=365 * 50))))


@pytest.mark.parametrize("newest_first", [True, False], ids=["newest_first", "oldest_first"])
def test_a_page_of_the_whole_audit_trail_walks_it_in_position_order(ledger: Ledger, newest_first: bool) -> None:
    """The trail is in the order recorded: a page, a page after a cursor and a page of a
    window walk the entries' key (their position) and stop at the page's end; an index on
    the start made a window's page a sort of the whole window."""
    world = SessionWorld(ledger)
    for _ in range(3):
        world.enqueue()
    q, table = ledger.queries, ledger.projections.audit.entries
    page = lambda **more: q.audit_log(limit=2, newest_first=newest_first, **more)  # noqa: E731
    cursor = page()[0].position
    for query in (page, lambda: page(after=cursor), lambda: page(since=T0 - timedelta(days=365 * 50))):
        steps = plan(ledger, table, query)
        assert not [s for s in steps if "TEMP B-TREE" in s or " USING INDEX " in s], steps


def test_an_entitys_audit_trail_is_found_by_index(ledger: Ledger) -> None:
    world = SessionWorld(ledger)
    session = world.enqueue()
    for _ in range(3):
        world.enqueue()
    q, table = ledger.queries, ledger.projections.audit.entries
    steps = plan(ledger, table, lambda: q.audit_log(entity_id=str(session), limit=2))
    # The entity's own rows are found by index (by its id, and by the batches that name
    # it), then put in order: a sort of its trail, never a walk of the whole table.
    assert not [s for s in steps if s.startswith("SCAN ")], steps


def test_an_admins_page_holding_a_shared_batch_looks_up_its_other_domains_by_index(ledger: Ledger) -> None:
    """A page of a domain's trail that holds a batch of the platform's facts of several
    domains asks which other domains each such batch concerns, by the batch's position (and
    an entity id search asks it of the batches that touched the entity): with the domains
    indexed by domain first, SQLite walked the whole table of every action's domains for it,
    on every such page."""
    world = SessionWorld(ledger)
    run(ledger, "domain", "create_domain", CreateDomainAction(creator={"name": "e"}))
    other = run(ledger, "group", "create_group", CreateGroupAction(input={"name": "g", "domain_name": "e"})).data.id
    facts = [
        CreateVFolderAction(vfolder_id=uuid.uuid4(), name=f"v{i}", host="local", group_id=group)
        for i, group in enumerate((world.group_id, other))
    ]
    run(ledger, "workload", "record_workload_batch", RecordWorkloadBatchAction(actions=facts), PLATFORM)
    for _ in range(2):
        world.enqueue()
    q, table = ledger.queries, ledger.projections.audit.domains
    # The batch concerns domain e too: withheld from d's admin, and not found by an entity id.
    for query, shown in (
        (lambda: q.audit_log(domain_name="d", operation="record_batch"), [("record_batch", None, {})]),
        (lambda: q.audit_log(domain_name="d", entity_id=str(facts[0].vfolder_id)), []),
    ):
        query()  # caught up first: the catch-up's own statements are not the query's
        with statements(ledger) as found:
            entries = query()
        assert [(e.operation, e.entity_id, e.spec) for e in entries] == shown
        if ledger.read_models.engine.dialect.name != "sqlite":
            continue
        # The lookup asks for a batch's domains other than the admin's (`domain_name != ?`).
        ours = [(sql, params) for sql, params in found if f"FROM {table.name}" in sql and "!=" in sql]
        assert ours, found
        for sql, params in ours:
            steps = explained(ledger, sql, params)
            assert not [s for s in steps if s.startswith("SCAN ")], steps


def test_an_admins_usage_report_reads_only_their_domains_kernels_by_index(ledger: Ledger) -> None:
    """An admin's usage report read every domain's kernels of the window, with their names
    and folders, then kept their own domain's (89 ms where an empty one took 11 ms)."""
    home, away = create_group(ledger, "home").id, create_group(ledger, "away", domain_name="other").id
    ours = {start(ledger, home, T0 + timedelta(minutes=i)) for i in range(3)}
    for i in range(3):
        start(ledger, away, T0 + timedelta(minutes=i), domain_name="other")
    reader = SqlUsageReader(ledger.read_models, ledger.runner, ledger.projections)
    window = (T0 - timedelta(days=1), T0 + timedelta(days=1))
    assert len(reader.kernels(*window, None)) == 6
    with statements(ledger) as found:
        kept = reader.kernels(*window, None, "default")
    assert {k.kernel_id for k in kept} == ours and {k.domain_name for k in kept} == {"default"}
    if ledger.read_models.engine.dialect.name != "sqlite":
        return
    table = ledger.projections.usage.kernels.name
    listed = [(sql, params) for sql, params in found if f"FROM {table}" in sql and "domain_name" in sql]
    assert len(listed) == 2, found  # the ended kernels and the running ones
    for sql, params in listed:
        assert_index_walk(explained(ledger, sql, params))

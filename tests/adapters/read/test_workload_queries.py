"""Kernels and vfolders listed and looked up from the usage read model, on SQLite and
PostgreSQL: filters, stable order, read-your-writes, refused filter values, a purge, and
a stalled read model refusing to answer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from adapters.bootstrap import Ledger, open_ledger
from domain.errors import InvalidAPIParameters, ReadModelStalled
from domain.workload import CreateEndpointAction, TerminateKernelAction
from tests.adapters.groups import create_group, delete_group, destroy_endpoint, purge_group
from tests.adapters.kernels import T0, start, vfolder
from tests.projections.stalls import stalled_ledger


def terminate(ledger: Ledger, kernel_id: str, at: datetime, status: str = "TERMINATED") -> None:
    action = TerminateKernelAction(kernel_id=uuid.UUID(kernel_id), terminated_at=at, status=status)
    asyncio.run(ledger.services.workload.terminate_kernel(action))


def ids(entries: list[Any]) -> list[str]:
    return [getattr(e, "kernel_id", None) or e.vfolder_id for e in entries]


def test_kernels_are_listed_in_the_order_recorded_and_filtered(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        g1, g2 = create_group(ledger, "one").id, create_group(ledger, "two").id
        # Listed as recorded: not by start time (c started first), nor by id at a tie (a, b).
        a = start(ledger, g1, T0 + timedelta(hours=2), kernel_id=uuid.UUID(int=2))
        b = start(ledger, g1, T0 + timedelta(hours=2), kernel_id=uuid.UUID(int=1))
        c = start(ledger, g2, T0, access_key="AKOTHER")
        d = start(ledger, g2, T0 + timedelta(hours=5))
        terminate(ledger, c, T0 + timedelta(hours=1))
        terminate(ledger, d, T0 + timedelta(hours=6), status="CANCELLED")

        assert ids(ledger.queries.kernels()) == [a, b, c, d]  # read your writes: no explicit catch-up
        assert ids(ledger.queries.kernels(group_id=g1)) == [a, b]
        assert ids(ledger.queries.kernels(group_id=str(g2))) == [c, d]
        assert ids(ledger.queries.kernels(status="running")) == [a, b]
        assert ids(ledger.queries.kernels(status="TERMINATED")) == [c]
        assert ids(ledger.queries.kernels(status="CANCELLED")) == [d]
        assert ids(ledger.queries.kernels(access_key="AKOTHER")) == [c]
        # [since, until): a kernel started exactly at `until` is out, at `since` in.
        since, until = T0 + timedelta(hours=2), T0 + timedelta(hours=5)
        assert ids(ledger.queries.kernels(since=since, until=until)) == [a, b]
        assert ids(ledger.queries.kernels(since="2024-10-01T14:00:00+02:00")) == [a, b, c, d]
        assert ids(ledger.queries.kernels(until=since.astimezone(timezone(timedelta(hours=-3))))) == [c]
        assert ids(ledger.queries.kernels(limit=2)) == [a, b]
        assert ids(ledger.queries.kernels(group_id=g2, status="RUNNING")) == []
        # An empty window is refused, as the audit trail refuses one: the same instant in
        # another offset included.
        for empty in (since, since.astimezone(timezone(timedelta(hours=9))), since + timedelta(hours=1)):
            with pytest.raises(InvalidAPIParameters) as window:
                ledger.queries.kernels(since=empty, until=since)
            assert window.value.field == "since"

        ended = ledger.queries.kernel(c)
        assert ended is not None
        assert (ended.status, ended.started_at, ended.terminated_at) == ("TERMINATED", T0, T0 + timedelta(hours=1))
        assert ended.started_at.tzinfo is not None and ended.group_id == str(g2)
        assert ended.occupied_slots == {"cpu": "2", "mem": "4294967296"}
        json = ended.to_json()
        assert json["started_at"] == "2024-10-01T12:00:00+00:00" and json["kernel_id"] == c
        running = ledger.queries.kernel(uuid.UUID(a))
        assert running is not None and running.terminated_at is None and running.to_json()["terminated_at"] is None
        assert ledger.queries.kernel(uuid.uuid4()) is None
        assert ledger.queries.kernel("not-a-uuid") is None


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"group_id": "nope"}, "group_id"),
        ({"status": "SLEEPING"}, "status"),
        ({"status": 3}, "status"),
        ({"access_key": "two words"}, "access_key"),
        ({"since": "yesterday"}, "since"),
        ({"until": "1800-01-01T00:00:00Z"}, "until"),
        ({"limit": 0}, "limit"),
        ({"limit": -1}, "limit"),
    ],
)
def test_a_kernel_filter_out_of_its_domain_is_refused_naming_it(
    ledger_url: str, filters: dict[str, Any], field: str
) -> None:
    with open_ledger(ledger_url) as ledger, pytest.raises(InvalidAPIParameters) as info:
        ledger.queries.kernels(**filters)
    assert info.value.field == field


def test_a_kernel_started_before_a_pages_last_row_but_recorded_after_it_is_on_the_next_page(ledger_url: str) -> None:
    """A platform reports facts late (a batch import of yesterday's, a retried report, a
    slow agent): the list was ordered by the kernels' start times, so a kernel whose start
    was recorded after a page was read, but started before that page's last row, sorted
    before the cursor, and a client paging on (an inventory export, a platform syncing)
    never saw it. The list is in the order the ledger recorded the kernels' starts, each
    filter of it too; a window still selects by start time."""
    with open_ledger(ledger_url) as ledger:
        g = create_group(ledger, "one").id
        user = uuid.uuid4()
        first = [start(ledger, g, T0 + timedelta(hours=i), user_id=user) for i in range(2)]
        q = ledger.queries
        filters: list[dict[str, Any]] = [
            {},
            {"group_id": g},
            {"domain_name": "default"},
            {"user_id": user},
            {"access_key": "AKTEST"},
            {"status": "RUNNING"},
            {"status": "RUNNING", "domain_name": "default"},
        ]
        for values in filters:
            assert ids(q.kernels(limit=2, **values)) == first, values
        late = start(ledger, g, T0 - timedelta(days=1), user_id=user)  # before every row of the pages
        for values in filters:
            assert ids(q.kernels(limit=2, after=first[-1], **values)) == [late], values
            assert ids(q.kernels(**values)) == [*first, late], values
        found = q.kernel(late)
        assert found is not None and found.started_at == T0 - timedelta(days=1)  # its own start, as reported
        assert ids(q.kernels(since=T0)) == first and ids(q.kernels(until=T0)) == [late]
        assert ids(q.kernels(since=T0 - timedelta(days=2), limit=1, after=first[0])) == [first[1]]


def test_vfolders_are_listed_by_name_and_filtered(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        g1, g2 = create_group(ledger, "one").id, create_group(ledger, "two").id
        data = vfolder(ledger, g1, "data")
        models = vfolder(ledger, g2, "models", host="nfs")
        archive = vfolder(ledger, g1, "archive", host="nfs")

        assert ids(ledger.queries.vfolders()) == [archive, data, models]
        assert ids(ledger.queries.vfolders(group_id=g1)) == [archive, data]
        assert ids(ledger.queries.vfolders(host="nfs")) == [archive, models]
        assert ids(ledger.queries.vfolders(group_id=str(g2), host="local")) == []
        assert ids(ledger.queries.vfolders(limit=1)) == [archive]
        found = ledger.queries.vfolder(models)
        assert found is not None
        assert found.to_json() == {"vfolder_id": models, "group_id": str(g2), "host": "nfs", "name": "models"}
        assert ledger.queries.vfolder(uuid.uuid4()) is None
        assert ledger.queries.vfolder("x") is None
        with pytest.raises(InvalidAPIParameters) as info:
            ledger.queries.vfolders(group_id="nope")
        assert info.value.field == "group_id"
        with pytest.raises(InvalidAPIParameters) as info:
            ledger.queries.vfolders(host="bad\x1bhost")
        assert info.value.field == "host"


def test_a_purged_groups_workload_is_gone(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        gone, kept = create_group(ledger, "gone").id, create_group(ledger, "kept").id
        ended = start(ledger, gone, T0)
        terminate(ledger, ended, T0 + timedelta(hours=1))
        vfolder(ledger, gone, "old")
        other = start(ledger, kept, T0)
        delete_group(ledger, gone)
        purge_group(ledger, gone)
        assert ids(ledger.queries.kernels()) == [other]
        assert ledger.queries.kernel(ended) is None
        assert ledger.queries.vfolders() == []


def test_a_stalled_usage_read_model_refuses_the_workload_queries(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        stalled_ledger(ledger)
        for query in (
            ledger.queries.kernels,
            lambda: ledger.queries.kernel(uuid.UUID(int=1)),
            ledger.queries.vfolders,
            lambda: ledger.queries.vfolder(uuid.UUID(int=1)),
        ):
            with pytest.raises(ReadModelStalled):
                query()


def endpoint(ledger: Ledger, group_id: uuid.UUID, name: str) -> str:
    action = CreateEndpointAction(endpoint_id=uuid.uuid4(), group_id=group_id, name=name)
    asyncio.run(ledger.services.workload.create_endpoint(action))
    return str(action.endpoint_id)


def test_endpoints_are_read_from_the_event_store(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        g1, g2 = create_group(ledger, "one").id, create_group(ledger, "two").id
        serve = endpoint(ledger, g1, "serve")
        api = endpoint(ledger, g1, "api")
        other = endpoint(ledger, g2, "other")
        gone = endpoint(ledger, g1, "gone")
        destroy_endpoint(ledger, uuid.UUID(gone))

        assert ids_of(ledger.queries.endpoints(g1)) == [api, serve]  # active only, by name
        assert ids_of(ledger.queries.endpoints(str(g2))) == [other]
        assert ledger.queries.endpoints(uuid.uuid4()) == []
        shown = ledger.queries.endpoint(serve)
        assert shown is not None
        assert shown.to_json() == {"endpoint_id": serve, "group_id": str(g1), "name": "serve", "active": True}
        destroyed = ledger.queries.endpoint(uuid.UUID(gone))
        assert destroyed is not None and destroyed.active is False
        assert ledger.queries.endpoint(uuid.uuid4()) is None
        assert ledger.queries.endpoint("nope") is None
        assert ledger.queries.endpoint(g1) is None  # a group's stream is no endpoint
        with pytest.raises(InvalidAPIParameters) as info:
            ledger.queries.endpoints("nope")
        assert info.value.field == "group_id"

        # A purged group has no endpoints listed (its destroyed ones still show).
        destroy_endpoint(ledger, uuid.UUID(other))
        delete_group(ledger, g2)
        purge_group(ledger, g2)
        assert ledger.queries.endpoints(g2) == []
        assert ledger.queries.endpoint(other) is not None


def ids_of(entries: list[Any]) -> list[str]:
    return [e.endpoint_id for e in entries]


def paged(list_of: Callable[..., list[Any]], size: int) -> list[str]:
    """The ids of every page of `size` items of a list, each after the last one's id."""
    found: list[str] = []
    page = list_of(limit=size)
    while page:
        found += ids(page)
        page = list_of(limit=size, after=found[-1])
    return found


def test_kernels_and_vfolders_page_after_a_cursor(ledger_url: str) -> None:
    """Pages of `limit` rows chained by `after` are the whole list, ties of start time
    across a page's edge included (in the order recorded, as the list orders them)."""
    with open_ledger(ledger_url) as ledger:
        g = create_group(ledger, "one").id
        kernels = [start(ledger, g, T0 + timedelta(hours=i // 3), kernel_id=uuid.UUID(int=10 - i)) for i in range(7)]
        for i in range(5):
            vfolder(ledger, g, f"vf{i // 2}")  # names repeat: ties broken by id
        for list_of in (ledger.queries.kernels, ledger.queries.vfolders):
            whole = ids(list_of())
            for size in (1, 2, 3):
                assert paged(list_of, size) == whole, (list_of, size)
        assert ids(ledger.queries.kernels()) == kernels  # recorded in that order; ids fall
        assert ledger.queries.kernels(after=ids(ledger.queries.kernels())[-1]) == []  # the end
        with pytest.raises(InvalidAPIParameters) as unknown:
            ledger.queries.kernels(after=uuid.UUID(int=99))
        assert unknown.value.field == "after"
        with pytest.raises(InvalidAPIParameters) as bad:
            ledger.queries.vfolders(after="vf1")
        assert bad.value.field == "after"


def test_a_page_after_a_kernel_purged_since_is_refused_not_the_end(ledger_url: str) -> None:
    """A client pages through every kernel while a group is purged: its cursor, the last
    kernel of the previous page, was that group's. The next page was empty, which said the
    list had ended while kernels of other groups still followed: now the cursor is refused,
    naming `after`, so the client lists again. Vfolders alike."""
    with open_ledger(ledger_url) as ledger:
        gone, kept = create_group(ledger, "gone").id, create_group(ledger, "kept").id
        first = start(ledger, kept, T0)
        cursor = start(ledger, gone, T0 + timedelta(hours=1))
        later = start(ledger, kept, T0 + timedelta(hours=2))
        vfolder(ledger, kept, "a")
        vfolder(ledger, gone, "b")
        vfolder(ledger, kept, "c")
        assert ids(ledger.queries.kernels(limit=2)) == [first, cursor]
        page_end = ledger.queries.vfolders(limit=2)[-1].vfolder_id
        assert ids(ledger.queries.kernels(after=cursor)) == [later]
        terminate(ledger, cursor, T0 + timedelta(hours=3))  # a group with a running kernel is not purged
        delete_group(ledger, gone)
        purge_group(ledger, gone)
        for list_after in (
            lambda: ledger.queries.kernels(after=cursor),
            lambda: ledger.queries.vfolders(after=page_end),
        ):
            with pytest.raises(InvalidAPIParameters) as refused:
                list_after()
            assert refused.value.field == "after" and "list again from the start" in refused.value.message
        # Listing again reaches what follows.
        assert ids(ledger.queries.kernels()) == [first, later]


def test_vfolders_of_a_domain_are_those_of_its_groups(ledger_url: str) -> None:
    """What a domain's admin reads over HTTP: narrowed in SQL through the groups read model
    (a soft-deleted group's vfolders included, as the group itself still is)."""
    with open_ledger(ledger_url) as ledger:
        home, other = create_group(ledger, "one", "d1").id, create_group(ledger, "two", "d2").id
        kept = create_group(ledger, "three", "d1").id
        a, b = vfolder(ledger, home, "a"), vfolder(ledger, other, "b")
        c = vfolder(ledger, kept, "c")
        delete_group(ledger, kept)
        assert ids(ledger.queries.vfolders(domain_name="d1")) == [a, c]
        assert ids(ledger.queries.vfolders(domain_name="d2")) == [b]
        assert ids(ledger.queries.vfolders(domain_name="d1", limit=1, after=a)) == [c]
        assert ledger.queries.vfolders(domain_name="nowhere") == []


def test_every_page_size_chains_into_the_whole_list_with_ties_and_mixed_names(ledger_url: str) -> None:
    """Every limit from 1 to past the end: the pages chained by `after` are the whole
    list. Kernels tie on their start instant given in other offsets; vfolder names differ
    only by case, accents, spaces and punctuation (ORDER BY and the cursor's comparison
    must agree under the database's collation); a cursor in capitals or without hyphens
    places the page as its stored form does."""
    with open_ledger(ledger_url) as ledger:
        g = create_group(ledger, "one").id
        tokyo = timezone(timedelta(hours=9))
        for i in range(4):
            start(ledger, g, T0, kernel_id=uuid.UUID(int=100 - i))
        start(ledger, g, (T0 + timedelta(hours=1)).astimezone(tokyo))
        start(ledger, g, T0.astimezone(tokyo), kernel_id=uuid.UUID(int=50))
        start(ledger, g, T0 - timedelta(microseconds=1))
        for name in ("a", "A", "á", "a b", "a-b", "ab", "B", "b", "a", "Z", "é", "e"):
            vfolder(ledger, g, name)
        for list_of in (ledger.queries.kernels, ledger.queries.vfolders):
            whole = ids(list_of())
            for size in range(1, len(whole) + 2):
                assert paged(list_of, size) == whole, (list_of, size)
            for spelling in (whole[2].upper(), whole[2].replace("-", "")):
                assert ids(list_of(after=spelling)) == whole[3:], spelling

"""An entity's history a page at a time, on SQLite and PostgreSQL: following the cursor
oldest or newest first yields the whole history once, in order, at every page size; a
page reads only its own events; a page that ends the history still tells of an event
that no longer decodes; bad cursors and sizes are refused naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.bootstrap import Ledger
from domain.errors import DamagedEvent, InvalidAPIParameters
from tests.adapters.store.raw import cut_event_state, move_event_version
from tests.policies import create, delete, modify

POLICY = "keypair_resource_policy"


def _long_lived(ledger: Ledger) -> list[Any]:
    """A policy with three incarnations and ten events, events of another policy between."""
    create(ledger, "paged", idle_timeout=1)
    for step in range(2, 6):
        modify(ledger, "paged", idle_timeout=step)
        create(ledger, f"other-{step}")
    delete(ledger, "paged")
    create(ledger, "paged", idle_timeout=10)
    modify(ledger, "paged", idle_timeout=11)
    delete(ledger, "paged")
    create(ledger, "paged", idle_timeout=20)
    whole = ledger.queries.history(POLICY, "paged")
    assert [e.event for e in whole].count("Recreated") == 2 and len(whole) == 10
    return whole


def _pages(ledger: Ledger, limit: int, newest_first: bool) -> list[list[Any]]:
    pages: list[list[Any]] = []
    after = None
    while True:
        page = ledger.queries.history(POLICY, "paged", after=after, limit=limit, newest_first=newest_first)
        pages.append(page)
        if len(page) < limit:
            return pages
        after = page[-1].position


def test_following_the_cursor_yields_the_whole_history_once_in_order(ledger: Ledger) -> None:
    whole = _long_lived(ledger)
    for limit in (1, 2, 3, 9, 10, 11):
        for newest_first in (False, True):
            pages = _pages(ledger, limit, newest_first)
            assert all(len(page) == limit for page in pages[:-1])
            read = [entry for page in pages for entry in page]
            assert read == (list(reversed(whole)) if newest_first else whole), (limit, newest_first)
    latest = ledger.queries.history(POLICY, "paged", limit=2, newest_first=True)
    assert [e.event for e in latest] == ["Recreated", "Deleted"]
    # A cursor past either end is an empty page, not an error.
    assert ledger.queries.history(POLICY, "paged", after=whole[-1].position, limit=5) == []
    assert ledger.queries.history(POLICY, "paged", after=whole[0].position, newest_first=True) == []
    assert ledger.queries.history(POLICY, "paged", after=0, newest_first=True) == []


def test_a_page_reads_only_its_own_events(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """A group's history holds two entries per kernel it ever ran: a page that read every
    event of the stream cost as much as the whole history."""
    whole = _long_lived(ledger)
    read: list[int] = []
    get = ledger.app.events.get

    def counted(*args: Any, **kwargs: Any) -> Any:
        events = list(get(*args, **kwargs))
        read.append(len(events))
        return events

    monkeypatch.setattr(ledger.app.events, "get", counted)
    middle = ledger.queries.history(POLICY, "paged", after=whole[3].position, limit=3)
    assert middle == whole[4:7] and read == [3]
    read.clear()
    latest = ledger.queries.history(POLICY, "paged", limit=2, newest_first=True)
    assert latest == whole[:-3:-1] and read == [2]


def test_the_page_that_ends_a_history_tells_of_an_event_that_no_longer_decodes(ledger: Ledger) -> None:
    whole = _long_lived(ledger)
    modify(ledger, "paged", idle_timeout=21)
    position = ledger.app.recorder.max_notification_id()
    assert position is not None
    ledger.app.cache.clear()
    cut_event_state(ledger, position)
    q = ledger.queries
    # Pages in the middle stand; the one that reaches the end, either way, names the damage.
    assert q.history(POLICY, "paged", limit=3) == whole[:3]
    for read in (
        lambda: q.history(POLICY, "paged", after=whole[-2].position, limit=3),
        lambda: q.history(POLICY, "paged", limit=1, newest_first=True),
        lambda: q.history(POLICY, "paged", after=whole[-1].position, limit=3),
    ):
        with pytest.raises(DamagedEvent, match=r"cannot be read.*ledger verify"):
            read()


def test_incarnations_name_where_each_began(ledger: Ledger) -> None:
    whole = _long_lived(ledger)
    began = [(e.position, e.version) for e in whole if e.event in ("Created", "Recreated")]
    assert ledger.queries.incarnations(POLICY, "paged") == began and len(began) == 3
    assert ledger.queries.incarnations(POLICY, "never") == []


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"after": -1}, "after"),
        ({"after": "12"}, "after"),
        ({"after": 2**70}, "after"),
        ({"limit": 0}, "limit"),
        ({"limit": -5}, "limit"),
        ({"limit": 1.5}, "limit"),
        ({"newest_first": "yes"}, "newest_first"),
    ],
)
def test_bad_cursors_and_sizes_are_refused_naming_the_field(
    ledger: Ledger, arguments: dict[str, Any], field: str
) -> None:
    create(ledger, "paged")
    with pytest.raises(InvalidAPIParameters) as refused:
        ledger.queries.history(POLICY, "paged", **arguments)
    assert refused.value.field == field


def test_a_history_whose_event_left_its_version_names_the_damage(ledger: Ledger) -> None:
    """An event given another version behind the ledger's back: the history index names it
    at its old version, which the stream no longer has, and `history` failed with an
    internal error (KeyError) instead of saying the store was damaged."""
    whole = _long_lived(ledger)
    ledger.app.cache.clear()
    move_event_version(ledger, whole[3].position, 99)
    with pytest.raises(DamagedEvent, match=r"ledger verify"):
        ledger.queries.history(POLICY, "paged")

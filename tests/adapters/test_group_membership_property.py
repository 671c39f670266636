"""Property: any sequence of add / remove / replace keeps the members read model equal to
a plain set, and events are stored exactly for the changes that really happen."""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.bootstrap import Ledger
from tests.adapters.groups import create_group, head, modify_group

POOL = [uuid.UUID(int=i) for i in range(1, 6)]
_steps = st.lists(
    st.tuples(
        st.sampled_from(["add", "remove", "replace"]),
        st.lists(st.sampled_from(POOL), max_size=6),  # repeats and empty lists included
        st.booleans(),  # ids as strings or UUIDs
    ),
    max_size=10,
)


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=40)
@given(steps=_steps)
def test_members_follow_a_set_model(memory_ledger: Ledger, steps: list[tuple[str, list[uuid.UUID], bool]]) -> None:
    ledger = memory_ledger  # one ledger for every example; each example has its own group
    group = create_group(ledger, f"g-{uuid.uuid4().hex[:12]}")
    model: set[uuid.UUID] = set()
    expected_events: list[tuple[str, list[str]]] = []
    for mode, users, as_text in steps:
        wanted = set(users)
        if mode == "add":
            added, removed = wanted - model, set()
        elif mode == "remove":
            added, removed = set(), wanted & model
        else:
            added, removed = wanted - model, model - wanted
        before = head(ledger)
        modify_group(ledger, group.id, mode=mode, users=[str(u) if as_text else u for u in users])
        model = (model | added) - removed
        assert ledger.queries.group_members(group.id) == model, (mode, users)
        # A step stores events if and only if it changes the set.
        assert (head(ledger) > before) == bool(added or removed), (mode, users)
        if removed:
            expected_events.append(("MembersRemoved", sorted(str(u) for u in removed)))
        if added:
            expected_events.append(("MembersAdded", sorted(str(u) for u in added)))
    history = ledger.queries.history("group", str(group.id))
    recorded = [(e.event, sorted(e.details["user_ids"])) for e in history if e.event.startswith("Members")]
    # Each changing step is one event per direction, carrying exactly the users that moved.
    assert recorded == expected_events
    assert [e.event for e in history if not e.event.startswith("Members")] == ["Created"]

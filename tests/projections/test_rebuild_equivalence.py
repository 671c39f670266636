"""Property: a rebuild from the first event equals the read models built live, command by
command with catch-ups at random points, in every table, row by row."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.bootstrap import Ledger, open_ledger
from tests.projections.commands import GROUPS, USERS, Command, commands, run
from tests.projections.readmodels import clean_rebuild, dump

# Each step is a command, and whether queries caught the read models up right after it.
steps = st.lists(st.tuples(commands, st.booleans()), min_size=5, max_size=60)
# Groups and a policy first, so that most generated commands have something to act on.
PRELUDE: list[Command] = [("group", i) for i in range(len(GROUPS))] + [
    ("policy", "p0", 1),
    ("members", 0, "add", USERS[:2]),
]


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=steps, batch_size=st.integers(1, 12))
def test_rebuild_equals_the_live_read_models(history: list[tuple[Command, bool]], batch_size: int) -> None:
    with open_ledger("sqlite:///:memory:") as ledger:
        for command, catch_up in [(c, False) for c in PRELUDE] + history:
            run(ledger, command)
            if catch_up:
                ledger.runner.catch_up()
        ledger.runner.catch_up()
        live = dump(ledger.read_models, ledger.projections.all())
        assert live == clean_rebuild(ledger, batch_size)
        assert sum(len(rows) for rows in live.values()) > 0


def test_the_live_read_models_are_not_trivially_equal(memory_ledger: Ledger) -> None:
    """The comparison sees every table: a row changed behind the runner's back differs."""
    run(memory_ledger, ("policy", "p0", 3))
    memory_ledger.runner.catch_up()
    policies = memory_ledger.projections.policies
    with memory_ledger.read_models.begin() as conn:
        conn.execute(policies.rows.update().values(keypair_count=7))
    live = dump(memory_ledger.read_models, memory_ledger.projections.all())
    assert set(live) == set(clean_rebuild(memory_ledger))
    assert live != clean_rebuild(memory_ledger)

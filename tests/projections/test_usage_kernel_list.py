"""The kernel list after an upgrade of the usage read model, on SQLite and PostgreSQL, in
UTC and in another time zone (each zone has its own usage read model): kernels started
under the previous version, one of them recorded after the others but started before
them, list in the order they were recorded in once this version is built from the first
event, as the live read model lists them, and again after a forced rebuild."""

from __future__ import annotations

from datetime import timedelta

import pytest

from adapters.bootstrap import Ledger, open_ledger
from projections.usage import UsageProjection
from tests.adapters.groups import create_group
from tests.adapters.kernels import T0, start
from tests.projections.readmodels import clean_rebuild, code_with, dump, older


def _listed(ledger: Ledger) -> list[str]:
    return [k.kernel_id for k in ledger.queries.kernels()]


@pytest.mark.parametrize("zone", ["UTC", "Asia/Seoul"])
def test_the_kernel_list_is_the_same_after_an_upgrade_and_after_a_forced_rebuild(ledger_url: str, zone: str) -> None:
    with code_with(usage=older(UsageProjection)), open_ledger(ledger_url, zone) as old:
        assert old.projections.usage.version == UsageProjection.version - 1
        group = create_group(old, "one").id
        first = [start(old, group, T0 + timedelta(hours=i)) for i in range(2)]
        late = start(old, group, T0 - timedelta(days=1))  # a fact reported a day late
        recorded = [*first, late, start(old, group, T0 + timedelta(hours=5))]
    with open_ledger(ledger_url, zone) as ledger:  # builds this version before it serves
        usage = ledger.projections.usage
        assert usage.versioned_name == UsageProjection.versioned_name_in(zone)
        assert ledger.runner.pending() == []
        assert _listed(ledger) == recorded
        assert [k.kernel_id for k in ledger.queries.kernels(limit=1, after=first[-1])] == [late]
        live = dump(ledger.read_models, [usage])
        assert live == {k: v for k, v in clean_rebuild(ledger).items() if k in live}
        ledger.runner.catch_up(ledger.runner.force([usage]))
        assert ledger.runner.builds() == []
        assert _listed(ledger) == recorded
        assert dump(ledger.read_models, [usage]) == live

"""A groups read model built by an older release is rebuilt when today's handlers read the
same events differently: the row of a group purged under that release held its personal
fields as they were, where today's purge (and any rebuild) reads them erased."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapters.bootstrap import open_ledger
from domain.group import Group
from projections.groups import GroupsProjection
from projections.projection import on
from tests.projections.commands import description, run
from tests.projections.readmodels import clean_rebuild, code_with, dump


class GroupsProjectionBeforeErasure(GroupsProjection):
    """The groups read model as the releases before erasure had it (version 1): a purge
    only marked the row deleted and dropped its members, its fields left as they were."""

    version = 1

    @on(Group.Purged)
    def purged(self, conn: Connection, event: Any, _position: int) -> None:
        self.touch(conn, event, is_deleted=True)
        conn.execute(sa.delete(self.members).where(self.members.c.group_id == str(event.originator_id)))


def test_a_group_purged_under_an_older_release_reads_as_a_rebuild_does(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    with code_with(groups=GroupsProjectionBeforeErasure), open_ledger(url) as old:
        for command in [("group", 0), ("describe", 0, 0), ("group_purge", 0)]:
            run(old, command)
            old.runner.catch_up()  # each at once: the row holds the values before the purge
        assert description(0, 0) in repr(dump(old.read_models, [old.projections.groups]))
    with open_ledger(url) as ledger:
        ledger.runner.catch_up()
        live = dump(ledger.read_models, [ledger.projections.groups])
        rebuilt = clean_rebuild(ledger)
        assert live == {name: rows for name, rows in rebuilt.items() if name in live}
        assert description(0, 0) not in repr(live)  # `ledger projections rebuild --force groups` read erased

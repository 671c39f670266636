"""Projection versions: a bumped version is built beside the old one, which keeps serving
old code, then replaces it in one transaction; a build resumes after an interruption."""

from __future__ import annotations

import asyncio
import json
import threading
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from typer.testing import CliRunner

from adapters.bootstrap import Ledger, open_ledger
from adapters.cli import app
from adapters.follow import follow
from domain.errors import ReadModelVersionMismatch
from domain.group import UsagePerMonthAction
from projections import versions
from projections.policies import PoliciesProjection
from projections.runner import ProjectionRunner
from projections.tracking import tables_of
from projections.usage import UsageProjection
from tests.adapters.cli.helpers import as_json, ok, stdout_of
from tests.adapters.groups import create_group, start_kernel
from tests.adapters.http.api import api_over
from tests.projections.commands import run
from tests.projections.readmodels import clean_rebuild, code_with, dump, older

OLD_NAME, NEW_NAME = "keypair_resource_policies_v1", "keypair_resource_policies_v2"


class PoliciesV2(PoliciesProjection):
    """Version 2 of the policies read model: a column for the session limit."""

    version = 2

    def extra_columns(self) -> list[sa.Column[Any]]:
        return [*super().extra_columns(), sa.Column("max_concurrent_sessions", sa.Integer)]

    def touch(self, conn: Connection, event: Any, **values: Any) -> None:
        super().touch(conn, event, **values)
        self._sessions(conn, event)

    def created(self, conn: Connection, event: Any, position: int) -> None:
        super().created(conn, event, position)
        self._sessions(conn, event)

    def _sessions(self, conn: Connection, event: Any) -> None:
        rows = self.rows
        fields = conn.execute(sa.select(rows.c.fields).where(rows.c.stream_id == event.originator_id)).scalar_one()
        sessions = fields.get("max_concurrent_sessions")
        conn.execute(
            rows.update().where(rows.c.stream_id == event.originator_id).values(max_concurrent_sessions=sessions)
        )


def new_code(url: str, build_pending: bool = True) -> Ledger:
    with code_with(policies=PoliciesV2):
        return open_ledger(url, build_pending=build_pending)


def sessions(ledger: Ledger) -> dict[str, int]:
    rows = ledger.projections.policies.rows
    with ledger.read_models.connect() as conn:
        return {
            r.key: r.max_concurrent_sessions
            for r in conn.execute(sa.select(rows.c.key, rows.c.max_concurrent_sessions))
        }


def active(ledger: Ledger) -> dict[str, int]:
    versions = ProjectionRunner.versions
    with ledger.read_models.connect() as conn:
        return {r.name: r.version for r in conn.execute(sa.select(versions))}


def version_tables(ledger: Ledger, key: str) -> list[str]:
    with ledger.read_models.connect() as conn:
        return tables_of(conn, key)


def test_a_fresh_ledger_records_this_codes_versions(ledger: Ledger) -> None:
    assert active(ledger) == {p.stable_name: p.version for p in ledger.projections.all()}
    assert ledger.runner.pending() == []
    assert {s.name: s.pending_version for s in ledger.runner.status()} == dict.fromkeys(active(ledger))


def test_old_code_keeps_serving_while_the_new_version_builds_then_reads_switch(ledger_url: str) -> None:
    with open_ledger(ledger_url) as old:
        for i in range(20):
            run(old, ("policy", f"p{i}", i))
        assert len(old.queries.keypair_resource_policies()) == 21
        new = new_code(ledger_url, build_pending=False)
        try:
            (pending,) = new.runner.pending()
            assert pending.versioned_name == NEW_NAME
            (status,) = [s for s in new.runner.status() if s.name == pending.stable_name]
            assert (status.version, status.pending_version, status.pending_position) == (1, 2, 0)
            new.runner.batch_size = 3
            during: list[int] = []

            def meanwhile(position: int, _head: int) -> None:
                # Between two batches of the build, old code writes and reads as usual.
                during.append(position)
                run(old, ("policy", f"during-{len(during)}", 5))
                assert f"during-{len(during)}" in {p.name for p in old.queries.keypair_resource_policies()}

            new.runner.catch_up(new.runner.pending(), progress=meanwhile)
            assert len(during) > 5 and during == sorted(during)
            # Caught up: one transaction switched reads and dropped the old version.
            assert active(new)["keypair_resource_policies"] == 2
            assert new.runner.pending() == []
            assert version_tables(new, OLD_NAME) == []
            assert version_tables(new, NEW_NAME) == [f"{NEW_NAME}_rows"]
            with pytest.raises(ReadModelVersionMismatch):
                old.queries.keypair_resource_policies()
            names = {p.name for p in new.queries.keypair_resource_policies()}
            assert names == {"default", *(f"p{i}" for i in range(20)), *(f"during-{i + 1}" for i in range(len(during)))}
            assert sessions(new)["p7"] == 7 and sessions(new)["during-1"] == 5
        finally:
            new.close()


def test_old_code_is_not_ready_once_newer_code_activated_its_version(ledger_url: str) -> None:
    """A server of old code answers every read 503 `ledger_read_model_version` once newer
    code has switched a read model in: its /readyz said 200 "ready", lag 0, so a load
    balancer kept sending it requests it could only refuse."""
    with open_ledger(ledger_url) as old, api_over(old) as api:
        assert api.client.get("/readyz").status_code == 200
        new_code(ledger_url).close()  # builds and activates version 2
        listed = api.get("/v1/keypair-resource-policies")
        assert listed.status_code == 503 and listed.json()["code"] == "ledger_read_model_version"
        ready = api.client.get("/readyz")
        assert ready.status_code == 503, ready.json()
        assert ready.json()["code"] == "ledger_read_model_version"
        assert "run the newer code" in ready.json()["detail"]


def test_by_default_opening_new_code_builds_its_version_first(ledger_url: str) -> None:
    with open_ledger(ledger_url) as old:
        run(old, ("policy", "p1", 3))
    with new_code(ledger_url) as new:
        assert active(new)["keypair_resource_policies"] == 2
        assert sessions(new) == {"default": 30, "p1": 3}
        assert version_tables(new, OLD_NAME) == []
        run(new, ("policy", "p1", 4))
        assert [p.max_concurrent_sessions for p in new.queries.keypair_resource_policies()] == [30, 4]
    # Code older than the active version refuses to open instead of reading nothing.
    with pytest.raises(ReadModelVersionMismatch, match="version 2, this code has version 1"):
        open_ledger(ledger_url)


def test_an_interrupted_build_resumes_from_its_position(ledger_url: str) -> None:
    with open_ledger(ledger_url) as old:
        for i in range(30):
            run(old, ("policy", f"p{i}", i))
    with new_code(ledger_url, build_pending=False) as new:
        new.runner.batch_size = 4

        def crash(position: int, _head: int) -> None:
            if position >= 12:
                raise KeyboardInterrupt  # as if killed between two batches

        with pytest.raises(KeyboardInterrupt):
            new.runner.catch_up(new.runner.pending(), progress=crash)
    with new_code(ledger_url, build_pending=False) as resumed:
        (status,) = [s for s in resumed.runner.status() if s.name == "keypair_resource_policies"]
        assert status.version == 1 and status.pending_position is not None and status.pending_position >= 12
        resumed.runner.catch_up(resumed.runner.pending())
        assert active(resumed)["keypair_resource_policies"] == 2
        resumed.runner.catch_up()  # the other read models too, for the comparison
        with code_with(policies=PoliciesV2):
            assert dump(resumed.read_models, resumed.projections.all()) == clean_rebuild(resumed)


def test_a_forced_rebuild_left_unfinished_goes_with_the_version_it_was_rebuilding(ledger_url: str) -> None:
    """A `rebuild --force` killed midway, then newer code's version switched in: the forced
    rebuild of the replaced version kept its tables, tracking row and rebuild row for good
    (nothing built, showed, erased or dropped them)."""
    with open_ledger(ledger_url) as old:
        for i in range(20):
            run(old, ("policy", f"p{i}", i))
        old.runner.batch_size = 3
        (build,) = old.runner.force([old.projections.policies])

        def crash(position: int, _head: int) -> None:
            if position >= 6:
                raise KeyboardInterrupt  # as if killed between two batches

        with pytest.raises(KeyboardInterrupt):
            old.runner.catch_up([build], progress=crash)
        assert version_tables(old, build.storage_name) != []
    with new_code(ledger_url) as new:  # builds and activates version 2
        assert active(new)["keypair_resource_policies"] == 2
        new.runner.drop_retired_tables()
        with new.read_models.connect() as conn:
            left = [t for t in sa.inspect(conn).get_table_names() if t.startswith(OLD_NAME)]
            rebuilds = conn.execute(sa.select(ProjectionRunner.rebuilds.c.projection)).scalars().all()
        assert left == []
        assert build.storage_name not in new.runner.stored_positions()
        assert OLD_NAME not in rebuilds
        names = {p.name for p in new.queries.keypair_resource_policies()}
        assert names == {"default", *(f"p{i}" for i in range(20))}


def test_processes_building_one_version_at_once_activate_it_once(ledger_url: str) -> None:
    with open_ledger(ledger_url) as old:
        for i in range(40):
            run(old, ("policy", f"p{i}", i))
    builders = [new_code(ledger_url, build_pending=False) for _ in range(3)]
    errors: list[BaseException] = []

    def build(ledger: Ledger) -> None:
        ledger.runner.batch_size = 5
        try:
            ledger.runner.catch_up(ledger.runner.pending())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=build, args=(b,)) for b in builders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert all(b.runner.pending() == [] for b in builders)
        builders[1].runner.catch_up()
        assert active(builders[0])["keypair_resource_policies"] == 2
        with code_with(policies=PoliciesV2):
            assert dump(builders[1].read_models, builders[1].projections.all()) == clean_rebuild(builders[1])
    finally:
        for b in builders:
            b.close()


def cli(db: str, *args: str) -> Any:
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["--db", db, "--json", *args])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def test_cli_status_and_rebuild_of_a_pending_version(ledger_url: str) -> None:
    with open_ledger(ledger_url) as old:
        run(old, ("policy", "p1", 3))
    with code_with(policies=PoliciesV2):
        before = {s["name"]: s for s in cli(ledger_url, "projections", "status")}
        assert before["keypair_resource_policies"]["pending_version"] == 2
        assert before["history"]["pending_version"] is None
        done = cli(ledger_url, "projections", "rebuild", "keypair_resource_policies", "--batch-size", "1")
        assert done["rebuilt"] == ["keypair_resource_policies"]
        (after,) = done["projections"]
        assert (after["version"], after["pending_version"], after["lag"]) == (2, None, 0)
        again = cli(ledger_url, "projections", "rebuild")
        assert again["rebuilt"] == []
    result = CliRunner().invoke(app, ["--db", ledger_url, "projections", "rebuild", "nothing"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")


def test_status_says_what_builds_a_pending_version_and_what_its_switch_does(ledger_url: str) -> None:
    """A pending version showed as `v2 at 0` and nothing more: not what moves it (nothing
    records whether a build runs), what to type, or that its switch takes old-code reads down."""
    with open_ledger(ledger_url) as old:
        run(old, ("policy", "p1", 3))
    with code_with(policies=PoliciesV2):
        last = stdout_of(ledger_url, "projections", "status").splitlines()[-1]
        assert "keypair_resource_policies v2 at 0" in last
        assert "`ledger projections rebuild` builds it where it stopped" in last
        assert "503 `ledger_read_model_version`" in last
        ok(ledger_url, "projections", "rebuild")
        assert "pending" not in stdout_of(ledger_url, "projections", "status").splitlines()[-1]


def test_status_and_rebuild_say_another_zones_usage_model_waits_for_its_zone(ledger_url: str) -> None:
    """An upgrade run in UTC showed a Seoul usage model of the old version with nothing
    pending and `rebuild` said it was done: the first Seoul process then built it before
    it answered, and nothing had told the operator how to build it beforehand."""
    with code_with(usage=older(UsageProjection)):
        open_ledger(ledger_url, "Asia/Seoul").close()
    new = UsageProjection.version
    said = f"usage_asia_seoul is at v{new - 1} and this code's is v{new}"
    how = "`LEDGER_TIMEZONE=Asia/Seoul ledger projections rebuild usage`"
    table = stdout_of(ledger_url, "projections", "status")
    assert said in table and how in table
    (seoul,) = [s for s in as_json(ledger_url, "projections", "status") if s["name"] == "usage_asia_seoul"]
    assert (seoul["version"], seoul["pending_version"], seoul["pending_in_own_zone"]) == (new - 1, None, new)
    assert how in stdout_of(ledger_url, "projections", "rebuild")  # nothing of this zone's to build
    ok(ledger_url, "projections", "rebuild", "usage", env={"LEDGER_TIMEZONE": "Asia/Seoul"})
    (seoul,) = [s for s in as_json(ledger_url, "projections", "status") if s["name"] == "usage_asia_seoul"]
    assert (seoul["version"], seoul["pending_in_own_zone"]) == (new, None)
    assert how not in stdout_of(ledger_url, "projections", "status")


def test_rebuild_in_a_new_zone_catches_its_usage_model_up_and_status_says_how(ledger_url: str) -> None:
    """A zone no process had read in: `LEDGER_TIMEZONE=Asia/Seoul ledger projections rebuild
    usage` said "nothing to rebuild" and left its usage model at position 0 (lag: the whole
    history) for the zone's first report to build inline; UTC's status showed that lag as
    `ok` with no word on what keeps it or what to type."""
    with open_ledger(ledger_url) as opened:
        for i in range(5):
            run(opened, ("policy", f"p{i}", i))
    seoul = {"LEDGER_TIMEZONE": "Asia/Seoul"}
    ok(ledger_url, "projections", "status", env=seoul)  # the zone's model is set up, at position 0
    how = "`LEDGER_TIMEZONE=Asia/Seoul ledger projections rebuild usage`"
    table = stdout_of(ledger_url, "projections", "status")
    assert "usage_asia_seoul lags" in table and how in table
    out = stdout_of(ledger_url, "projections", "rebuild", "usage", "--batch-size", "2", env=seoul)
    assert "caught up usage_asia_seoul" in out and "nothing to rebuild" not in out
    (row,) = [s for s in as_json(ledger_url, "projections", "status") if s["name"] == "usage_asia_seoul"]
    assert row["lag"] == 0
    with open_ledger(ledger_url) as opened:
        run(opened, ("policy", "p9", 1))  # a lag its zone's next read catches up: not a step to take
    assert how not in stdout_of(ledger_url, "projections", "status")
    again = stdout_of(ledger_url, "projections", "rebuild", "usage", env=seoul)
    assert again.startswith("nothing to rebuild")  # caught up: nothing said twice


def test_the_command_status_names_for_a_zone_never_caught_up_catches_it_up(ledger_url: str) -> None:
    """Status named a zone's usage model at position 0 with the command to catch it up
    whatever its lag, while that command caught up only a batch or more: on a ledger of a
    few events it said "nothing to rebuild", and status named the same command again."""
    with open_ledger(ledger_url) as opened:
        run(opened, ("policy", "p1", 1))
    seoul = {"LEDGER_TIMEZONE": "Asia/Seoul"}
    ok(ledger_url, "projections", "status", env=seoul)  # set up at position 0, fewer events behind than a batch
    how = "`LEDGER_TIMEZONE=Asia/Seoul ledger projections rebuild usage`"
    assert how in stdout_of(ledger_url, "projections", "status")
    assert "caught up usage_asia_seoul" in stdout_of(ledger_url, "projections", "rebuild", "usage", env=seoul)
    assert how not in stdout_of(ledger_url, "projections", "status")


def test_old_tables_a_cut_short_collection_left_are_dropped_by_the_next_one(ledger_url: str) -> None:
    with open_ledger(ledger_url) as old:
        for i in range(3):
            run(old, ("policy", f"p{i}", i))
        old.runner.catch_up()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(ProjectionRunner, "drop_retired_tables", lambda runner: True)  # as if killed before it
            new_code(ledger_url).close()
        # Old code refuses at once: its tables are gone (renamed, on SQLite), not half emptied.
        with pytest.raises(ReadModelVersionMismatch):
            old.queries.keypair_resource_policies()
    with new_code(ledger_url, build_pending=False) as new:
        with new.read_models.connect() as conn:
            left = list(conn.execute(sa.select(ProjectionRunner.retired.c.projection)).scalars())
        if ledger_url.startswith("sqlite"):
            assert left == [f"replaced_{OLD_NAME}"] and version_tables(new, left[0]) == [f"replaced_{OLD_NAME}_rows"]
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(versions, "RETIRED_CHUNK", 1)  # a row per transaction: 4 policies, 4 chunks
                assert new.runner.drop_retired_tables(max_chunks=2) is False
                assert version_tables(new, left[0]) == [f"replaced_{OLD_NAME}_rows"]
                follow(new, 0.01, once=True)  # the follower goes on, a few chunks per wake
            assert version_tables(new, left[0]) == []
            assert new.runner.drop_retired_tables() is True
        else:
            assert left == []  # dropped in the switch itself
        assert version_tables(new, OLD_NAME) == []
        with new.read_models.connect() as conn:
            assert list(conn.execute(sa.select(ProjectionRunner.retired))) == []
        assert sessions(new) == {"default": 30, "p0": 0, "p1": 1, "p2": 2}


def test_a_retired_table_another_process_dropped_first_counts_as_emptied(tmp_path: Any) -> None:
    """A follower and `ledger projections rebuild` both drop the retired tables: the one
    that came second failed on `no such table` after the rebuild had in fact finished."""
    url = f"sqlite:///{tmp_path / 'l.db'}"
    with open_ledger(url) as old:
        run(old, ("policy", "p0", 0))
        old.runner.catch_up()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(ProjectionRunner, "drop_retired_tables", lambda runner: True)  # left for later
            new_code(url).close()
    with new_code(url, build_pending=False) as first, new_code(url, build_pending=False) as second:
        (name,) = version_tables(first, f"replaced_{OLD_NAME}")  # what `first` read before the drop
        assert second.runner.drop_retired_tables() is True
        assert first.runner._empty_in_chunks(name, None) == (True, 0)
        assert first.runner.drop_retired_tables() is True


# Zone pairs whose usage table names begin alike: `usage_v4_america_bahia_` begins
# `usage_v4_america_bahia_banderas_kernels` too.
PREFIXED_ZONES = [("America/Bahia", "America/Bahia_Banderas"), ("NZ", "NZ-CHAT"), ("Etc/GMT", "Etc/GMT-1")]


@pytest.mark.parametrize("rebuild", ["forced", "version switch"])
@pytest.mark.parametrize(("zone", "other_zone"), PREFIXED_ZONES)
def test_rebuilding_one_zones_usage_leaves_a_zone_named_alike_intact(
    ledger_url: str, zone: str, other_zone: str, rebuild: str
) -> None:
    """A rebuild's tables were found by prefix: one zone's retired tables took those of a
    zone whose name begins the same (dropped, or renamed and dropped on SQLite), while
    its tracking row stayed at the head, so its reports were empty from then on."""
    month = UsagePerMonthAction(month="202410", group_ids=None)

    def other_code() -> AbstractContextManager[None]:  # the code both start with: for a switch, the version before
        return code_with(usage=older(UsageProjection)) if rebuild == "version switch" else nullcontext()

    with other_code(), open_ledger(ledger_url, other_zone) as other, open_ledger(ledger_url, zone) as one:
        start_kernel(other, create_group(other, "team").id)
        assert [g["g_name"] for g in asyncio.run(other.services.group.usage_per_month(month)).result] == ["team"]
        other_tables = version_tables(other, other.projections.usage.versioned_name)
        one.runner.catch_up()
    if rebuild == "forced":
        with open_ledger(ledger_url, zone) as one:
            one.runner.catch_up(one.runner.force([one.projections.usage]))
            one.runner.drop_retired_tables()
    else:
        open_ledger(ledger_url, zone).close()  # builds today's version of one zone, retires the one before
    with other_code(), open_ledger(ledger_url, other_zone) as other:
        assert version_tables(other, other.projections.usage.versioned_name) == other_tables
        assert [g["g_name"] for g in asyncio.run(other.services.group.usage_per_month(month)).result] == ["team"]

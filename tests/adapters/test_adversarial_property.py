"""Accepted means readable forever: the property that keeps the class of poison inputs gone.

Hypothesis drives every processor with adversarial values, in the action and in the
actor's `ActionTriggerMeta`, under a random time zone, on SQLite and PostgreSQL. Each
command either raises a `LedgerError` (and stores nothing but its audit record) or is
accepted. Afterwards every query, both usage reports for every month an accepted time
falls in (serialised with `allow_nan=False`), `verify` and `projections status` answer
without any exception.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from adapters.bootstrap import Ledger, open_ledger
from adapters.store.chain import verify
from domain.actions import ActionTriggerMeta, BaseAction
from domain.errors import LedgerError
from domain.group import UsagePerMonthAction, UsagePerPeriodAction
from domain.projection_ops import SkipProjectionEventAction
from domain.validation import LedgerModel
from tests.actions import ROOT, SAMPLES, World, build_world, run, stream_lengths
from tests.conftest import fresh_url

ZONES = ["UTC", "Asia/Seoul", "America/New_York", "Pacific/Kiritimati", "Pacific/Pago_Pago", "Asia/Kathmandu"]

# Calendar edges with odd offsets: the first and last representable days, DST gaps, leap days.
_EDGE_TIMES = [
    datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
    datetime(1, 1, 1, 12, tzinfo=UTC),
    datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2024, 2, 29, 23, 59, 59, tzinfo=timezone(timedelta(hours=-23, minutes=-59))),
    datetime(2024, 3, 10, 2, 30, tzinfo=ZoneInfo("America/New_York")),  # inside a DST gap
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(1900, 1, 1, tzinfo=timezone(timedelta(hours=14))),
    datetime(1900, 1, 1, tzinfo=UTC),  # December 1899 west of Greenwich
    datetime(8999, 12, 31, 23, 59, 59, tzinfo=UTC),  # year 9000 east of it
    datetime(8999, 12, 31, 20, tzinfo=timezone(timedelta(hours=-3, minutes=-30))),
]
times = st.one_of(
    st.sampled_from(_EDGE_TIMES),
    st.sampled_from(_EDGE_TIMES).map(lambda t: t.isoformat()),
    st.sampled_from(_EDGE_TIMES).map(lambda t: t.isoformat()),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.sampled_from([None, UTC])),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(
        lambda t: t.replace(tzinfo=timezone(timedelta(minutes=t.microsecond % 2879 - 1439))).isoformat()
    ),
    st.sampled_from(["2024-13-01T00:00:00Z", "0000-01-01", "not a time", "", "2024-10-01T00:00:00+25:00"]),
)
numbers = st.one_of(
    st.sampled_from([0, -1, 1, 2**63 - 1, 2**63, 10**30, math.inf, -math.inf, math.nan, 1e-300, 1e308, 0.0001]),
    st.sampled_from(["inf", "-inf", "nan", "NaN", "1e400", "1" * 5000, "٣", "1.1", "0.5", "1.1k", "0.1", "-0"]),
    st.sampled_from([Decimal("NaN"), Decimal("sNaN"), Decimal("Infinity"), Decimal("1e-30"), Decimal("1e30")]),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([10**5000, True, False]),
)
strings = st.one_of(
    st.sampled_from(
        [
            "",
            "a" * 5000,
            "x" * 257,
            "\x1b]0;pwned\x07\x1b[2J",
            "ba\u200bse",
            "\u202ebase",
            "base\u2066",
            "[red]x[/red]",
            "\x00",
            "e\u0301",  # NFD: normalised to one character
            "\ud800",  # a lone surrogate
            "👩‍👩‍👧",
        ]
    ),
    st.text(max_size=40),
)
wrong_types = st.sampled_from([None, [1], {"a": 1}, (), b"bytes", object()])
slots = st.dictionaries(
    st.one_of(st.sampled_from(["cpu", "mem", "memory", "gpu", "cuda.shares", "bogus"]), strings),
    st.one_of(numbers, strings),
    max_size=3,
)
anything = st.one_of(times, numbers, strings, wrong_types, slots)


def hostile_for(field: str) -> st.SearchStrategy[Any]:
    """Mostly values of the field's own kind (where a poison hides), sometimes anything."""
    if field.endswith("_at"):
        own: st.SearchStrategy[Any] = times
    elif "slots" in field:
        own = slots
    elif field in ("month", "start_date", "end_date"):
        own = st.one_of(st.sampled_from(["999912", "000101", "190001", "99991231", "00010101", "٢٠٢٤١٠"]), strings)
    elif "name" in field or field in ("host", "access_key", "description", "integration_id", "image", "agent"):
        own = strings
    else:
        own = numbers
    return st.one_of(own, own, own, anything)


def fields_of(model: LedgerModel) -> dict[str, Any]:
    """A model's fields as constructor arguments; nested models as plain dicts."""
    out: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        out[name] = fields_of(value) if isinstance(value, LedgerModel) else value
    return out


def _paths(fields: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every field, nested models' fields included (slot mappings are one value)."""
    paths: list[tuple[str, ...]] = []
    for name, value in fields.items():
        if isinstance(value, dict) and value and not name.endswith("slots"):
            paths.extend(_paths(value, (*prefix, name)))
        else:
            paths.append((*prefix, name))
    return paths


def _replaced(fields: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    head, *rest = path
    return {**fields, head: _replaced(fields[head], tuple(rest), value) if rest else value}


@st.composite
def hostile_fields(draw: st.DrawFn, fields: dict[str, Any]) -> dict[str, Any]:
    """Mostly one field hostile and the rest valid, so the poison is not hidden behind an
    earlier refusal; sometimes several, and sometimes a field that has no business here."""
    paths = _paths(fields)
    count = draw(st.sampled_from([1, 1, 1, 2, 3]))
    for path in draw(st.lists(st.sampled_from(paths), min_size=1, max_size=count, unique=True)):
        fields = _replaced(fields, path, draw(hostile_for(path[-1])))
    if draw(st.integers(0, 9)) == 0:
        fields = {**fields, draw(st.sampled_from(["bogus", "__class__"])): draw(anything)}
    return fields


@st.composite
def triggers(draw: st.DrawFn) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "user_id": ROOT.user_id,
        "access_key": ROOT.access_key,
        "role": "superadmin",
        "domain_name": ROOT.domain_name,
        "request_id": ROOT.request_id,
    }
    for name in fields:
        if draw(st.integers(0, 4)) == 0:
            fields[name] = draw(st.one_of(strings, wrong_types, numbers))
    return fields


def _accepted_times(action: BaseAction) -> Iterator[datetime]:
    for name in type(action).model_fields:
        value = getattr(action, name)
        if isinstance(value, datetime):
            yield value
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, BaseAction):
                    yield from _accepted_times(item)


def _as_json(value: Any) -> str:
    """What an API would send: strict JSON (no NaN or Infinity); other types as text."""
    return json.dumps(value, allow_nan=False, default=str)


def _every_read_answers(ledger: Ledger, world: World, zone: str, accepted: list[datetime]) -> None:
    queries = ledger.queries
    _as_json([p.to_json() for p in queries.keypair_resource_policies()])
    for policy in queries.keypair_resource_policies():
        _as_json([h.to_json() for h in queries.history("keypair_resource_policy", policy.name)])
    _as_json([dataclasses.asdict(k) for k in queries.keypairs()])
    _as_json([dataclasses.asdict(g) for g in queries.groups()])
    for group in queries.groups():
        queries.group_members(group.id)
        queries.history("group", str(group.id))
        queries.state_at("group", str(group.id), at=datetime.now(UTC))
    for entry in queries.audit_log():
        _as_json(entry.to_json())
    for kind, key in (("kernel", world.kernel), ("vfolder", world.vfolder), ("endpoint", world.endpoint)):
        queries.history(kind, str(key))
    # Domains, users, sessions and the policies they resolve to: every value stored by a
    # hostile domain, user, session or token command is read back through them too.
    for domain in queries.domains():
        _as_json(domain.to_json())
        _as_json([h.to_json() for h in queries.history("domain", domain.name)])
    for user in queries.users():
        _as_json(user.to_json())
        _as_json([h.to_json() for h in queries.history("user", str(user.user_id))])
    for session in queries.sessions():
        _as_json(session.to_json())
        detail = queries.session(session.session_id)
        assert detail is not None
        _as_json(detail.to_json())
        _as_json([h.to_json() for h in queries.history("session", str(session.session_id))])
    _as_json([due.to_json() for due in queries.sessions_due()])
    for keypair in queries.keypairs():
        _as_json(queries.effective_policy(keypair.access_key).to_json())
    local = ZoneInfo(zone)
    months = {t.astimezone(local).strftime("%Y%m") for t in accepted} | {"202410"}
    for month in sorted(months):
        result = run(ledger, "group", "usage_per_month", UsagePerMonthAction(month=month)).result
        _as_json(result)
        first = date(int(month[:4]), int(month[4:]), 1)
        last = min(first + timedelta(days=27), date(9999, 12, 30))
        period = UsagePerPeriodAction(start_date=first.strftime("%Y%m%d"), end_date=last.strftime("%Y%m%d"))
        _as_json(run(ledger, "group", "usage_per_period", period).result)
        queries.usage_totals(first, last)
    assert verify(ledger.app.recorder).ok
    statuses = ledger.runner.status()
    assert all(s.lag == 0 and s.stall is None for s in statuses), [s.to_json() for s in statuses]


def _run_commands(ledger: Ledger, world: World, data: st.DataObject, count: int) -> list[datetime]:
    accepted: list[datetime] = []
    for _ in range(count):
        key = data.draw(st.sampled_from(sorted(SAMPLES)), label="processor")
        sample = SAMPLES[key](world)
        fields = data.draw(hostile_fields(fields_of(sample)), label=f"{key[1]} fields")
        trigger = data.draw(triggers(), label="trigger")
        try:
            try:
                action = type(sample)(**fields)
                who = ActionTriggerMeta(**trigger)
            except LedgerError:
                continue
            before = stream_lengths(ledger)
            try:
                run(ledger, *key, action, who)
            except LedgerError:
                assert stream_lengths(ledger) == before, f"{key} refused but changed an entity's stream"
                continue
            accepted.extend(_accepted_times(action))
        finally:
            if isinstance(sample, SkipProjectionEventAction):
                _unstall(ledger, sample)
    return accepted


def _unstall(ledger: Ledger, skip: SkipProjectionEventAction) -> None:
    """The skip's sample stalled a read model on purpose: a hostile skip that was refused
    leaves it so, and the valid one recovers it (any other stall is a finding)."""
    if any(s.name == skip.projection and s.stall is not None for s in ledger.runner.status()):
        run(ledger, "projection", "skip_projection_event", skip)


# A longer search: LEDGER_PROPERTY_EXAMPLES=400 (SQLite; PostgreSQL gets three eighths).
EXAMPLES = int(os.environ.get("LEDGER_PROPERTY_EXAMPLES", "100"))  # more for a deeper search


@pytest.mark.slow
@pytest.mark.parametrize(
    ("backend_name", "examples"), [("sqlite", EXAMPLES), ("postgresql", max(1, EXAMPLES * 3 // 8))]
)
def test_accepted_means_readable_forever(backend_name: str, examples: int) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        # Each example opens a ledger and runs a dozen commands: shrinking would take
        # minutes. The failure report lists every draw, which is enough to replay it.
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
    )
    @given(zone=st.sampled_from(ZONES), data=st.data())
    def check(zone: str, data: st.DataObject) -> None:
        with fresh_url(backend_name) as url, open_ledger(url, timezone=zone) as ledger:
            world = build_world(ledger)
            accepted = _run_commands(ledger, world, data, count=8)
            _every_read_answers(ledger, world, zone, accepted)

    check()

"""Every query of the in-process API, every parameter, every hostile value: a domain error
naming the parameter, or an answer; never an exception from a library, on either backend
(a NUL character is refused by PostgreSQL's driver and not by SQLite's, a 5,000-digit
number by SQLite's alone: both are refused before either sees them)."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from adapters.bootstrap import Ledger, open_ledger
from adapters.read.arguments import checked
from domain.errors import InvalidAPIParameters, LedgerError
from domain.keypair_resource_policy import CreateKeyPairResourcePolicyAction, KeyPairResourcePolicyCreator
from tests.actions import run
from tests.hostile import HOSTILE

# A value of the right kind for each required parameter, so each hostile value is tried
# in one parameter at a time.
PLAUSIBLE: dict[str, Any] = {
    "name": "x",
    "access_key": "AKX",
    "domain_name": "default",
    "entity_type": "group",
    "entity_id": "x",
    "first": date(2024, 1, 1),
    "last": date(2024, 1, 31),
}


def _queries(ledger: Ledger) -> list[tuple[str, Callable[..., Any]]]:
    found = []
    for name in dir(ledger.queries):
        query = getattr(ledger.queries, name)
        if not name.startswith("_") and inspect.ismethod(query):
            found.append((name, query))
    return found


def _required(query: Callable[..., Any]) -> dict[str, Any]:
    wanted = {}
    for parameter in inspect.signature(query).parameters.values():
        if parameter.default is inspect.Parameter.empty:
            wanted[parameter.name] = PLAUSIBLE.get(parameter.name, uuid.UUID(int=1))
    return wanted


def test_every_query_is_walked(ledger: Ledger) -> None:
    names = {name for name, _ in _queries(ledger)}
    assert {"audit_log", "groups", "state_at", "usage_totals", "sessions_due", "kernels", "users"} <= names
    assert len(names) >= 25, names


def test_a_hostile_argument_is_a_domain_error_naming_it(ledger: Ledger) -> None:
    escaped = []
    for name, query in _queries(ledger):
        required = _required(query)
        for parameter in inspect.signature(query).parameters:
            for value in HOSTILE:
                try:
                    query(**{**required, parameter: value})
                except LedgerError:
                    pass
                except Exception as exc:  # what the test is looking for
                    escaped.append(f"{name}({parameter}={type(value).__name__}): {type(exc).__name__}: {exc!s:.120}")
    assert not escaped, escaped


def test_the_refusal_names_the_parameter_and_what_it_takes(ledger: Ledger) -> None:
    with pytest.raises(InvalidAPIParameters, match=r"^since: must be a datetime or text or null, not int$"):
        ledger.queries.audit_log(since=20240101)  # type: ignore[arg-type]
    with pytest.raises(InvalidAPIParameters, match=r"^limit: must be an integer or null, not bool$"):
        ledger.queries.groups(limit=True)
    with pytest.raises(InvalidAPIParameters, match=r"^name: must not contain a NUL character$"):
        ledger.queries.keypair_resource_policy("a\x00b")
    with pytest.raises(InvalidAPIParameters, match=r"^limit: is out of range"):
        ledger.queries.groups(limit=10**30)
    with pytest.raises(InvalidAPIParameters, match=r"^group_id: must be a UUID or text"):
        ledger.queries.group([1])  # type: ignore[arg-type]
    # Values of the right kinds still answer (a datetime is a date, as Python has it).
    assert ledger.queries.usage_totals(datetime(2024, 1, 1, tzinfo=UTC), date(2024, 1, 2)) is not None
    assert ledger.queries.groups(limit=1, active=True) == []


def test_a_call_that_does_not_fit_the_signature_stays_a_type_error() -> None:
    @checked
    def query(name: str, *, limit: int | None = None) -> str:
        return name

    with pytest.raises(TypeError):
        query()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        query("x", unknown=1)  # type: ignore[call-arg]
    assert query("x", limit=None) == "x"


def test_an_annotation_without_a_rule_is_refused_when_first_called() -> None:
    @checked
    def query(names: list[str]) -> int:
        return len(names)

    with pytest.raises(TypeError, match="no rule"):
        query(["x"])


def test_a_time_with_no_utc_time_is_refused_naming_the_parameter(ledger: Ledger) -> None:
    """0001-01-01 at +05:00 is before year 1 in UTC: it overflowed where the query
    converted it (audit_log, state_at, diff)."""
    early = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))
    late = datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5)))
    for call, field in (
        (lambda: ledger.queries.audit_log(since=early), "since"),
        (lambda: ledger.queries.audit_log(until=late), "until"),
        (lambda: ledger.queries.state_at("keypair_resource_policy", "default", at=early), "at"),
        (lambda: ledger.queries.diff("keypair_resource_policy", "default", from_at=early), "from_at"),
    ):
        with pytest.raises(InvalidAPIParameters, match=r"must be a time that exists in UTC") as refused:
            call()
        assert refused.value.field == field
    # A naive year-1 time is UTC already: it answers.
    assert ledger.queries.state_at("keypair_resource_policy", "default", at=datetime(1, 1, 1)) is None


def test_every_time_parameter_takes_iso_text_as_the_kernel_list_and_sessions_due_do(ledger: Ledger) -> None:
    """`kernels(since=...)` and `sessions_due(now=...)` took ISO 8601 text; the audit trail,
    `state_at`, `diff` and `group_named_at` refused the same text ("must be a datetime")."""
    policy = "keypair_resource_policy"
    moment = ledger.queries.history(policy, "default")[0].occurred_at
    text = moment.astimezone(timezone(timedelta(hours=9))).isoformat()
    assert ledger.queries.state_at(policy, "default", at=text) == ledger.queries.state_at(policy, "default", at=moment)
    assert ledger.queries.state_at(policy, "default", at="2000-01-01T00:00:00Z") is None
    assert ledger.queries.audit_log(since="2000-01-01", until=text) == ledger.queries.audit_log(until=moment)
    assert list(ledger.queries.audit_export(since="2000-01-01T00:00:00Z")) == ledger.queries.audit_log()
    by_text = ledger.queries.diff(policy, "default", from_at="2000-01-01T00:00:00Z", to_at=text)
    assert by_text == ledger.queries.diff(policy, "default", from_at=datetime(2000, 1, 1, tzinfo=UTC), to_at=moment)
    assert by_text  # the policy's creation: every field from null
    assert ledger.queries.group_named_at("default", "nobody", "2000-01-01T00:00:00Z") is None
    for call, field in (
        (lambda: ledger.queries.state_at(policy, "default", at="yesterday"), "at"),
        (lambda: ledger.queries.diff(policy, "default", to_at="2026-02-29T00:00:00Z"), "to_at"),
        (lambda: ledger.queries.audit_log(since="2026-13-01"), "since"),
        (lambda: ledger.queries.group_named_at("default", "x", "1899-12-31T00:00:00Z"), "at"),
    ):
        with pytest.raises(InvalidAPIParameters) as refused:
            call()
        assert refused.value.field == field


def test_text_is_looked_up_in_nfc_as_commands_store_it(ledger: Ledger) -> None:
    """A policy created as 'cafe' + U+0301 is stored as 'caf\u00e9' (NFC): a query by the
    name as given found nothing, its history and audit trail neither."""
    decomposed = "cafe\u0301"
    run(
        ledger,
        "keypair_resource_policy",
        "create_keypair_resource_policy",
        CreateKeyPairResourcePolicyAction(creator=KeyPairResourcePolicyCreator(name=decomposed)),
    )
    found = ledger.queries.keypair_resource_policy(decomposed)
    assert found is not None and found.name == "caf\u00e9"
    assert [p.name for p in ledger.queries.keypair_resource_policies(name_prefix="cafe\u0301")] == ["caf\u00e9"]
    assert len(ledger.queries.history("keypair_resource_policy", decomposed)) == 1
    assert ledger.queries.state_at("keypair_resource_policy", decomposed) is not None
    assert [e.operation for e in ledger.queries.audit_log(entity_id=decomposed)] == ["create"]


@pytest.mark.parametrize("zone", ["UTC", "Pacific/Pago_Pago"])
def test_usage_totals_refuses_a_day_no_report_covers(ledger_url: str, zone: str) -> None:
    """A day's local edges overflowed datetime (date.max has no next midnight; date.min
    has none in UTC west of it): a raw OverflowError instead of a refusal naming it."""
    with open_ledger(ledger_url, timezone=zone) as ledger:
        for first, last, field in [
            (date(9999, 12, 30), date(9999, 12, 31), "first"),
            (date(2024, 1, 1), date.max, "last"),
            (date.min, date(2024, 1, 1), "first"),
            (date(1898, 12, 31), date(1899, 1, 1), "first"),
        ]:
            with pytest.raises(InvalidAPIParameters, match=rf"^{field}: Invalid date values"):
                ledger.queries.usage_totals(first, last)
        assert ledger.queries.usage_totals(date(1899, 1, 1), date(9000, 12, 31)) == {}

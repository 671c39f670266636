"""Error codes say what happened: never a placeholder operation like `generic`, and a
not-found error names the kind of thing not found."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import pytest

import domain.errors as errors
from domain.catalog import EntityType
from domain.entity import entity_not_found
from domain.errors import LedgerError, ObjectNotFound


def subclasses(cls: type[LedgerError]) -> Iterator[type[LedgerError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)


def instance(cls: type[LedgerError]) -> LedgerError:
    """`cls` built with a placeholder for each required argument (by its annotation)."""
    placeholders = {"int": 0, "str": "x"}
    arguments: dict[str, Any] = {}
    positional: list[Any] = []
    for name, parameter in inspect.signature(cls).parameters.items():
        if parameter.default is not inspect.Parameter.empty or parameter.kind in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        ):
            continue
        value = placeholders.get(str(parameter.annotation), "x")
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY:
            arguments[name] = value
        else:
            positional.append(value)
    return cls(*positional, **arguments)


ALL = [LedgerError, *subclasses(LedgerError)]


def test_every_error_class_is_walked() -> None:
    declared = {c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, LedgerError)}
    assert declared <= set(ALL) and len(declared) > 20


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_no_code_says_generic(cls: type[LedgerError]) -> None:
    code = instance(cls).code
    assert "generic" not in code and "__" not in code and not code.startswith("_") and not code.endswith("_")
    assert "generic" not in cls.error_operation


def test_codes_name_what_happened() -> None:
    assert LedgerError("x").code == "ledger_internal"
    assert errors.InvalidAPIParameters("bad", field="user_id").code == "ledger_invalid_parameters"
    assert errors.GroupNotFound("gone").code == "group_not_found"
    assert errors.PurgeGroupActionActiveKernelsError("busy").code == "group_purge_active_kernels"
    assert ObjectNotFound("gone").code == "ledger_not_found"  # no entity type given: the domain's


@pytest.mark.parametrize("kind", list(EntityType))
def test_a_missing_entity_names_its_kind(kind: EntityType) -> None:
    assert entity_not_found(kind, "k").code == f"{kind.value}_not_found"
    assert entity_not_found(EntityType.KEYPAIR_RESOURCE_POLICY, "p").code == "keypair_resource_policy_not_found"


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_every_error_survives_pickling_with_its_attributes(cls: type[LedgerError]) -> None:
    """What crosses a process boundary (a ProcessPoolExecutor's worker) is pickled: an error
    whose __init__ takes required keywords (QuotaExceeded's limit, scope and scope_id)
    could not be unpickled, and the caller got BrokenProcessPool instead of it."""
    import pickle

    error = instance(cls)
    twin = pickle.loads(pickle.dumps(error))
    assert type(twin) is cls
    assert (str(twin), twin.args, twin.code, vars(twin)) == (str(error), error.args, error.code, vars(error))

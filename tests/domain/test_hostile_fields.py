"""Every input model, every field, every hostile value: a domain error or a value, never
an exception from a library. The adversarial property test draws such values at random;
this walks all of them deterministically, so a field that hashes, compares or formats its
raw value before checking its type is found on every run (a token's role once hashed a
dict and escaped as a TypeError)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import warnings
from collections.abc import Iterator

import pytest

import domain
from domain.errors import InvalidAPIParameters, LedgerError
from domain.validation import LedgerModel
from tests.hostile import HOSTILE

for _module in pkgutil.walk_packages(domain.__path__, "domain."):
    importlib.import_module(_module.name)  # every input model defined, wherever it lives


def _subclasses(cls: type) -> Iterator[type]:
    sub: type
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


MODELS = sorted({m for m in _subclasses(LedgerModel) if not inspect.isabstract(m)}, key=lambda m: m.__qualname__)


def test_every_input_model_is_walked() -> None:
    assert len(MODELS) >= 40, [m.__name__ for m in MODELS]


@pytest.mark.parametrize("model", MODELS, ids=[m.__qualname__ for m in MODELS])
def test_a_hostile_value_in_any_field_is_a_domain_error(model: type[LedgerModel]) -> None:
    escaped = []
    for name in model.model_fields:
        for value in HOSTILE:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # deprecated policy fields warn
                try:
                    model(**{name: value})
                except LedgerError as exc:
                    if not _writable(str(exc)):  # the error's own text must reach a client
                        escaped.append(f"{name}={type(value).__name__}: unwritable {str(exc)[:120]!r}")
                except Exception as exc:  # what the test is looking for
                    escaped.append(f"{name}={type(value).__name__}: {type(exc).__name__}: {str(exc)[:120]}")
    assert not escaped, escaped


@pytest.mark.parametrize("model", MODELS, ids=[m.__qualname__ for m in MODELS])
def test_a_key_holding_a_lone_surrogate_is_an_unknown_field_named_escaped(model: type[LedgerModel]) -> None:
    """pydantic cannot read such a key: it once answered in its own words, naming the model."""
    with pytest.raises(InvalidAPIParameters) as refused:
        model(**{"\ud800": 1})
    assert refused.value.field == "\\ud800"
    assert refused.value.reason == "unknown field"


@pytest.mark.parametrize("model", MODELS, ids=[m.__qualname__ for m in MODELS])
def test_a_refusal_names_the_field_and_the_reason_never_a_class(model: type[LedgerModel]) -> None:
    """An unknown field was `unknown field for KeyPairResourcePolicyCreator`, a nested input
    that is no object `Input should be a valid dictionary or instance of ...`: the class
    names are the code's, not words a client of the API or the CLI knows."""
    with pytest.raises(InvalidAPIParameters) as refused:
        model(**{"warp": 1})  # with a required field left out too, where the model has one
    named = {each.field: each.reason for each in refused.value.every()}
    assert named.get("warp", "unknown field") == "unknown field" and model.__name__ not in str(named), named
    for name, field in model.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, LedgerModel):
            with pytest.raises(InvalidAPIParameters) as nested:
                model(**{name: [1]})
            reasons = {each.field: each.reason for each in nested.value.every()}
            assert reasons[name] == "expected an object of fields", reasons


def _writable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True

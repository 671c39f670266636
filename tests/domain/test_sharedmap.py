"""SharedMap: an immutable mapping whose changes make new maps sharing the rest.

Checked against a plain dict model over random operations (small maps and maps split into
buckets), with every earlier map still holding what it held. The aggregates that keep one
are tested in tests/adapters/store/test_shared_maps_stored.py.
"""

from __future__ import annotations

from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.sharedmap import SharedMap, plain_state, shared

KEYS = st.text(min_size=0, max_size=6)
OPS = st.lists(st.tuples(st.booleans(), KEYS, st.integers()), max_size=400)


@settings(max_examples=60)
@given(ops=OPS, start=st.dictionaries(KEYS, st.integers(), max_size=300))
def test_every_change_matches_a_dict_and_leaves_earlier_maps_alone(ops, start):
    model = dict(start)
    current = SharedMap(start)
    history = [(current, dict(model))]
    for put, key, value in ops:
        if put:
            current = current.set(key, value)
            model[key] = value
        else:
            current = current.without(key)
            model.pop(key, None)
        history.append((current, dict(model)))
    for kept, expected in history:  # every map ever made still reads as it did
        assert kept == expected and expected == kept
        assert len(kept) == len(expected)
        assert sorted(kept) == sorted(expected)
        assert kept.to_dict() == expected
        assert all(kept[k] == v and k in kept for k, v in expected.items())


def test_a_map_splits_into_buckets_and_a_change_copies_one():
    small = SharedMap({f"k{i}": i for i in range(10)})
    assert len(small._buckets) == 1
    large = SharedMap({f"k{i}": i for i in range(5000)})
    assert len(large._buckets) == 64
    changed = large.set("new", 1)
    # All but the changed key's bucket are the very same objects.
    same = sum(a is b for a, b in zip(large._buckets, changed._buckets, strict=True))
    assert same == 63
    assert "new" not in large and changed["new"] == 1 and len(changed) == 5001
    grown = SharedMap({f"k{i}": i for i in range(127)}).set("k127", 127)  # crossing the split size
    assert len(grown._buckets) == 64 and len(grown) == 128 and grown["k0"] == 0


def test_it_cannot_be_changed_in_place_and_reads_like_a_mapping():
    m = SharedMap({"a": 1})
    with pytest.raises(TypeError):
        m["b"] = 2  # type: ignore[index]
    assert not hasattr(m, "pop") and not hasattr(m, "__dict__")
    assert m.get("a") == 1 and m.get("zz") is None
    assert ["x"] not in m  # an unhashable key is in no map (a dict would raise)
    assert m.without("zz") is m
    assert repr(m) == "SharedMap({'a': 1})"
    assert shared(m) is m and shared({"a": 1}) == m and isinstance(shared({}), SharedMap)


def test_plain_state_replaces_shared_maps_only():
    state = {"kernels": SharedMap({"k": ["v"]}), "fields": {"x": 1}, "view": MappingProxyType({})}
    plain_state(state)
    assert type(state["kernels"]) is dict and state["kernels"] == {"k": ["v"]}
    assert type(state["view"]) is MappingProxyType  # nothing else is touched

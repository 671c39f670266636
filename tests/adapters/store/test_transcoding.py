"""The orjson transcoder (adapters.store.transcoding) against the library's JSONTranscoder:
whatever one encodes, the other decodes to the very same objects (types included), and
whatever the library refuses to encode is refused the same way."""

from __future__ import annotations

import enum
import math
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Transcoding,
    TranscodingNotRegisteredError,
    UUIDAsHex,
)
from hypothesis import given
from hypothesis import strategies as st

from adapters.store.transcoding import FastJSONTranscoder
from domain.catalog import EntityType
from domain.workload.aggregate import Kernel


class Tag(str):
    """A str subclass whose own __str__ differs from its characters (json writes those)."""

    def __str__(self) -> str:
        return "not-the-characters"


class Colour(enum.Enum):  # neither json nor the library can store it
    RED = 1


class Level(enum.IntEnum):  # json writes its int
    LOW = 1


class Odd(enum.StrEnum):
    """A str enum whose value is not its characters: json writes the characters."""

    ODD = "o"

    def __new__(cls, value: str) -> Odd:
        member = str.__new__(cls, "characters")
        member._value_ = value
        return member


class Point:
    def __init__(self, x: Any, y: Any) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return type(other) is Point and same(self.x, other.x) and same(self.y, other.y)

    __hash__ = None  # type: ignore[assignment]


class PointAsDict(Transcoding):
    """A registered type whose encoding holds values of other registered types (and of
    types orjson would write its own way, such as a UUID)."""

    type = Point
    name = "point"

    def encode(self, obj: Point) -> dict[str, Any]:
        return {"x": obj.x, "y": obj.y}

    def decode(self, data: dict[str, Any]) -> Point:
        return Point(data["x"], data["y"])


def transcoders() -> tuple[JSONTranscoder, FastJSONTranscoder]:
    made: list[Any] = [JSONTranscoder(), FastJSONTranscoder()]
    for transcoder in made:
        for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO(), PointAsDict()):
            transcoder.register(transcoding)
    return made[0], made[1]


LIBRARY, FAST = transcoders()


def same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (a str is not a UUID, a list is not a
    tuple); NaN equals NaN."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return (math.isnan(a) and math.isnan(b)) or a == b
    if type(a) is dict:
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if type(a) is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


zones = st.sampled_from([UTC, timezone(timedelta(hours=9)), timezone(timedelta(minutes=-330)), None])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),  # past 64 bits: orjson refuses those
    st.floats(),  # NaN and infinities included
    st.text(),
    st.text(st.characters(codec="utf-8")),
    st.uuids(),
    st.datetimes(timezones=zones),
    st.decimals(allow_nan=False),
    st.sampled_from(list(EntityType)),
    st.sampled_from([Level.LOW, Tag("tag"), Odd.ODD]),
)
keys = st.one_of(st.text(max_size=8), st.sampled_from(["_type_", "_data_", "$sealed", "n"]))


def containers(children: Any) -> Any:
    return st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(keys, children, max_size=4),
        st.builds(Point, children, children),
        # What the library's own encodings look like, so decoding meets them nested.
        st.fixed_dictionaries({"_type_": st.sampled_from(["uuid_hex", "datetime_iso"]), "_data_": children}),
    )


values = st.recursive(scalars, containers, max_leaves=20)
states = st.dictionaries(keys, values, max_size=6)


def outcome(transcoder: JSONTranscoder, obj: Any) -> tuple[str, Any]:
    """("ok", what the library reads back) or ("error", the exception's type)."""
    try:
        encoded = transcoder.encode(obj)
    except Exception as exc:  # the same refusal is part of the contract
        return "error", type(exc)
    try:
        return "ok", LIBRARY.decode(encoded)
    except Exception as exc:
        return "undecodable", type(exc)


def same_reading(one: JSONTranscoder, other: JSONTranscoder, encoded: bytes) -> bool:
    """Both read the same objects, or both fail with the same exception type."""
    readings = []
    for transcoder in (one, other):
        try:
            readings.append(("ok", transcoder.decode(encoded)))
        except Exception as exc:  # a stored `_type_` whose data does not decode
            readings.append(("error", type(exc)))
    (first, value), (second, other_value) = readings
    return first == second and (same(value, other_value) if first == "ok" else value is other_value)


@given(states)
def test_fast_encoding_reads_back_as_the_library_encoding_does(state: dict[str, Any]) -> None:
    (library, read), (fast, fast_read) = outcome(LIBRARY, state), outcome(FAST, state)
    assert library == fast
    if library == "ok":
        assert same(read, fast_read)
    else:
        assert read is fast_read  # the same exception type


@given(states)
def test_library_encoding_reads_back_through_the_fast_transcoder(state: dict[str, Any]) -> None:
    try:
        encoded = LIBRARY.encode(state)
    except Exception:
        return  # nothing stored, nothing to read (refusals: the test above)
    assert same_reading(FAST, LIBRARY, encoded)


@given(states)
def test_fast_encoding_reads_back_through_the_fast_transcoder(state: dict[str, Any]) -> None:
    try:
        encoded = FAST.encode(state)
    except Exception:
        return
    assert same_reading(FAST, LIBRARY, encoded)


def kernel_created_state() -> dict[str, Any]:
    return {
        "timestamp": datetime.now(UTC),
        "originator_topic": "domain.workload.aggregate:Kernel",
        "key": "00000000-0000-0000-0000-000000000001",
        "fields": {
            "session_id": "00000000-0000-0000-0000-000000000001",
            "session_name": {"$sealed": 1, "s": "group:g", "n": "bm9uY2Vub25jZQ==", "c": "Y2lwaGVy"},
            "group_id": "4003f74b-5bf3-4738-bceb-3cab601500b8",
            "occupied_slots": {"cpu": "2", "mem": "4294967296"},
            "started_at": "2024-10-01T00:00:00+00:00",
            "mounts": [],
            "ratio": 0.5,
            "terminated_at": None,
            "attached_to_session": True,
        },
        "meta": {"action_id": "a", "request_id": None, "role": "system", "entity_type": EntityType.KERNEL},
    }


def test_an_event_state_is_written_by_orjson_exactly_as_the_library_writes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    state = kernel_created_state()
    expected = LIBRARY.encode(state)

    def refuse(self: JSONTranscoder, obj: Any) -> bytes:
        raise AssertionError("the library encoder was used")

    monkeypatch.setattr(JSONTranscoder, "encode", refuse)
    assert FAST.encode(state) == expected


@pytest.mark.parametrize(
    "value",
    [
        uuid.UUID(int=7),
        float("nan"),
        float("inf"),
        2**64,
        {1: "int key"},
        Tag("characters"),
        Level.LOW,
        Odd.ODD,
        Point(uuid.UUID(int=1), Decimal("1.5")),
        [Point(float("nan"), 1)],
    ],
)
def test_values_orjson_would_write_its_own_way_read_back_as_before(value: Any) -> None:
    state = {"value": value, "at": datetime(2024, 1, 1, tzinfo=UTC)}
    assert same(LIBRARY.decode(FAST.encode(state)), LIBRARY.decode(LIBRARY.encode(state)))


@pytest.mark.parametrize("value", [Colour.RED, object(), {uuid.UUID(int=1): 1}, "\udc80"])
def test_what_the_library_refuses_is_refused_alike(value: Any) -> None:
    with pytest.raises(Exception) as library:
        LIBRARY.encode({"value": value})
    with pytest.raises(Exception) as fast:
        FAST.encode({"value": value})
    assert type(fast.value) is type(library.value)


def test_an_unregistered_type_is_refused_with_the_library_error() -> None:
    with pytest.raises(TranscodingNotRegisteredError):
        FAST.encode({"value": timedelta(1)})


def test_the_ledger_maps_events_with_the_fast_transcoder(memory_ledger: Any) -> None:
    """Events and snapshots of the ledger go through it, and read back unchanged."""
    app = memory_ledger.app
    assert type(app.mapper.transcoder) is FastJSONTranscoder
    kernel = Kernel.create(str(uuid.UUID(int=5)), {"group_id": str(uuid.UUID(int=6)), "session_name": "s", "n": 1.5})
    app.save(kernel)
    (stored,) = app.recorder.select_events(kernel.id)
    assert orjson.loads(stored.state)["fields"]["n"] == 1.5
    event = app.mapper.to_domain_event(stored)
    assert event.fields == kernel.fields
    assert event.timestamp == kernel.created_at


class DatetimeAsTimestamp(Transcoding):
    """Another application's own datetime encoding: it replaces the library's."""

    type = datetime
    name = "datetime_ts"

    def encode(self, obj: datetime) -> float:
        return obj.timestamp()

    def decode(self, data: float) -> datetime:
        return datetime.fromtimestamp(data, UTC)


def test_a_datetime_transcoding_registered_in_place_of_the_library_one_is_used() -> None:
    library, fast = JSONTranscoder(), FastJSONTranscoder()
    for transcoder in (library, fast):
        transcoder.register(DatetimeAsISO())
        transcoder.register(DatetimeAsTimestamp())
    state = {"timestamp": datetime(2024, 1, 1, tzinfo=UTC)}
    assert fast.encode(state) == library.encode(state)
    assert same(library.decode(fast.encode(state)), state)

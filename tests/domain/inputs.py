"""Helpers the input-domain tests share: huge values, the bound on a message's length,
zones to convert to, `refused` (InvalidAPIParameters naming the field, short) and a
kernel start to vary, `mem` and `cpu` (one slot's parsed quantity)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from domain.errors import InvalidAPIParameters
from domain.values import ResourceSlot
from domain.workload.actions import StartKernelAction

HUGE = pytest.param(10**5000, id="10**5000")
NEG_HUGE = pytest.param(-(10**5000), id="-10**5000")
SHORT = 300  # no message may be longer (a 5000-digit echo would be; known slot lists are not)
ZONES = [
    ZoneInfo(z) for z in ("UTC", "Asia/Seoul", "Pacific/Kiritimati", "Etc/GMT+12", "America/St_Johns", "Asia/Kathmandu")
]


def refused(call: Any, *args: Any, field: str | None = None, **kwargs: Any) -> InvalidAPIParameters:
    """Calls, expecting InvalidAPIParameters naming `field` (or a part of it), short."""
    with pytest.raises(InvalidAPIParameters) as info:
        call(*args, **kwargs)
    error = info.value
    if field is not None:
        assert error.field is not None and (error.field == field or error.field.startswith(field + ".")), (
            error.field,
            field,
        )
    assert len(str(error)) < SHORT, str(error)
    assert "\n" not in str(error)
    return error


def kernel(**fields: Any) -> StartKernelAction:
    base: dict[str, Any] = {
        "kernel_id": uuid.uuid4(),
        "session_id": uuid.uuid4(),
        "session_name": "s",
        "group_id": uuid.uuid4(),
        "domain_name": "default",
        "user_id": uuid.uuid4(),
        "access_key": "AK",
        "occupied_slots": {"cpu": "1", "mem": "1g"},
        "started_at": "2024-01-01T00:00:00Z",
    }
    return StartKernelAction(**{**base, **fields})


def mem(raw: object) -> Decimal:
    return ResourceSlot.from_user_input({"mem": raw})["mem"]


def cpu(raw: object) -> Decimal:
    return ResourceSlot.from_user_input({"cpu": raw})["cpu"]

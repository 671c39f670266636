"""Field types of workload facts, and the JSON form of what a kernel reports."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from domain.parsers import parse_amount, parse_end_status, parse_uuid_list
from domain.times import parse_time
from domain.validation import field_of

Time = Annotated[datetime, field_of(parse_time)]
Amount = Annotated[Decimal, field_of(parse_amount)]
EndStatus = Annotated[str, field_of(parse_end_status)]
UUIDList = Annotated[list[uuid.UUID], field_of(parse_uuid_list)]


def stats_json(
    reported_at: datetime, cpu_used: Decimal, mem_used: int, io_read: int, io_write: int, disk_used: int
) -> dict[str, Any]:
    """A kernel's last stats as its StatsReported event stores them (cpu time as exact text)."""
    return {
        "reported_at": reported_at.isoformat(),
        "cpu_used": str(cpu_used),
        "mem_used": mem_used,
        "io_read": io_read,
        "io_write": io_write,
        "disk_used": disk_used,
    }

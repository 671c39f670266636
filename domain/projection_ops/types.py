"""The data of read-model operations: where a read model stalled, and what it skips."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Stall:
    """Where one version of a read model stopped, and why."""

    stable_name: str
    version: int
    position: int
    cause: str
    at: datetime
    # Whose personal values the event holds (its cause may have named one): read from the
    # store where a skip needs them (`StalledProjections.stalls_of`), not kept with the stall.
    subjects: tuple[str, ...] = ()


@dataclass(frozen=True)
class SkippedEvent:
    """One event a read model's version steps over, and why."""

    stable_name: str
    version: int
    position: int
    reason: str
    cause: str  # the handler's error that stalled the read model there
    at: datetime

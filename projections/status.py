"""What `ledger projections status` shows of each read model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain.projection_ops import SkippedEvent, Stall


def worth_catching_up(position: int, head: int, batch: int) -> bool:
    """Whether a read model behind `head` is worth a catch-up of its own (`projections
    rebuild` does one, and status names it for another time zone): never caught up, or a
    batch or more behind. A smaller lag is what the next read of it applies anyway."""
    lag = head - position
    return lag > 0 and (position == 0 or lag >= batch)


@dataclass(frozen=True)
class ProjectionStatus:
    """One read model: its active version and position, the version this code builds
    beside it if that one is newer, a forced rebuild in progress, where any of them is
    stalled, and the events operators told it to skip."""

    name: str
    version: int
    position: int | None
    head: int
    pending_version: int | None = None
    pending_position: int | None = None
    stall: Stall | None = None
    pending_stall: Stall | None = None
    rebuild_position: int | None = None  # a forced rebuild of the active version
    rebuild_stall: Stall | None = None
    skips: tuple[SkippedEvent, ...] = ()
    # Another time zone's usage model older than this code's: not pending here (this process
    # does not build it), but a process of its zone builds this version when it opens.
    pending_in_own_zone: int | None = None

    @property
    def lag(self) -> int | None:
        return None if self.position is None else max(0, self.head - self.position)

    def to_json(self) -> dict[str, Any]:
        last = self.skips[-1] if self.skips else None
        return {
            "name": self.name,
            "version": self.version,
            "position": self.position,
            "head": self.head,
            "lag": self.lag,
            "pending_version": self.pending_version,
            "pending_position": self.pending_position,
            "stalled": _stall_json(self.stall),
            "pending_stalled": _stall_json(self.pending_stall),
            "rebuild_position": self.rebuild_position,
            "rebuild_stalled": _stall_json(self.rebuild_stall),
            "pending_in_own_zone": self.pending_in_own_zone,
            "skips": len(self.skips),
            "last_skip": None
            if last is None
            else {"version": last.version, "position": last.position, "reason": last.reason, "at": last.at.isoformat()},
        }


def _stall_json(stall: Stall | None) -> dict[str, Any] | None:
    if stall is None:
        return None
    return {"version": stall.version, "position": stall.position, "cause": stall.cause, "at": stall.at.isoformat()}


def describe_stall(stall: Stall) -> str:
    return f"stalled at position {stall.position}: {stall.cause}"


def ways_out(stall: Stall, rebuild: str) -> str:
    """The operator's two ways past a stall, as every message naming one says them:
    `rebuild` (how to run it here), or a skip of the event."""
    return (
        f"fix its handler and run {rebuild}, or "
        f"`ledger projections skip {stall.stable_name} --position {stall.position} --reason TEXT`"
    )

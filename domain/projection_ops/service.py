"""The read-model operations service: a skip is recorded only where a projection stalled."""

from __future__ import annotations

from typing import Protocol

from domain.actions import takes_action
from domain.catalog import EntityType
from domain.errors import ProjectionNotStalled, cause_kind
from domain.ports import AggregateStore, UnitOfWork
from domain.projection_ops.actions import SkipProjectionEventAction, SkipProjectionEventActionResult
from domain.projection_ops.aggregate import ProjectionOps
from domain.projection_ops.types import Stall


class StalledProjections(Protocol):
    """Which builds of a read model (active, pending, rebuilding) are stalled, and where."""

    def stalls_of(self, stable_name: str) -> list[Stall]: ...


class ProjectionOpsService:
    def __init__(self, store: AggregateStore, stalls: StalledProjections) -> None:
        self._store = store
        self._stalls = stalls

    @takes_action
    async def skip_projection_event(self, action: SkipProjectionEventAction) -> SkipProjectionEventActionResult:
        """Only the event a build of the read model is stalled on may be skipped: a skip
        drops that event's effect from the read model for good, so it must answer a
        failure an operator has seen, never be a guess at a position. The stall is read
        from the read models; if it cleared meanwhile, the skip is harmless (it is used
        only when the handler fails on that very event)."""
        found = [s for s in self._stalls.stalls_of(action.projection) if s.position == action.position]
        if not found:
            stalled = self._stalls.stalls_of(action.projection)
            if not stalled:  # a healthy read model has no event to skip, at any position
                raise ProjectionNotStalled(f"read model {action.projection} is not stalled: there is no event to skip")
            # A forced rebuild stalls where its active version did: each place said once.
            where = ", ".join(dict.fromkeys(f"{s.position} (version {s.version})" for s in stalled))
            raise ProjectionNotStalled(
                f"read model {action.projection} is not stalled at position {action.position}: "
                f"it is stalled at {where}; only the event it is stalled on can be skipped"
            )
        stall = found[0]
        # The cause is stored for good: sealed under the skipped event's subject, so that
        # erasing it erases the message (which may name its values in a form no
        # withholding caught). An event of several subjects: the error's kind alone.
        cause, subject = stall.cause, None
        if len(stall.subjects) == 1:
            (subject,) = stall.subjects
        elif stall.subjects:
            held = f"the event holds personal values of {len(stall.subjects)} subjects"
            cause = f"{cause_kind(cause)}: message withheld ({held})"

        def skip() -> None:
            work = UnitOfWork(self._store)
            ops = work.get(ProjectionOps.id_for(action.projection), ProjectionOps)
            if ops is None:
                ops = work.add(ProjectionOps.open(action.projection))
            ops.skip(stall.version, stall.position, action.reason, cause, subject)
            work.commit()

        self._store.run(skip, EntityType.PROJECTION, "skip")
        return SkipProjectionEventActionResult(action.projection, stall.version, stall.position, stall.cause)

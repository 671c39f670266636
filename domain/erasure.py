"""The erasure of a subject that has no entity's stream (issue 14, docs/ERASURE.md).

A refused command still seals its input in its audit record, under the subject the input
names (`user:<id>` for a refused `user create`), which makes that subject's key. When the
entity was never created there is no `User.Erased` to destroy it: the key, and so the
refused input, would outlive every erasure. A `SubjectErasure` records such an erasure on a
stream of its own, derived from the subject; its events erase the subject (`erases`), so
the store destroys the key in the same append, as for any other erasing event.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from eventsourcing.domain import Aggregate

from domain.actions.context import current_context
from domain.entity import stream_id
from domain.personal import erases
from domain.ports import UnitOfWork

# The kind its stream ids are derived under: never an entity type, so no entity's key
# (`user:<id>` is the kind `user` and the key `<id>`) names this stream.
_KIND = "erased-subject"


class SubjectErasure(Aggregate):
    """Every erasure of one subject that had no entity's stream when it was erased.
    `reason` and `requested_by` say why and who asked, for good (the reason is kept in
    clear: it must not hold personal values). `clear_values`: values stored in clear
    before sealing existed that the operator accepted would stay readable."""

    class Erased(Aggregate.Created):
        """The first erasure of the subject."""

        subject: str
        reason: str
        requested_by: str | None
        accept_clear_history: bool
        clear_values: int

    class ErasedAgain(Aggregate.Event):
        """A later erasure: a value sealed for the subject since (another refused command)
        made it a new key."""

        subject: str
        reason: str
        requested_by: str | None
        accept_clear_history: bool
        clear_values: int

        def apply(self, aggregate: SubjectErasure) -> None:
            aggregate.erasures += 1

    def __init__(
        self, subject: str, reason: str, requested_by: str | None, accept_clear_history: bool, clear_values: int
    ) -> None:
        self.subject = subject
        self.erasures = 1

    @staticmethod
    def id_for(subject: str) -> uuid.UUID:
        """The stream of `subject`'s erasures."""
        return stream_id(_KIND, subject)

    @classmethod
    def erase(
        cls,
        found: SubjectErasure | None,
        subject: str,
        reason: str,
        requested_by: str | None,
        accept_clear_history: bool,
        clear_values: int,
    ) -> SubjectErasure:
        """The subject's erasure stream `found` (None: it has none yet) with one more erasure."""
        erasure = {
            "subject": subject,
            "reason": reason,
            "requested_by": requested_by,
            "accept_clear_history": accept_clear_history,
            "clear_values": clear_values,
        }
        if found is None:
            return cls._create(cls.Erased, id=cls.id_for(subject), **erasure)
        found.trigger_event(cls.ErasedAgain, **erasure)
        return found


def requester() -> str | None:
    """Who asks for an erasure, as it records them: the acting user, else the access key
    (None outside an action)."""
    context = current_context()
    return None if context is None else context.user_id or context.access_key


def erase_subject(
    work: UnitOfWork, subject: str, reason: str, requested_by: str | None, accept_clear_history: bool, clear_values: int
) -> None:
    """One more erasure of `subject` on its own stream, in `work` (its commit destroys the key)."""
    found = work.get(SubjectErasure.id_for(subject), SubjectErasure)
    work.add(SubjectErasure.erase(found, subject, reason, requested_by, accept_clear_history, clear_values))


def erasure_subject(state: Mapping[str, Any]) -> str | None:
    """The subject an erasure names, in clear on the event."""
    subject = state.get("subject")
    return subject if isinstance(subject, str) else None


SUBJECT_ERASURES: tuple[type, ...] = (SubjectErasure.Erased, SubjectErasure.ErasedAgain)
for _erasing in SUBJECT_ERASURES:
    erases(_erasing, erasure_subject)

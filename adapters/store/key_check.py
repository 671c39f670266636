"""Subject keys checked by `ledger verify`: the one table rows are deleted from.

The hash chain covers the stored events, not `ledger_subject_keys`, whose rows an erasure
deletes. A key row deleted outside the ledger is an erasure no event records: every value
sealed with it reads `[erased]` in history and time travel, and the chain still holds. A
key row altered outside the ledger no longer opens under the master key. So `verify`
names each subject whose stored key does not open, and each subject that stored events
seal values with but that has no key while no erasing event (`User.Erased`,
`Group.Purged`) names it.

The walk reads raw rows, undecoded: a sealed value's subject is in clear in its envelope
(`{"$sealed":1,"s":SUBJECT,...}`), and only the few erasing events are parsed as JSON.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from adapters.store.chain import stored_events
from adapters.store.keys import with_every_erasure
from domain.personal import erased_subject, erasing_topics

# The envelope as the ledger's transcoder writes it (adapters/store/sealing.py `seal`):
# compact JSON, its members in this order.
_SEALED = re.compile(rb'\{"\$sealed":1,"s":"([^"\\]{1,300})"')

ALTERED = "its stored key does not open under the master key: the key row was altered outside the ledger"
REMOVED = (
    "stored events hold values sealed with its key, but the key is gone and no event erased it: "
    "the key row was deleted outside the ledger"
)


@dataclass(frozen=True)
class BadKey:
    subject: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"subject": self.subject, "reason": self.reason}


def check_keys(app: Any) -> tuple[int, list[BadKey]]:
    """(how many stored keys were checked, the subjects whose key was altered or removed
    outside the ledger)."""
    # The head before the keys are read: a subject made after (by another process) has a
    # key row the read below may have missed, and its sealed values are past this head.
    head = app.recorder.max_notification_id() or 0
    opens = app.keys.opening()
    bad = [BadKey(subject, ALTERED) for subject, ok in sorted(opens.items()) if not ok]
    sealed, erased = _subjects(app.recorder, head)
    bad += [BadKey(subject, REMOVED) for subject in sorted(sealed - erased - set(opens))]
    return len(opens), bad


def _subjects(recorder: Any, head: int) -> tuple[set[str], set[str]]:
    """(the subjects events up to `head` seal values with, the subjects erasing events
    name, wherever they are: an erasure after `head` took its key before it was read)."""
    erasing = set(erasing_topics())
    sealed: set[str] = set()
    erased: set[str] = set()
    for position, _stream, _version, topic, state in stored_events(recorder):
        if position <= head:
            sealed.update(match.decode("utf-8", "replace") for match in _SEALED.findall(state))
        if topic in erasing:
            try:
                subject = erased_subject(topic, json.loads(state))
            except (ValueError, AttributeError):  # altered bytes: the chain's walk names the event
                continue
            if subject is not None:
                erased.update(with_every_erasure([subject]))
    return sealed, erased

"""Subject keys checked by `ledger verify`: the one table rows are deleted from.

The hash chain covers the stored events, not `ledger_subject_keys`, whose rows an erasure
deletes. A key row deleted outside the ledger is an erasure no event records: every value
sealed with it reads `[erased]` in history and time travel, and the chain still holds. A
key row altered outside the ledger no longer opens under the master key. So `verify`
names each subject whose stored key does not open, and each subject that stored events
seal values with but that has no key while no erasing event (`User.Erased`,
`Group.Purged`) names it. A key row put back after its erasure (from a backup) undoes
the erasure: an erased subject's stored key that opens a value sealed before its last
erasure is named too, since a key made after an erasure opens nothing sealed before it.

The walk reads raw rows, undecoded: a sealed value's subject is in clear in its envelope
(`{"$sealed":1,"s":SUBJECT,...}`), and only the few erasing events are parsed as JSON.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

from adapters.store.chain import stored_event_at, stored_events
from adapters.store.keys import OWN_SUBJECTS, with_every_erasure
from adapters.store.sealing import opens_with
from domain.personal import erased_subject, erasing_topics

# The envelope as the ledger's transcoder writes it (adapters/store/sealing.py `seal`):
# compact JSON, its members in this order.
_SEALED = re.compile(rb'\{"\$sealed":1,"s":"([^"\\]{1,300})"')

ALTERED = "its stored key does not open under the master key: the key row was altered outside the ledger"
RESTORED = (
    "its key opens a value sealed at position {at}, before the erasure at {erased}, which destroyed that key: "
    "the erased key row was put back outside the ledger, and what it sealed reads in clear again "
    "(or the erasing event was altered to name this subject, which the chain's walk names)"
)
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


class KeysChecked(NamedTuple):
    checked: int  # the stored keys checked
    own: int  # of those, the ledger's own (no subject's: `keys status` leaves them out of its count)
    bad: list[BadKey]  # the subjects whose key was altered, removed or restored outside the ledger


def check_keys(app: Any) -> KeysChecked:
    """Every stored key checked against the master key and the events that seal with it."""
    # The head before the keys are read: a subject made after (by another process) has a
    # key row the read below may have missed, and its sealed values are past this head.
    head = app.recorder.max_notification_id() or 0
    opens = app.keys.opening()
    bad = [BadKey(subject, ALTERED) for subject, ok in sorted(opens.items()) if not ok]
    walk = _walk(app.recorder, head)
    bad += [BadKey(subject, REMOVED) for subject in sorted(walk.sealed - set(walk.erased) - set(opens))]
    for subject in sorted(s for s, ok in opens.items() if ok and s in walk.erased):
        key = app.keys.stored_key(subject)  # not the cache: another process may have erased it since
        at = None if key is None else _opened_before_erasure(app, subject, key, walk)
        if at is not None:
            bad.append(BadKey(subject, RESTORED.format(at=at, erased=walk.erased[subject])))
    return KeysChecked(len(opens), len(opens.keys() & set(OWN_SUBJECTS)), bad)


@dataclass
class _Walk:
    sealed: set[str]  # the subjects events up to the head seal values with
    erased: dict[str, int]  # subject: the position of the last erasing event naming it
    # subject: the first position sealing its values after each erasing event (and before
    # the first): one value per key it had, since a key lives from one erasure to the next
    samples: dict[str, list[int]]


def _walk(recorder: Any, head: int) -> _Walk:
    """The subjects sealed and erased, erasing events wherever they are (an erasure after
    `head` took its key before it was read)."""
    erasing = set(erasing_topics())
    walk = _Walk(set(), {}, {})
    for position, _stream, _version, topic, state in stored_events(recorder):
        if position <= head:
            for subject in {match.decode("utf-8", "replace") for match in _SEALED.findall(state)}:
                walk.sealed.add(subject)
                seen = walk.samples.setdefault(subject, [])
                if not seen or walk.erased.get(subject, 0) > seen[-1]:
                    seen.append(position)
        if topic in erasing:
            try:
                subject = erased_subject(topic, json.loads(state))
            except (ValueError, AttributeError):  # altered bytes: the chain's walk names the event
                continue
            if subject is not None:
                walk.erased.update(dict.fromkeys(with_every_erasure([subject]), position))
    return walk


def _opened_before_erasure(app: Any, subject: str, key: bytes, walk: _Walk) -> int | None:
    """The position of a value sealed before the subject's last erasure that its stored
    key opens, if any. Sound: the erasure deleted the key row in its own append, and a key
    made since is new, so it opens nothing sealed before."""
    for position in walk.samples.get(subject, []):
        if position >= walk.erased[subject]:
            break
        found = stored_event_at(app.recorder, position)
        if found is None:
            continue
        try:
            state = app.mapper.transcoder.decode(found[4])
        except Exception:  # altered bytes (any decoder error): the chain's walk names the event
            continue
        if isinstance(state, dict) and opens_with(state, subject, key):
            return position
    return None

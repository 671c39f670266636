"""Which values of an event's state are personal, and whose key seals them (issue 14,
docs/ERASURE.md).

An event type declares its personal values as paths into its state dict (the event's
attributes as the mapper stores them) and a subject, the `user:<id>` or `group:<id>`
whose data key seals them. The grammar is kept to what the events need: dotted keys
(`fields.email`, `changes.email.old`, `spec.creator.full_name`) and `[*]` for every item
of a list (`user_ids[*]`). Pure declarations: no I/O and no cryptography here; the store's
sealing adapter reads them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from eventsourcing.utils import get_topic

ERASED: Final = "[erased]"
"""What a personal value reads as once its subject's key is destroyed: everywhere, never an error."""

Subject = Callable[[Mapping[str, Any]], str | None]
"""The subject whose key seals an event's personal values, from the event's whole state;
None when this event has none (then nothing of it is sealed)."""

Step = str | int
"""One step of a concrete path: a mapping key, or an index in a list."""

Path = tuple[Step, ...]


class _Each:
    """The `[*]` step of a declared path: every item of a list."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "[*]"


EACH: Final = _Each()

Pattern = tuple[str | _Each, ...]

_SEGMENT = re.compile(r"([^.\[\]*\\]+)((?:\[\*\])*)")


def parse_path(text: str) -> Pattern:
    """`spec.creator.full_name` -> ("spec", "creator", "full_name"); `user_ids[*]` ->
    ("user_ids", EACH). Anything outside the grammar is refused at declaration time, so
    a typo fails on import rather than leaving a value in clear."""
    steps: list[str | _Each] = []
    for segment in text.split("."):
        match = _SEGMENT.fullmatch(segment)
        if match is None:
            raise ValueError(f"personal path {text!r}: {segment!r} is not a key optionally followed by [*]")
        steps.append(match.group(1))
        steps.extend(EACH for _ in range(len(match.group(2)) // 3))
    return tuple(steps)


_PLAIN_KEY = re.compile(r"[^.\[\]\\]+")


def path_text(path: Sequence[Step]) -> str:
    """A concrete path as text: `fields.email`, `user_ids[2]`. A key that is empty or holds
    `.`, `[`, `]` or a backslash is written as a JSON string in brackets (`fields["a.b"]`),
    so two different paths never read the same (the text is authenticated with each
    sealed value)."""
    parts: list[str] = []
    for step in path:
        if isinstance(step, int):
            parts.append(f"[{step}]")
        elif _PLAIN_KEY.fullmatch(step):
            parts.append(f".{step}" if parts else step)
        else:
            parts.append(f"[{json.dumps(step)}]")
    return "".join(parts)


def _walk(
    node: Any, pattern: Pattern, at: int, prefix: Path, keep: Callable[[Any], bool], found: list[tuple[Path, Any]]
) -> None:
    """Every (path, node) `pattern` reaches from `node` whose node `keep` accepts. Key steps
    are followed in a loop (every stored event with personal values is searched); only
    `[*]` recurses, once per item."""
    end = len(pattern)
    while at < end:
        step = pattern[at]
        if isinstance(step, _Each):
            if isinstance(node, list | tuple):
                for index, item in enumerate(node):
                    _walk(item, pattern, at + 1, (*prefix, index), keep, found)
            return
        if not (type(node) is dict or isinstance(node, Mapping)) or step not in node:
            return
        node = node[step]
        prefix = (*prefix, step)
        at += 1
    if keep(node):
        found.append((prefix, node))


def _held(node: Any) -> bool:
    return node is not None  # nothing to hide in a None


def _scope(node: Any) -> bool:
    return isinstance(node, Mapping)  # what `each` scopes: a mapping of named values


@dataclass(frozen=True, slots=True)
class Personal:
    """Paths of one event type's state that hold personal values, sealed with the key of
    one subject; with `each`, paths inside every node `each` matches, each node's values
    sealed with that node's own subject (a batch's facts span groups)."""

    paths: tuple[str, ...]
    subject: Subject
    patterns: tuple[Pattern, ...]
    each: Pattern | None = None

    def locate(self, state: Mapping[str, Any]) -> list[tuple[Path, str]]:
        """The concrete paths of this state holding a declared value, each with its
        subject. Paths absent from this state are skipped, and so are None values; an
        event (or node) without a subject yields nothing."""
        if self.each is None:
            scopes: list[tuple[Path, Any]] = [((), state)]
        else:
            scopes = []
            _walk(state, self.each, 0, (), _scope, scopes)
        located: list[tuple[Path, str]] = []
        for prefix, node in scopes:
            subject = self.subject(node)
            if subject is None:
                continue
            found: list[tuple[Path, Any]] = []
            for pattern in self.patterns:
                _walk(node, pattern, 0, prefix, _held, found)
            located.extend((path, subject) for path, _ in found)
        return located


def personal(*paths: str, subject: Subject, each: str | None = None) -> Personal:
    """Declare `paths` of an event's state as personal values sealed with `subject`'s key.
    With `each` (a path such as `entry.spec.actions[*]`), `paths` are relative to every
    mapping it reaches and `subject` is given that mapping instead of the whole state."""
    if not paths:
        raise ValueError("a personal declaration names at least one path")
    return Personal(
        paths=paths,
        subject=subject,
        patterns=tuple(parse_path(path) for path in paths),
        each=None if each is None else parse_path(each),
    )


_DECLARED: dict[str, tuple[Personal, ...]] = {}
_ERASES: dict[str, Subject] = {}


def _topic(topic_or_class: str | type) -> str:
    return topic_or_class if isinstance(topic_or_class, str) else get_topic(topic_or_class)


def declare(event_class: type, *personals: Personal) -> None:
    """Register an event class's personal values. Exactly one declaration per class (by
    topic, the name it is stored under): a second one is a mistake, not an extension.
    Subclasses do not inherit it (each aggregate's nested events are their own classes)."""
    topic = get_topic(event_class)
    if topic in _DECLARED:
        raise ValueError(f"{topic} already declares its personal values")
    if not personals:
        raise ValueError(f"{topic}: declare at least one personal declaration")
    _DECLARED[topic] = personals
    _BY_CLASS.clear()  # a class looked up before its declaration must see it


_BY_CLASS: dict[type, tuple[Personal, ...]] = {}


def declared(topic_or_class: str | type) -> tuple[Personal, ...]:
    """The personal declarations of an event type (empty when it holds none)."""
    if isinstance(topic_or_class, str):
        return _DECLARED.get(topic_or_class, ())
    found = _BY_CLASS.get(topic_or_class)
    if found is None:  # on every stored event's path: the topic is worked out once per class
        found = _BY_CLASS[topic_or_class] = _DECLARED.get(get_topic(topic_or_class), ())
    return found


def erases(event_class: type, subject: Subject) -> None:
    """Register an event class as erasing a subject (Group.Purged erases `group:<id>`)."""
    topic = get_topic(event_class)
    if topic in _ERASES:
        raise ValueError(f"{topic} already names the subject it erases")
    _ERASES[topic] = subject


def erased_subject(topic_or_class: str | type, state: Mapping[str, Any]) -> str | None:
    """The subject an event erases, or None when its type erases nothing."""
    subject = _ERASES.get(_topic(topic_or_class))
    return None if subject is None else subject(state)


def declarations() -> Mapping[str, tuple[Personal, ...]]:
    """Every declaration by topic: the one list the tests and the README read."""
    return dict(_DECLARED)


def erasing_topics() -> tuple[str, ...]:
    """The topics of every event type that erases a subject."""
    return tuple(_ERASES)


WITHHELD: Final = "[personal value]"
"""What a personal value reads as where a message that named it is stored in clear."""


def personal_texts(personals: Iterable[Personal], state: Mapping[str, Any]) -> dict[str, set[str]]:
    """Each subject's declared values present in `state`, as the texts they print as (a
    list's or mapping's items each): what a message about this state may have named."""
    found: dict[str, set[str]] = {}
    for declaration in personals:
        for path, subject in declaration.locate(state):
            node: Any = state
            for step in path:
                node = node[step]
            found.setdefault(subject, set()).update(text for text in _texts(node) if text)
    return found


def _texts(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _texts(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _texts(item)


def withheld(message: str, values: Iterable[str]) -> str:
    """`message` with each of `values` replaced by WITHHELD: in any case (a database's
    error may name a lowered email), and as Python's repr and JSON escape it (an error
    quoting a value with quotes, backslashes or other scripts). Whole values only: a short
    one ("a") must not take letters out of the message's words."""
    forms = {form for value in values for form in _printed_forms(value) if form}
    for form in sorted(forms, key=len, reverse=True):  # a value inside a longer one goes with it
        message = re.sub(rf"(?<!\w){re.escape(form)}(?!\w)", WITHHELD, message, flags=re.IGNORECASE)
    return message


def _printed_forms(value: str) -> set[str]:
    return {value, repr(value)[1:-1], json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}


def erased_fields(fields: Mapping[str, Any], personal: Iterable[str]) -> dict[str, Any]:
    """`fields` as they read once their subject is erased: each personal one that holds a
    value is ERASED (None stays None: nothing was sealed). What a read model that keeps an
    erased entity's row writes, so that a rebuild reads the same."""
    names = set(personal)
    return {name: ERASED if name in names and value is not None else value for name, value in fields.items()}

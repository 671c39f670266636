"""Erasures as the read models see them (issue 14, docs/ERASURE.md).

An erasing event (`domain.personal.erases`: Group.Purged, and any other type declared so)
destroys its subject's key in its own append. From then on a rebuild reads every value
sealed under that subject as ERASED; a read model built live stored those values in clear
before. Each read model that keeps such a value handles the erasing events (the classes
`erasing_classes` lists, so a newly declared erasing event needs no change here) and
rewrites or deletes its rows to what a rebuild would leave.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from eventsourcing.utils import resolve_topic

from domain.personal import ERASED, Path, erased_subject, erasing_topics


def erasing_classes() -> list[type]:
    """Every event class that erases a subject, as registered when the domain was imported."""
    return [resolve_topic(topic) for topic in erasing_topics()]


def subject_erased_by(event: Any) -> str | None:
    """The subject `event` erases (`group:<id>`, `user:<id>`), or None."""
    return erased_subject(type(event), vars(event))


def with_erased(value: Any, paths: Iterable[Path]) -> Any:
    """A copy of `value` with each path's value ERASED, as a rebuild reads it once the
    subject's key is gone. A path through something that is no longer a container (a
    whole value already erased) is left alone, as the sealing leaves paths inside a value
    sealed whole."""
    result = copy.deepcopy(value)
    for path in sorted(paths, key=len):  # whole values before paths inside them
        node = result
        for step in path[:-1]:
            node = _child(node, step)
            if node is None:
                break
        else:
            if _child(node, path[-1]) is not None:
                node[path[-1]] = ERASED
    return result


def _child(node: Any, step: str | int) -> Any:
    if isinstance(node, dict) and isinstance(step, str):
        return node.get(step)
    if isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
        return node[step]
    return None

"""Sealing and opening the personal values of an event's state (issue 14, docs/ERASURE.md).

A declared personal value (domain/personal.py) is replaced by an envelope
`{"$sealed": 1, "s": subject, "n": nonce, "c": ciphertext}`: the JSON encoding of the
value under AES-GCM with the subject's data key, a fresh 96-bit nonce each time, and the
subject and the value's path as associated data, so an envelope moved to another path or
relabelled with another subject does not open. Deleting the subject's key erases every
value it sealed: those read as `[erased]`.

Opening needs no declaration: it finds envelopes wherever they are, so changing a
declaration later never breaks reading what was stored under the old one. Both directions
copy only the containers on the way to a changed value; everything else is shared with
the input, which is never mutated.
"""

from __future__ import annotations

import binascii
import functools
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from domain.personal import ERASED, Path, Personal, path_text

"""What a sealed value reads as once its subject's key is gone (or it fails to open)."""

MARK: Final = "$sealed"
_ENVELOPE_KEYS: Final = frozenset((MARK, "s", "n", "c"))
_NONCE_BYTES: Final = 12

KeyFor = Callable[[str], bytes]
"""The subject's data key, made on first use (sealing)."""

KeyLookup = Callable[[str], bytes | None]
"""The subject's data key, or None when it has been erased (opening)."""

KeyMadeAfter = Callable[[str, datetime], bool]
"""Whether the subject's current key was made after a moment: a value sealed then was
sealed under a key erased since, not damaged."""

log = logging.getLogger(__name__)

_lock = threading.Lock()
_failed = 0
_warned: set[str] = set()
_WARN_AT_MOST: Final = 1024  # subjects warned about; beyond, failures are only counted


def is_sealed(value: Any) -> bool:
    """Whether `value` is a sealing envelope."""
    return type(value) is dict and value.keys() == _ENVELOPE_KEYS and value[MARK] == 1


# One encoder and decoder for every value (json.dumps with options builds a new encoder
# per call). allow_nan=False: NaN and infinities are not JSON and would not read back.
_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_DECODER: Final = json.JSONDecoder()


@functools.lru_cache(maxsize=4096)
def _path_bytes(path: Path) -> bytes:
    """The same few paths recur in every event of a type: their text is made once."""
    return path_text(path).encode()


def _associated(subject: str, path: Path) -> bytes:
    return subject.encode() + b"\n" + _path_bytes(path)


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def _unb64(text: Any) -> bytes:
    # strict_mode: anything but canonical base64 is damage, not something to guess at.
    return binascii.a2b_base64(text, strict_mode=True)


def _seal(aead: AESGCM, subject: str, path: Path, value: Any, nonce: bytes) -> dict[str, Any]:
    plain = _ENCODER.encode(value).encode()
    sealed = aead.encrypt(nonce, plain, _associated(subject, path))
    return {MARK: 1, "s": subject, "n": _b64(nonce), "c": _b64(sealed)}


def seal_state(state: Mapping[str, Any], personals: Iterable[Personal], key_for: KeyFor) -> dict[str, Any]:
    """A new state with every declared personal value present in `state` sealed with its
    subject's key. Values already sealed are left as they are (sealing twice is a no-op),
    and a path inside a value sealed whole is not sealed again. Only the containers on
    the way to a sealed value are copied (lists and tuples become lists, as in JSON)."""
    result = dict(state)
    located = [item for declaration in personals for item in declaration.locate(state)]
    if not located:
        return result
    located.sort(key=lambda item: len(item[0]))  # whole values before paths inside them
    copied = {id(result)}  # the copies made here (kept alive by `result`, so ids stay unique)
    ciphers: dict[str, AESGCM] = {}
    # A fresh nonce per value, drawn for all of them at once (one system call per state).
    nonces = os.urandom(_NONCE_BYTES * len(located))
    for number, (path, subject) in enumerate(located):
        node: Any = result
        for step in path[:-1]:
            child = node[step]
            if is_sealed(child):
                break
            if id(child) not in copied:
                child = dict(child) if type(child) is dict or isinstance(child, Mapping) else list(child)
                copied.add(id(child))
                node[step] = child
            node = child
        else:
            leaf = node[path[-1]]
            if is_sealed(leaf):
                continue
            aead = ciphers.get(subject)
            if aead is None:
                aead = ciphers[subject] = AESGCM(key_for(subject))
            nonce = nonces[number * _NONCE_BYTES : (number + 1) * _NONCE_BYTES]
            node[path[-1]] = _seal(aead, subject, path, leaf, nonce)
    return result


class _Opener:
    """One opening pass: each subject's key is looked up once per state."""

    __slots__ = ("ciphers", "key_for", "made_after", "written_at")

    def __init__(self, key_for: KeyLookup, made_after: KeyMadeAfter | None, written_at: datetime | None) -> None:
        self.key_for = key_for
        self.made_after = made_after
        self.written_at = written_at
        self.ciphers: dict[str, AESGCM | None] = {}

    def open(self, envelope: dict[str, Any], path: Path) -> Any:
        subject = envelope["s"]
        if not isinstance(subject, str):
            _failed_to_open(subject, path)
            return ERASED
        if subject in self.ciphers:
            aead = self.ciphers[subject]
        else:
            # Outside the `try`: a key of the wrong size is a configuration error to
            # surface, not a damaged envelope.
            key = self.key_for(subject)
            aead = self.ciphers[subject] = None if key is None else AESGCM(key)
        if aead is None:
            return ERASED
        try:
            nonce = _unb64(envelope["n"])
            sealed = _unb64(envelope["c"])
            return _DECODER.decode(aead.decrypt(nonce, sealed, _associated(subject, path)).decode())
        except (InvalidTag, ValueError, TypeError, binascii.Error):
            # An erased subject that got a key again (a user modified after an erasure):
            # what was sealed before that key existed is erased, not tampered with.
            if self.written_at is None or self.made_after is None or not self.made_after(subject, self.written_at):
                _failed_to_open(subject, path)
            return ERASED

    def walk(self, node: Any, path: Path) -> Any:
        """`node` itself when it holds no envelope, else a copy of it with each opened."""
        if type(node) is dict:
            if MARK in node and is_sealed(node):
                return self.open(node, path)
            changed: dict[str, Any] | None = None
            for key, value in node.items():
                if type(value) is dict or type(value) is list:
                    opened = self.walk(value, (*path, key))
                    if opened is not value:
                        if changed is None:
                            changed = dict(node)
                        changed[key] = opened
            return node if changed is None else changed
        if type(node) is list:
            items: list[Any] | None = None
            for index, value in enumerate(node):
                if type(value) is dict or type(value) is list:
                    opened = self.walk(value, (*path, index))
                    if opened is not value:
                        if items is None:
                            items = list(node)
                        items[index] = opened
            return node if items is None else items
        return node


def _failed_to_open(subject: Any, path: Path) -> None:
    """Counted every time; warned about once per subject, so a damaged stream read over
    and over does not flood the log."""
    global _failed
    with _lock:
        _failed += 1
        label = str(subject)
        first = label not in _warned and len(_warned) < _WARN_AT_MOST
        if first:
            _warned.add(label)
    if first:
        log.warning(
            "a sealed value of %s at %s failed to open (tampered with?); it reads as %s", label, path_text(path), ERASED
        )


def failed_openings() -> int:
    """How many envelopes failed authentication since the process started."""
    return _failed


def open_state(state: Mapping[str, Any], key_for: KeyLookup, made_after: KeyMadeAfter | None = None) -> dict[str, Any]:
    """A new state with every envelope, wherever it is, replaced by its value, or by
    ERASED when the subject's key is gone or the envelope fails to open (never raises for
    a bad envelope; warns unless `made_after` says the subject's key is newer than the
    state's `timestamp`). Untouched containers are shared with the input."""
    written_at = state.get("timestamp")
    opener = _Opener(key_for, made_after, written_at if isinstance(written_at, datetime) else None)
    result = dict(state)
    for key, value in state.items():
        if type(value) is dict or type(value) is list:
            opened = opener.walk(value, (key,))
            if opened is not value:
                result[key] = opened
    return result


def opens_with(state: Mapping[str, Any], subject: str, key: bytes) -> bool:
    """Whether a value `state` seals for `subject` opens with `key` (`ledger verify`: a
    key made after an erasure never opens what was sealed before it)."""
    aead = AESGCM(key)

    def found(node: Any, path: Path) -> bool:
        if type(node) is dict:
            if is_sealed(node) and node["s"] == subject:
                try:
                    aead.decrypt(_unb64(node["n"]), _unb64(node["c"]), _associated(subject, path))
                except (InvalidTag, ValueError, TypeError, binascii.Error):
                    return False
                return True
            return any(found(value, (*path, step)) for step, value in node.items())
        if type(node) is list:
            return any(found(value, (*path, index)) for index, value in enumerate(node))
        return False

    return any(found(value, (step,)) for step, value in state.items())


def _value_at(state: Mapping[str, Any], path: Path) -> Any:
    node: Any = state
    for step in path:
        node = node[step]
    return node


def clear_values(state: Mapping[str, Any], personals: Iterable[Personal], subject: str | None = None) -> int:
    """How many declared personal values of this state (of `subject` only, when given) are
    stored in clear (events written before sealing existed): erasing their subject would
    leave these behind."""
    return sum(
        not is_sealed(_value_at(state, path))
        for declaration in personals
        for path, of in declaration.locate(state)
        if subject is None or of == subject
    )

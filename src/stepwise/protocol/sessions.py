"""Sessions: ``event.meta.sessions``, the ids that group the runs an event leads to.

A sender gives two layers (JS SDK 4.x, reference §5): ``meta.sessions``, its own (a
``null`` id removes an inherited key, ``sessions: null`` removes them all), and
``meta.propagated_sessions``, stamped by an SDK from the sessions of the run that sends.
The server resolves them once, when it takes the event in (``resolve_meta``): every key of
the sender's own layer, then inherited keys in byte order up to five in all. A function
receives only the result, as ``event.meta.sessions``; a run's own sessions are those its
events share (``shared_sessions``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

MAX_SESSIONS = 5
MAX_KEY_BYTES = 128
MAX_ID_BYTES = 512

SESSIONS = "sessions"
PROPAGATED = "propagated_sessions"


class SessionError(ValueError):
    """An event's ``meta`` the server will not take: the message says which part and why."""


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _id_text(key: str, value: object) -> str:
    """A session id as text: numbers are written as JavaScript writes them (``42``, ``1.5``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SessionError(f"session {key!r}: an id must be a string or a number")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SessionError(f"session {key!r}: an id must be a finite number")
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    return str(value)


def _layer(raw: object, what: str, *, tombstones: bool) -> dict[str, str | None]:
    if not isinstance(raw, Mapping):
        raise SessionError(f"meta.{what} must be an object")
    out: dict[str, str | None] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not key:
            raise SessionError(f"meta.{what}: a session key must be a non-empty string")
        if value is None:
            if not tombstones:
                raise SessionError(f"meta.{what}: session {key!r} has no id")
            out[key] = None
            continue
        out[key] = _id_text(key, value)
    return out


def _check(sessions: Mapping[str, str]) -> None:
    if len(sessions) > MAX_SESSIONS:
        raise SessionError(f"an event may carry at most {MAX_SESSIONS} sessions")
    for key, value in sessions.items():
        if len(_utf8(key)) > MAX_KEY_BYTES:
            raise SessionError(f"session key {key[:40]!r}... is over {MAX_KEY_BYTES} bytes")
        if not value:
            raise SessionError(f"session {key!r} has an empty id")
        if len(_utf8(value)) > MAX_ID_BYTES:
            raise SessionError(f"the id of session {key!r} is over {MAX_ID_BYTES} bytes")


def resolve_meta(raw: object) -> dict[str, Any] | None:
    """An event's ``meta`` as the server keeps it: the two session layers made one.

    The sender's own keys all stay; inherited ones fill the free places up to five, in
    byte order of their keys, unless the sender removed them. Other ``meta`` fields are
    kept as sent. Raises ``SessionError`` for a layer of the wrong shape, or a result with
    more than five sessions, an empty or too long key, or an empty or too long id.
    """
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise SessionError("meta must be an object")
    own_raw = raw.get(SESSIONS)
    own = {} if own_raw is None else _layer(own_raw, SESSIONS, tombstones=True)
    inherited_raw = raw.get(PROPAGATED)
    inherited = {} if inherited_raw is None else _layer(inherited_raw, PROPAGATED, tombstones=False)
    if SESSIONS in raw and own_raw is None:
        inherited = {}  # ``sessions: null``: none of the inherited ones
    merged: dict[str, str] = {k: v for k, v in own.items() if v is not None}
    for key in sorted(inherited, key=_utf8):
        if len(merged) >= MAX_SESSIONS:
            break
        value = inherited[key]
        if key not in own and value is not None:
            merged[key] = value
    _check(merged)
    out = {k: v for k, v in raw.items() if k not in (SESSIONS, PROPAGATED)}
    if merged:
        out[SESSIONS] = merged
    return out or None


def sessions_of(meta: object) -> dict[str, str]:
    """The sessions in a resolved ``meta`` (strings only; anything else is left out)."""
    if not isinstance(meta, Mapping):
        return {}
    sessions = meta.get(SESSIONS)
    if not isinstance(sessions, Mapping):
        return {}
    return {k: v for k, v in sessions.items() if isinstance(k, str) and k and isinstance(v, str)}


def shared_sessions(metas: Iterable[object]) -> dict[str, str]:
    """A run's sessions: those every one of its events has, with the same id; at most five,
    the first in byte order of their keys. Empty when the events share none."""
    shared: dict[str, str] | None = None
    for meta in metas:
        own = sessions_of(meta)
        shared = own if shared is None else {k: v for k, v in shared.items() if own.get(k) == v}
        if not shared:
            return {}
    if not shared:
        return {}
    keys = sorted(shared, key=_utf8)[:MAX_SESSIONS]
    return {k: shared[k] for k in keys}


def propagated(meta: Mapping[str, Any] | None, sessions: Mapping[str, str]) -> dict[str, Any]:
    """``meta`` with ``sessions`` stamped as its inherited layer (``propagated_sessions``);
    one that already has such a layer keeps it."""
    out = dict(meta or {})
    if sessions and PROPAGATED not in out:
        out[PROPAGATED] = dict(sessions)
    return out


__all__ = [
    "MAX_SESSIONS",
    "PROPAGATED",
    "SESSIONS",
    "SessionError",
    "propagated",
    "resolve_meta",
    "sessions_of",
    "shared_sessions",
]

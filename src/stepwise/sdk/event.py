"""The event a function receives and an application sends."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, cast

from pydantic import BaseModel
from typing_extensions import TypeVar

from ..errors import ConfigError
from ..protocol import dumps
from ..protocol.sessions import PROPAGATED, sessions_of

DataT = TypeVar("DataT", default=dict[str, Any])


@dataclass(frozen=True, slots=True)
class Event(Generic[DataT]):
    """One event. ``ts`` is milliseconds since the epoch; the SDK fills it when sending.

    ``data`` is a dict, or a pydantic model once ``stepwise.ext.validation`` validated it.
    """

    name: str
    data: DataT = field(default_factory=lambda: cast(DataT, {}))
    id: str | None = None
    ts: int | None = None
    user: dict[str, Any] | None = None
    v: str | None = None
    meta: dict[str, Any] | None = None
    """``{"sessions": {key: id}}``: the sessions the runs this event starts belong to. When
    sending, an id may be a number, ``None`` removes a session the sending run passes on,
    and ``{"sessions": None}`` removes them all."""

    @property
    def sessions(self) -> dict[str, str]:
        """This event's sessions, as a function receives them."""
        return sessions_of(self.meta)

    @staticmethod
    def from_wire(raw: object) -> Event:
        """Build from an event object as a server delivers it; tolerant of odd types."""
        if not isinstance(raw, Mapping):
            return Event(name="", data={})
        name = raw.get("name")
        data = raw.get("data")
        event_id = raw.get("id")
        ts = raw.get("ts")
        user = raw.get("user")
        v = raw.get("v")
        meta = raw.get("meta")
        return Event(
            name=name if isinstance(name, str) else "",
            data=dict(data) if isinstance(data, Mapping) else {},
            id=event_id if isinstance(event_id, str) and event_id else None,
            ts=int(ts) if isinstance(ts, int | float) and not isinstance(ts, bool) else None,
            user=dict(user) if isinstance(user, Mapping) else None,
            v=v if isinstance(v, str) else None,
            meta=dict(meta) if isinstance(meta, Mapping) else None,
        )

    def to_wire(self) -> dict[str, Any]:
        data: Any = self.data
        if isinstance(data, BaseModel):
            data = data.model_dump(mode="json")
        out: dict[str, Any] = {"name": self.name, "data": data}
        if self.id:
            out["id"] = self.id
        if self.ts is not None:
            out["ts"] = self.ts
        if self.user is not None:
            out["user"] = self.user
        if self.v is not None:
            out["v"] = self.v
        if self.meta is not None:
            out["meta"] = self.meta
        return out


EventLike = Event | Mapping[str, Any]


def event_data(data: object, *, what: str) -> dict[str, Any]:
    """``data`` checked as the data of an event a step tool makes (``invoke``, ``defer``):
    a dict of JSON values (``None`` is ``{}``); ``ConfigError`` otherwise."""
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError(f"{what} data must be a dict (it becomes the event's data)")
    payload = dict(data or {})
    try:
        dumps(payload)
    except TypeError as exc:
        raise ConfigError(f"{what} data is not JSON: {exc}") from exc
    return payload


def events_for_sending(
    events: EventLike | Sequence[EventLike],
    *,
    propagate: Mapping[str, str] | None = None,
    replace: bool = False,
) -> list[dict[str, Any]]:
    """Normalize what ``send`` accepts into the JSON array the event API takes.

    Fills ``ts`` (now) and ``data`` (``{}``) when missing and drops an empty ``id``,
    as the official SDKs do, so the server sees the same shapes from every SDK.
    ``propagate``: the sending run's sessions, stamped as each event's inherited layer
    (``meta.propagated_sessions``), over one it has if ``replace``, else only where it has none.
    """
    items: Sequence[EventLike] = [events] if isinstance(events, Event | Mapping) else events
    now_ms = int(time.time() * 1000)
    out: list[dict[str, Any]] = []
    for item in items:
        wire = item.to_wire() if isinstance(item, Event) else dict(item)
        name = wire.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError("every event needs a non-empty string name")
        if wire.get("data") is None:
            wire["data"] = {}
        if not wire.get("id"):
            wire.pop("id", None)
        if not wire.get("ts"):
            wire["ts"] = now_ms
        meta = wire.get("meta")
        if meta is not None and not isinstance(meta, Mapping):
            raise ConfigError("an event's meta must be a dict")
        if propagate and (replace or not (meta or {}).get(PROPAGATED)):
            wire["meta"] = {**(meta or {}), PROPAGATED: dict(propagate)}
        out.append(wire)
    if not out:
        raise ConfigError("no events to send")
    return out

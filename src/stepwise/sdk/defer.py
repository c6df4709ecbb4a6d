"""``ctx.defer``: a run of another function, started once this run ends.

A deferred function is made with ``client.create_defer``; it is triggered by the
``inngest/deferred.schedule`` event the server sends when the run that deferred it ends,
completed or failed, and nothing else. ``ctx.defer`` only records the wish: the op
(``DeferAdd``) rides along with whatever the call answers next, the server keeps it with
the run, and every later call tells the SDK which defers the run has so a replay does not
add one twice. ``handle.abort()`` takes the wish back until the run ends.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..protocol import GeneratorOp, Opcode, hash_step_id
from ..protocol.sessions import PROPAGATED, SESSIONS, SessionError, resolve_meta
from .event import Event, event_data
from .triggers import TriggerEvent

if TYPE_CHECKING:
    from .execution import Execution
    from .function import Function

DEFERRED_SCHEDULE = "inngest/deferred.schedule"
# Keys of a deferred event's data that are the server's (and the experiment's), not the caller's.
_INNGEST_KEY = "_inngest"
_EXPERIMENT_KEY = "_inngestExperiment"
_BAD_ID_CHARACTERS = ("'", "\\", "\n", "\r")


def deferred_trigger(composite_id: str) -> TriggerEvent:
    """The one trigger of a deferred function: the schedule event meant for it."""
    if any(c in composite_id for c in _BAD_ID_CHARACTERS):
        raise ConfigError(
            f"a deferred function's id may not contain quotes, backslashes or line breaks:"
            f" {composite_id!r}"
        )
    return TriggerEvent(
        event=DEFERRED_SCHEDULE,
        expression=f"event.data._inngest.fn_slug == '{composite_id}'",
    )


@dataclass(frozen=True, slots=True)
class Parent:
    """The run that deferred this one (``ctx.parents[i]`` goes with ``ctx.events[i]``)."""

    fn_slug: str
    """The composite id of the parent's function (``<app_id>-<fn_id>``)."""
    run_id: str
    experiment: dict[str, str] | None = None
    """``{"experimentName", "variant"}`` when the defer named an experiment (JS SDK)."""


def parent_of(event: Event) -> tuple[Event, Parent]:
    """A deferred event as its handler sees it (the server's keys taken out of ``data``),
    and the run that deferred it."""
    data = dict(event.data)
    routing = data.pop(_INNGEST_KEY, None)
    experiment = data.pop(_EXPERIMENT_KEY, None)
    if not isinstance(routing, Mapping):
        raise ConfigError("a deferred run's event has no _inngest data: it was not deferred")
    fn_slug, run_id = routing.get("parent_fn_slug"), routing.get("parent_run_id")
    if not isinstance(fn_slug, str) or not isinstance(run_id, str):
        raise ConfigError("a deferred run's event does not name the run that deferred it")
    shown: dict[str, str] | None = None
    if isinstance(experiment, Mapping):
        name, variant = experiment.get("experimentName"), experiment.get("variant")
        if isinstance(name, str) and isinstance(variant, str):
            shown = {"experimentName": name, "variant": variant}
    return Event(
        name=event.name,
        data=data,
        id=event.id,
        ts=event.ts,
        user=event.user,
        v=event.v,
        meta=event.meta,
    ), Parent(fn_slug, run_id, shown)


class DeferHandle:
    """What ``ctx.defer`` returns: ``abort()`` takes the defer back (until the run ends)."""

    __slots__ = ("_abort",)

    def __init__(self, abort: Callable[[], object] | None = None) -> None:
        self._abort = abort

    def abort(self) -> None:
        """The deferred run will not start. Once the run ended, this changes nothing."""
        if self._abort is not None:
            self._abort()


class Defer:
    """``ctx.defer(defer_id, function=..., data=...)``: start ``function`` when this run ends.

    ``defer_id`` names the defer within the run (unique: a second defer with the same id
    in one run is skipped with a warning). ``data`` (a dict) is the deferred event's data.
    ``meta``: ``{"sessions": {...}}`` for the deferred run; by default it inherits this run's
    sessions. Synchronous in both kinds of handler: it only records the wish.
    """

    __slots__ = ("_execution",)

    def __init__(self, execution: Execution) -> None:
        self._execution = execution

    def __call__(
        self,
        defer_id: str,
        *,
        function: Function,
        data: Mapping[str, Any] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> DeferHandle:
        if not isinstance(defer_id, str) or not defer_id:
            raise ConfigError("a defer needs a non-empty string id")
        if not getattr(function, "deferred", False):
            raise ConfigError(
                f"{function!r} is not a deferred function: make it with client.create_defer"
            )
        payload = event_data(data, what="defer")
        execution = self._execution
        opts: dict[str, Any] = {"fn_slug": function.id, "input": payload}
        event_meta = _defer_meta(meta, execution.sessions)
        if event_meta is not None:
            opts["meta"] = event_meta
        hashed = hash_step_id(defer_id)
        if not execution.add_lazy(_op(Opcode.DEFER_ADD, hashed, defer_id, opts), user_id=defer_id):
            return DeferHandle()
        aborts = {"target_hashed_id": hashed, "fn_slug": function.id, "id": defer_id}
        abort_op = _op(Opcode.DEFER_ABORT, hash_step_id(f"{hashed}:abort"), defer_id, aborts)
        return DeferHandle(lambda: execution.add_lazy(abort_op, user_id=defer_id))


def _op(opcode: Opcode, hashed_id: str, defer_id: str, opts: dict[str, Any]) -> GeneratorOp:
    """A defer's op as the JS SDK shapes it: named by the defer's id, with ``data: null``."""
    return GeneratorOp(
        op=opcode,
        id=hashed_id,
        name=defer_id,
        display_name=defer_id,
        opts=opts,
        data=None,
        has_data=True,
        userland={"id": defer_id},
    )


def _defer_meta(
    meta: Mapping[str, Any] | None, inherited: Mapping[str, str]
) -> dict[str, Any] | None:
    """The deferred event's ``meta``: the caller's sessions, and this run's as the layer it
    inherits (the server resolves the two when it sends the event)."""
    out: dict[str, Any] = {}
    if meta is not None:
        if not isinstance(meta, Mapping):
            raise ConfigError("defer meta must be a dict")
        try:
            resolve_meta(meta)  # refused here, not silently by the server
        except SessionError as exc:
            raise ConfigError(f"defer meta: {exc}") from exc
        if SESSIONS in meta:
            out[SESSIONS] = meta[SESSIONS]
    if inherited:
        out[PROPAGATED] = dict(inherited)
    return out or None


__all__ = ["DEFERRED_SCHEDULE", "Defer", "DeferHandle", "Parent", "deferred_trigger", "parent_of"]

"""Defers (JS SDK 4.x ``defer``): runs a run asks for, started once it ends.

An SDK sends ``DeferAdd`` and ``DeferAbort`` ops along with its other ops (in a call's
answer or a checkpoint); they never make a step. Each becomes a ``DeferChange`` written
with the rest of that answer. Every later call tells the SDK which defers the run has
(``defers_map``), so a replay does not add them again. When the run ends, completed or
failed, each defer still to start becomes one ``inngest/deferred.schedule`` event
(``deferred_events``), written in the same transaction as the run's end; functions made
with ``createDefer`` are triggered by it.

A defer the server will not start is kept as rejected, with the reason in the run's
history, and never fails its run: an input that is not an object or is over 4 MB, a
``meta`` over 32 KB or with invalid sessions. Past 20 defers, or 4 MB of inputs, in one
run, further ones are not stored at all (the history says so).
"""

from __future__ import annotations

import hashlib
from typing import Any

from ... import protocol
from ...protocol import GeneratorOp, Opcode, sessions
from ..store.records import (
    DeferChange,
    DeferRecord,
    DeferStatus,
    EventRecord,
    HistoryEntry,
    HistoryKind,
    RunRecord,
)

DEFERRED_SCHEDULE = "inngest/deferred.schedule"
MAX_DEFERS = 20  # per run
MAX_DEFER_INPUT = 4 * 1024 * 1024  # bytes of one defer's input
MAX_DEFER_INPUTS = 4 * 1024 * 1024  # bytes of a run's defer inputs together
MAX_DEFER_META = 32 * 1024  # bytes of one defer's meta

DEFER_OPS = frozenset({Opcode.DEFER_ADD, Opcode.DEFER_ABORT})


class InvalidDefer(ValueError):
    """A defer op without what identifies it: it cannot be stored, even as rejected."""


def _user_id(op: GeneratorOp) -> str | None:
    given = (op.userland or {}).get("id")
    if isinstance(given, str) and given:
        return given
    return op.display_name or op.name


def _rejection(op: GeneratorOp) -> str | None:
    """Why the server will not start this defer, or None."""
    opts = op.opts or {}
    given = opts.get("input")
    if given is not None and not isinstance(given, dict):
        return "the input of a defer must be a JSON object"
    size = len(protocol.dumps(given))
    if size > MAX_DEFER_INPUT:
        return f"the input of a defer is {size} bytes, over the limit of {MAX_DEFER_INPUT}"
    meta = opts.get("meta")
    if meta is not None:
        if not isinstance(meta, dict):
            return "the meta of a defer must be a JSON object"
        meta_size = len(protocol.dumps(meta))
        if meta_size > MAX_DEFER_META:
            return f"the meta of a defer is {meta_size} bytes, over the limit of {MAX_DEFER_META}"
        try:
            sessions.resolve_meta(meta)
        except sessions.SessionError as exc:
            return f"the sessions of a defer are invalid: {exc}"
    return None


def change_of(op: GeneratorOp, now: int) -> DeferChange:
    """The change a ``DeferAdd`` or ``DeferAbort`` op asks for; ``InvalidDefer`` if the op
    lacks its ids (a function slug, the aborted defer's id)."""
    opts = op.opts or {}
    fn_slug = opts.get("fn_slug")
    if not isinstance(fn_slug, str) or not fn_slug:
        raise InvalidDefer(f"{op.op.value} needs opts.fn_slug, the deferred function's id")
    user_id = _user_id(op)
    shown = {"function": fn_slug}
    if op.op is Opcode.DEFER_ABORT:
        target = opts.get("target_hashed_id")
        if not isinstance(target, str) or not target:
            raise InvalidDefer("DeferAbort needs opts.target_hashed_id, the defer it aborts")
        given_id = opts.get("id")
        name = given_id if isinstance(given_id, str) and given_id else user_id
        record = DeferRecord(target, fn_slug, DeferStatus.ABORTED, user_id=name)
        entry = HistoryEntry(HistoryKind.DEFER_ABORTED, now, target, name, None, {"defer": shown})
        return DeferChange(record, now, abort=True, history=(entry,))
    if not op.id:
        raise InvalidDefer("DeferAdd needs an id")
    refused = HistoryEntry(
        HistoryKind.DEFER_REJECTED,
        now,
        op.id,
        user_id,
        None,
        {
            "defer": shown,
            "reason": f"the run has reached its limit of {MAX_DEFERS} defers"
            f" ({MAX_DEFER_INPUTS} bytes of input together)",
        },
    )
    limits: dict[str, Any] = {
        "max_count": MAX_DEFERS,
        "max_input_bytes": MAX_DEFER_INPUTS,
        "refused": (refused,),
    }
    reason = _rejection(op)
    if reason is not None:
        record = DeferRecord(op.id, fn_slug, DeferStatus.REJECTED, user_id=user_id)
        entry = HistoryEntry(
            HistoryKind.DEFER_REJECTED,
            now,
            op.id,
            user_id,
            None,
            {"defer": shown, "reason": reason},
        )
        return DeferChange(record, now, history=(entry,), **limits)
    given = opts.get("input")
    meta = opts.get("meta")
    record = DeferRecord(
        op.id,
        fn_slug,
        DeferStatus.AFTER_RUN,
        user_id=user_id,
        input=given if isinstance(given, dict) else {},
        meta=meta if isinstance(meta, dict) else None,
    )
    entry = HistoryEntry(HistoryKind.DEFER_ADDED, now, op.id, user_id, None, {"defer": shown})
    return DeferChange(record, now, history=(entry,), **limits)


def applied(defers: list[DeferRecord], changes: list[DeferChange]) -> list[DeferRecord]:
    """The run's defers once ``changes`` are written, as the store writes them (the first
    add of an id wins, an abort aborts one still to start or records it aborted, adds
    past the limits are dropped)."""
    out = {d.hashed_id: d for d in defers}
    for change in changes:
        record = change.record
        current = out.get(record.hashed_id)
        if change.abort:
            if current is None:
                out[record.hashed_id] = record
            elif current.status is DeferStatus.AFTER_RUN:
                out[record.hashed_id] = DeferRecord(
                    current.hashed_id,
                    current.fn_slug,
                    DeferStatus.ABORTED,
                    current.user_id,
                    current.input,
                    current.meta,
                )
            continue
        if current is not None:
            continue
        size = sum(len(protocol.dumps(d.input)) for d in out.values() if d.input is not None)
        added = 0 if record.input is None else len(protocol.dumps(record.input))
        if len(out) >= change.max_count or size + added > change.max_input_bytes:
            continue
        out[record.hashed_id] = record
    return list(out.values())


def defers_map(defers: list[DeferRecord]) -> dict[str, dict[str, bool]]:
    """The call body's ``defers``: every defer the run has, and whether it can still be
    aborted (only one still to start can)."""
    return {d.hashed_id: {"abortable": d.status is DeferStatus.AFTER_RUN} for d in defers}


def deferred_event_id(run_id: str, hashed_id: str) -> str:
    """The deferred event's id: the same for the same run and defer, whoever computes it."""
    seed = hashlib.sha256(f"{run_id}{hashed_id}".encode()).digest()[:10]
    return protocol.encode_ulid(protocol.ulid_ms(run_id), seed)


def deferred_events(
    run: RunRecord, defers: list[DeferRecord], now: int
) -> tuple[list[EventRecord], list[HistoryEntry]]:
    """The ``inngest/deferred.schedule`` events of a run that ended, one per defer still to
    start, and the history entries that tell of them."""
    events: list[EventRecord] = []
    history: list[HistoryEntry] = []
    for defer in defers:
        if defer.status is not DeferStatus.AFTER_RUN:
            continue
        shown: dict[str, Any] = {"function": defer.fn_slug}
        try:
            meta = sessions.resolve_meta(defer.meta)
        except sessions.SessionError as exc:  # checked when added; kept for older rows
            reason = f"the sessions of a defer are invalid: {exc}"
            history.append(
                HistoryEntry(
                    HistoryKind.DEFER_REJECTED,
                    now,
                    defer.hashed_id,
                    defer.user_id,
                    None,
                    {"defer": shown, "reason": reason},
                )
            )
            continue
        data = dict(defer.input or {})
        data["_inngest"] = {
            "fn_slug": defer.fn_slug,
            "parent_fn_slug": run.function_slug,
            "parent_run_id": run.id,
            "parent_fn_id": run.function_id,
        }
        event_id = deferred_event_id(run.id, defer.hashed_id)
        events.append(
            EventRecord(
                internal_id=event_id,
                id=event_id,
                name=DEFERRED_SCHEDULE,
                data=data,
                user={},
                ts=now,
                v=None,
                received_at=now,
                meta=meta,
            )
        )
        shown["event_id"] = event_id
        history.append(
            HistoryEntry(
                HistoryKind.DEFER_STARTED,
                now,
                defer.hashed_id,
                defer.user_id,
                None,
                {"defer": shown},
            )
        )
    return events, history


__all__ = [
    "DEFERRED_SCHEDULE",
    "DEFER_OPS",
    "MAX_DEFERS",
    "InvalidDefer",
    "applied",
    "change_of",
    "deferred_event_id",
    "deferred_events",
    "defers_map",
]

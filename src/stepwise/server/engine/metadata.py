"""Run and step metadata (JS SDK 4.x): small JSON objects by kind, kept in the run's history.

Metadata arrives two ways: on a step's op (``metadata: [{kind, scope, op, values}]``, in a
call's answer or a checkpoint), written with the step's result; and through
``POST /v1/runs/{run_id}/metadata``, for any run, ended or not. Each update is one
``Metadata`` history entry; a later update of a kind replaces the earlier one for the same
target (``current``), as Inngest treats every write as a ``set``.

Kinds are the user's (``userland.<name>``) or one of the ``inngest.*`` kinds below. An
``inngest.ai`` entry without an ``estimated_cost`` gets one, from the model's list price
per token (``estimated_cost``); 0 for a model this table does not know.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from ...protocol import GeneratorOp, dumps
from ...protocol.metadata import INNGEST_KINDS, MAX_KIND_BYTES
from ..store.records import HistoryEntry, HistoryKind

log = logging.getLogger("stepwise.metadata")

Scope = Literal["run", "step", "extended_trace"]
SCOPES: tuple[Scope, ...] = ("run", "step", "extended_trace")

MAX_VALUES_BYTES = 64 * 1024  # one update's values
MAX_UPDATES = 100  # updates in one request or on one op

# USD per million tokens (input, output): list prices of common models, matched by the
# longest prefix of the model's name. An estimate, not a bill.
_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.6),
    "gpt-4o": (2.5, 10.0),
    "gpt-4.1-nano": (0.1, 0.4),
    "gpt-4.1-mini": (0.4, 1.6),
    "gpt-4.1": (2.0, 8.0),
    "gpt-4-turbo": (10.0, 30.0),
    "gpt-4": (30.0, 60.0),
    "gpt-3.5-turbo": (0.5, 1.5),
    "gpt-5-nano": (0.05, 0.4),
    "gpt-5-mini": (0.25, 2.0),
    "gpt-5": (1.25, 10.0),
    "o1-mini": (1.1, 4.4),
    "o1": (15.0, 60.0),
    "o3-mini": (1.1, 4.4),
    "o3": (2.0, 8.0),
    "o4-mini": (1.1, 4.4),
    "claude-3-haiku": (0.25, 1.25),
    "claude-3-5-haiku": (0.8, 4.0),
    "claude-haiku-4": (1.0, 5.0),
    "claude-3-sonnet": (3.0, 15.0),
    "claude-3-5-sonnet": (3.0, 15.0),
    "claude-3-7-sonnet": (3.0, 15.0),
    "claude-sonnet-4": (3.0, 15.0),
    "claude-3-opus": (15.0, 75.0),
    "claude-opus-4": (15.0, 75.0),
    "gemini-1.5-flash": (0.075, 0.3),
    "gemini-1.5-pro": (1.25, 5.0),
    "gemini-2.0-flash": (0.1, 0.4),
    "gemini-2.5-flash": (0.3, 2.5),
    "gemini-2.5-pro": (1.25, 10.0),
}


class InvalidMetadata(ValueError):
    """An update the server will not keep; ``status`` is 400 or 413."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Update:
    """One checked update: what a ``Metadata`` history entry keeps."""

    kind: str
    scope: Scope
    values: dict[str, Any]
    op: str = "set"

    def entry(
        self, at: int, step_id: str | None, name: str | None, attempt: int | None
    ) -> HistoryEntry:
        shown = {"kind": self.kind, "scope": self.scope, "op": self.op, "values": self.values}
        return HistoryEntry(HistoryKind.METADATA, at, step_id, name, attempt, {"metadata": shown})


def check_kind(kind: object) -> str:
    if not isinstance(kind, str) or not kind:
        raise InvalidMetadata("a metadata kind must be a non-empty string")
    if len(kind.encode("utf-8", "surrogatepass")) > MAX_KIND_BYTES:
        raise InvalidMetadata(f"a metadata kind is at most {MAX_KIND_BYTES} bytes")
    if kind.startswith("inngest.") and kind not in INNGEST_KINDS:
        raise InvalidMetadata(
            f"{kind!r} is not a metadata kind of the server's: the inngest.* kinds are"
            f" {', '.join(sorted(INNGEST_KINDS))}"
        )
    return kind


def _price(model: object) -> tuple[float, float] | None:
    if not isinstance(model, str) or not model:
        return None
    name = model.lower().rsplit("/", 1)[-1]
    best = max((p for p in _PRICES if name.startswith(p)), key=len, default=None)
    return _PRICES[best] if best is not None else None


def _tokens(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def estimated_cost(values: dict[str, Any]) -> float:
    """What an AI call cost, in USD, from its model and token counts; 0 if unknown."""
    price = _price(values.get("response_model")) or _price(values.get("request_model"))
    if price is None:
        return 0.0
    cost = _tokens(values.get("input_tokens")) * price[0]
    cost += _tokens(values.get("output_tokens")) * price[1]
    return round(cost / 1_000_000, 8)


def checked(raw: object, *, scope: Scope | None = None) -> Update:
    """One update from an SDK (``{kind, op, values}``, and ``scope`` on an op) or
    ``InvalidMetadata``. ``scope``: the scope the request's target gives it."""
    if not isinstance(raw, dict):
        raise InvalidMetadata("a metadata update must be an object")
    kind = check_kind(raw.get("kind"))
    values = raw.get("values")
    if not isinstance(values, dict):
        raise InvalidMetadata("metadata values must be an object")
    size = len(dumps(values))
    if size > MAX_VALUES_BYTES:
        raise InvalidMetadata(
            f"metadata of kind {kind!r} is {size} bytes, over the limit of {MAX_VALUES_BYTES}",
            413,
        )
    op = raw.get("op", "set")
    if op not in ("set", "merge"):
        raise InvalidMetadata("a metadata op is 'set' or 'merge'")
    given = raw.get("scope") if scope is None else scope
    if given not in SCOPES:
        raise InvalidMetadata("a metadata scope is 'run', 'step' or 'extended_trace'")
    if kind == "inngest.ai" and "estimated_cost" not in values:
        values = {**values, "estimated_cost": estimated_cost(values)}
    return Update(kind=kind, scope=given, values=values, op=str(op))


def of_op(op: GeneratorOp, at: int, name: str | None, attempt: int | None) -> list[HistoryEntry]:
    """The history entries of the metadata a step's op carries; an update the server will
    not keep is left out (an SDK's metadata never fails its step)."""
    entries: list[HistoryEntry] = []
    for raw in (op.metadata or [])[:MAX_UPDATES]:
        try:
            update = checked(raw)
        except InvalidMetadata as exc:
            log.warning("metadata on step %s left out: %s", op.id, exc)
            continue
        entries.append(update.entry(at, op.id, name, attempt))
    return entries


@dataclass(frozen=True, slots=True)
class Current:
    """The latest values of one kind on one target, as a run's page shows them."""

    scope: str
    kind: str
    step_id: str | None
    name: str | None
    values: Any
    at: int


def current(history: Iterable[HistoryEntry]) -> list[Current]:
    """Each (scope, step, kind)'s latest values, in the order their kinds first appeared."""
    latest: dict[tuple[str, str | None, str], Current] = {}
    for entry in history:
        if entry.kind is not HistoryKind.METADATA or not isinstance(entry.data, dict):
            continue
        shown = entry.data.get("metadata")
        if not isinstance(shown, dict):
            continue
        scope, kind = str(shown.get("scope")), str(shown.get("kind"))
        step = entry.step_id if scope != "run" else None
        found = Current(scope, kind, step, entry.name, shown.get("values"), entry.at)
        latest[(scope, step, kind)] = found
    return list(latest.values())


__all__ = [
    "INNGEST_KINDS",
    "Current",
    "InvalidMetadata",
    "Update",
    "check_kind",
    "checked",
    "current",
    "estimated_cost",
    "of_op",
]

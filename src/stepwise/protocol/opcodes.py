"""Opcodes an SDK returns in a 206 response, and the op objects that carry them."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Opcode(enum.StrEnum):
    NONE = "None"
    STEP = "Step"
    STEP_RUN = "StepRun"
    STEP_ERROR = "StepError"
    STEP_PLANNED = "StepPlanned"
    SLEEP = "Sleep"
    WAIT_FOR_EVENT = "WaitForEvent"
    INVOKE_FUNCTION = "InvokeFunction"
    AI_GATEWAY = "AIGateway"
    GATEWAY = "Gateway"
    WAIT_FOR_SIGNAL = "WaitForSignal"
    RUN_COMPLETE = "RunComplete"
    STEP_FAILED = "StepFailed"
    SYNC_RUN_COMPLETE = "SyncRunComplete"
    DISCOVERY_REQUEST = "DiscoveryRequest"
    DEFER_ADD = "DeferAdd"
    DEFER_ABORT = "DeferAbort"


_BY_LOWER = {op.value.lower(): op for op in Opcode}


class OpParseError(ValueError):
    """An SDK response holds something that is not a valid op."""


def parse_opcode(value: object) -> Opcode:
    """Match an op string exactly or case-insensitively (``AiGateway`` == ``AIGateway``)."""
    if not isinstance(value, str):
        raise OpParseError(f"op must be a string, got {type(value).__name__}")
    found = _BY_LOWER.get(value.lower())
    if found is None:
        raise OpParseError(f"unknown op {value!r}")
    return found


@dataclass(frozen=True, slots=True)
class GeneratorOp:
    """One element of a 206 body. Absent and null fields are the same thing."""

    op: Opcode
    id: str
    name: str | None = None
    display_name: str | None = None
    opts: dict[str, Any] | None = None
    data: Any = None
    has_data: bool = False
    error: dict[str, Any] | None = None
    userland: dict[str, Any] | None = None
    timing: dict[str, Any] | None = None
    # Run and step metadata riding on a step's op: ``[{kind, scope, op, values}]`` (JS 4.x).
    metadata: list[dict[str, Any]] | None = None

    @classmethod
    def from_wire(cls, raw: object) -> GeneratorOp:
        if not isinstance(raw, dict):
            raise OpParseError("op must be an object")
        op = parse_opcode(raw.get("op"))
        op_id = raw.get("id")
        if op_id is None:
            op_id = ""
        if not isinstance(op_id, str):
            raise OpParseError("op id must be a string")
        name = raw.get("name")
        opts = raw.get("opts")
        error = raw.get("error")
        userland = raw.get("userland")
        timing = raw.get("timing")
        metadata = raw.get("metadata")
        display = raw.get("displayName")
        if name is not None and not isinstance(name, str):
            raise OpParseError("op name must be a string")
        if opts is not None and not isinstance(opts, dict):
            raise OpParseError("op opts must be an object")
        if error is not None and not isinstance(error, dict):
            error = {"name": "Error", "message": str(error)}
        return cls(
            op=op,
            id=op_id,
            name=name,
            display_name=display if isinstance(display, str) else None,
            opts=opts,
            data=raw.get("data"),
            has_data="data" in raw,
            error=error,
            userland=userland if isinstance(userland, dict) else None,
            timing=timing if isinstance(timing, dict) else None,
            metadata=[m for m in metadata if isinstance(m, dict)]
            if isinstance(metadata, list)
            else None,
        )

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op.value, "id": self.id}
        if self.name is not None:
            out["name"] = self.name
        if self.display_name is not None:
            out["displayName"] = self.display_name
        if self.opts is not None:
            out["opts"] = self.opts
        if self.has_data or self.data is not None:
            out["data"] = self.data
        if self.error is not None:
            out["error"] = self.error
        if self.userland is not None:
            out["userland"] = self.userland
        if self.timing is not None:
            out["timing"] = self.timing
        if self.metadata:
            out["metadata"] = self.metadata
        return out


def parse_ops(body: object) -> list[GeneratorOp]:
    """Parse a 206 body: an array of ops, a single op object, or ``null``/``[]`` for none."""
    if body is None:
        return []
    if isinstance(body, dict):
        body = [body]
    if not isinstance(body, list):
        raise OpParseError("206 body must be an array of ops")
    return [GeneratorOp.from_wire(item) for item in body if item is not None]


@dataclass(frozen=True, slots=True)
class WireError:
    """The error object of the wire: ``{name, message, stack?}`` plus tolerated extras."""

    name: str
    message: str
    stack: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_wire(cls, raw: object, default_name: str = "Error") -> WireError:
        if isinstance(raw, dict):
            name = raw.get("name")
            message = raw.get("message")
            if message is None and isinstance(raw.get("error"), str):
                message = raw["error"]
            stack = raw.get("stack")
            extra = {k: v for k, v in raw.items() if k not in {"name", "message", "stack"}}
            return cls(
                name=name if isinstance(name, str) and name else default_name,
                message=message
                if isinstance(message, str)
                else ("" if message is None else str(message)),
                stack=stack if isinstance(stack, str) else None,
                extra=extra,
            )
        if isinstance(raw, str):
            return cls(name=default_name, message=raw)
        return cls(name=default_name, message="" if raw is None else str(raw))

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        out["name"] = self.name
        out["message"] = self.message
        if self.stack is not None:
            out["stack"] = self.stack
        return out

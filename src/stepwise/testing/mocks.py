"""What a test puts in place of a step: mocks, looked up by step ID or by the step's kind;
and the events that arrive while a run goes on.

A mock is a value, an exception (raised as the step's failure), or a callable that
returns either. A ``step.run`` mock callable is called like the step's own function
(same arguments); a mock of any other step gets a ``StepRequest`` saying what the step
asked for. Each kind of step turns the mock's answer into the result the server would
have stored (its memo), so user code sees exactly what it would see in production.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ..errors import ConfigError, StepError
from ..protocol import Opcode, dumps, loads
from ..protocol import events as ev
from ..sdk.event import Event, EventLike
from ..sdk.function import Function
from ..sdk.gateway import FetchResponse
from ..sdk.options import Duration
from ..server.engine.pauses import INVOKE_TIMEOUT_ERROR


class _Timeout:
    __slots__ = ()

    def __repr__(self) -> str:
        return "TIMEOUT"


TIMEOUT: Final[Any] = _Timeout()
"""A mock answer for a wait or an invoke: it timed out (``None`` works too for waits)."""


class _NotSet:
    __slots__ = ()


NOT_SET: Final[Any] = _NotSet()


# The step kinds, as the tools are named; the kind of an op no tool named falls back to this.
KIND_OF_OP = {
    Opcode.SLEEP: "sleep",
    Opcode.WAIT_FOR_EVENT: "wait_for_event",
    Opcode.WAIT_FOR_SIGNAL: "wait_for_signal",
    Opcode.INVOKE_FUNCTION: "invoke",
    Opcode.GATEWAY: "fetch",
    Opcode.AI_GATEWAY: "ai.infer",
}


@dataclass(frozen=True, slots=True)
class StepRequest:
    """What a step (other than ``step.run``) asked the server to do, handed to a mock.

    ``opts`` is the op's wire form (``url``/``method``/``headers``/``body`` for a fetch,
    ``function_id``/``payload`` for an invoke, ``timeout``/``if`` for a wait, the provider
    request for ``step.ai``); ``name`` is the awaited event or signal of a wait;
    ``args``/``kwargs`` are what the step tool itself was called with.
    """

    id: str
    kind: str
    op: Opcode
    opts: dict[str, Any]
    name: str | None = None
    attempt: int = 0
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str | None:
        url = self.opts.get("url")
        return url if isinstance(url, str) else None

    @property
    def function_id(self) -> str | None:
        fid = self.opts.get("function_id")
        return fid if isinstance(fid, str) else None

    @property
    def data(self) -> dict[str, Any]:
        """An invoke's event data."""
        payload = self.opts.get("payload")
        data = payload.get("data") if isinstance(payload, dict) else None
        return dict(data) if isinstance(data, dict) else {}


@dataclass(frozen=True, slots=True)
class Mocks:
    """Every mock of one execution. ``steps`` wins over the kind-specific ones."""

    steps: Mapping[str, Any] = field(default_factory=dict)
    """By step ID, for steps of any kind."""
    invokes: Mapping[str, Any] = field(default_factory=dict)
    """By the invoked function's ID (``"<app>-<fn>"``, or the ``Function`` itself)."""
    waits: Mapping[str, Any] = field(default_factory=dict)
    """By the name of the awaited event: the event that arrives, or ``None``/``TIMEOUT``."""
    fetch: Any = NOT_SET
    """Every ``step.fetch``: an answer, a callable, or a mapping of URL (``http(s)://...``
    keys) to answer."""
    ai: Any = NOT_SET
    """Every ``step.ai`` request: the provider's response, or a callable."""

    def __post_init__(self) -> None:
        for name in ("steps", "invokes", "waits"):
            if not isinstance(getattr(self, name), Mapping):
                raise ConfigError(f"{name} mocks must be a mapping")
        # ``invokes`` may be keyed by the Function object; the wire knows it by its ID.
        invokes = {k.id if isinstance(k, Function) else k: v for k, v in self.invokes.items()}
        object.__setattr__(self, "invokes", invokes)

    def merged(self, other: Mocks) -> Mocks:
        """These mocks, with ``other``'s added over them."""
        return Mocks(
            steps={**self.steps, **other.steps},
            invokes={**self.invokes, **other.invokes},
            waits={**self.waits, **other.waits},
            fetch=self.fetch if other.fetch is NOT_SET else other.fetch,
            ai=self.ai if other.ai is NOT_SET else other.ai,
        )

    def for_run_step(self, step_id: str) -> tuple[bool, Any]:
        if step_id in self.steps:
            return True, self.steps[step_id]
        return False, None

    def for_request(self, request: StepRequest) -> tuple[bool, Any]:
        """The mock for a step other than ``step.run``, if any: ``(found, mock)``."""
        if request.id in self.steps:
            return True, self.steps[request.id]
        function_id = request.function_id
        if request.op is Opcode.INVOKE_FUNCTION and function_id in self.invokes:
            return True, self.invokes[function_id or ""]
        if request.op is Opcode.WAIT_FOR_EVENT:
            name = request.opts.get("event") or request.name
            if isinstance(name, str) and name in self.waits:
                return True, self.waits[name]
        if request.op is Opcode.GATEWAY and self.fetch is not NOT_SET:
            if _is_url_map(self.fetch):
                if request.url in self.fetch:
                    return True, self.fetch[request.url]
                return False, None
            return True, self.fetch
        if request.op is Opcode.AI_GATEWAY and self.ai is not NOT_SET:
            return True, self.ai
        return False, None


async def answer(mock: Any, *args: Any, **kwargs: Any) -> Any:
    """A mock's answer: its value, or what the callable returns (awaited); raises the
    exception it is or raises."""
    if isinstance(mock, BaseException):
        raise mock
    if _is_callable_mock(mock):
        value = mock(*args, **kwargs)
        if inspect.isawaitable(value):
            value = await value
        if isinstance(value, BaseException):
            raise value
        return value
    return mock


def _is_callable_mock(mock: Any) -> bool:
    return callable(mock) and not isinstance(mock, type | Event | FetchResponse)


def _is_url_map(value: Any) -> bool:
    """A mapping of URL to answer (rather than one JSON answer for every fetch)."""
    return (
        isinstance(value, Mapping)
        and bool(value)
        and all(isinstance(k, str) and k.startswith(("http://", "https://")) for k in value)
    )


def as_json(value: Any, what: str) -> Any:
    """``value`` as it comes back from the server's storage: through JSON."""
    try:
        return loads(dumps(value))
    except TypeError as exc:
        raise ConfigError(f"the mock for {what} is not JSON: {exc}") from exc


def error_of(exc: BaseException, name: str | None = None) -> dict[str, Any]:
    """A failed step's error object, from the exception a mock raised."""
    if isinstance(exc, StepError):
        return {"name": exc.name, "message": exc.message}
    message = getattr(exc, "message", None)
    return {
        "name": name or type(exc).__name__,
        "message": message if isinstance(message, str) else str(exc),
    }


def wait_memo(
    answer_value: Any, request: StepRequest, now_ms: int, new_id: Callable[[], str]
) -> Any:
    """A ``wait_for_event``'s memo: the event as the server delivers it, or ``None``."""
    if answer_value is None or answer_value is TIMEOUT:
        return None
    if isinstance(answer_value, Event):
        raw: dict[str, Any] = answer_value.to_wire()
    elif isinstance(answer_value, Mapping):
        raw = dict(answer_value)
    else:
        raise ConfigError(
            f"the mock for wait_for_event {request.id!r} must be an Event, a dict, None or "
            f"TIMEOUT, not {answer_value!r}"
        )
    name = raw.get("name") or request.opts.get("event") or request.name or ""
    event = ev.event_to_wire(
        name=str(name),
        data=dict(raw.get("data") or {}),
        id=str(raw.get("id") or new_id()),
        ts=int(raw.get("ts") or now_ms),
        user=dict(raw.get("user") or {}),
        v=raw.get("v") if isinstance(raw.get("v"), str) else None,
    )
    return as_json(event, f"wait_for_event {request.id!r}")


def signal_memo(answer_value: Any, request: StepRequest) -> Any:
    if answer_value is None or answer_value is TIMEOUT:
        return None
    signal = request.opts.get("signal")
    return {"data": as_json({"signal": signal, "data": answer_value}, f"signal {request.id!r}")}


def invoke_memo(answer_value: Any, request: StepRequest) -> Any:
    if answer_value is TIMEOUT:
        return {"error": dict(INVOKE_TIMEOUT_ERROR)}
    return {"data": as_json(answer_value, f"invoke {request.id!r}")}


def fetch_memo(answer_value: Any, request: StepRequest) -> dict[str, Any]:
    """A ``step.fetch``'s memo data: ``{url, headers, body, status_code}``."""
    url = request.url or ""
    if isinstance(answer_value, FetchResponse):
        return {
            "url": answer_value.url or url,
            "headers": dict(answer_value.headers),
            "body": answer_value.text,
            "status_code": answer_value.status_code,
        }
    if isinstance(answer_value, Mapping) and "status_code" in answer_value:
        return {"url": url, "headers": {}, "body": "", **as_json(answer_value, f"fetch {url}")}
    if isinstance(answer_value, str):
        return {"url": url, "headers": {}, "body": answer_value, "status_code": 200}
    if isinstance(answer_value, dict | list):
        body = dumps(answer_value).decode()
        headers = {"content-type": "application/json"}
        return {"url": url, "headers": headers, "body": body, "status_code": 200}
    raise ConfigError(
        f"the mock for fetch {request.id!r} must be a FetchResponse, a dict with a "
        f"status_code, a str body or JSON, not {answer_value!r}"
    )


@dataclass(frozen=True, slots=True)
class Arrival:
    """An event that reaches the server while the run goes on.

    It arrives ``at`` a virtual time after the run's event (default: at once, once the
    run's first calls are done), or as soon as the step ``after_step`` has ended and the
    run has gone on to wait for what comes next. There it does what it would do on the
    server: resume the ``wait_for_event`` steps it matches (one that starts later does not
    see it), or cancel the run through ``cancel_on``.
    """

    event: EventLike
    at: Duration | None = None
    after_step: str | None = None

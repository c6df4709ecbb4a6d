"""The OpenAPI 3.1 description of every HTTP route a client calls, served at ``/openapi.json``.

Written as data, next to the handlers it describes, rather than generated: most bodies are
built by hand in ``rest.py`` and ``control.py`` and an exact schema of them is shorter to
write than a pydantic model per shape. A schemathesis test holds the two together by
calling the real server with what this document allows and checking every answer against
it. The document follows the server's mode: in production the ``/v1`` and ``/v0`` routes
need the signing key and ``/dev`` is not served.
"""

from __future__ import annotations

from typing import Any

from ... import __version__
from ...protocol.events import MAX_EVENT_NAME_LENGTH, RESERVED_PREFIX
from ..engine.metadata import INNGEST_KINDS, MAX_UPDATES
from ..store.records import HistoryKind, RunHold, RunStatus
from .checkpoint import AsyncCheckpointBody
from .endpoints import NewRunBody, StepsBody
from .events import MAX_EVENT_TS, MIN_EVENT_TS
from .metadata import MAX_INDEX
from .rest import MAX_LIMIT
from .run_listing import CURSOR_PATTERN, DEFAULT_LIMIT, MAX_FUNCTIONS, MAX_TEXT
from .run_search import MAX_EXPRESSION, SCAN_LIMIT

Schema = dict[str, Any]

# What ``protocol.is_ulid`` accepts (Crockford base32, either case, at most 7 in front).
ULID = "^[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}$"
# ``<event internal id>`` or ``<event internal id>.<copy>`` (see ``rest._event_cursor``).
EVENT_CURSOR = "^[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}([.][0-9]{1,9})?$"


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"oneOf": [schema, {"type": "null"}]}


def _object(properties: dict[str, Schema], *, optional: tuple[str, ...] = ()) -> Schema:
    return {
        "type": "object",
        "required": [name for name in properties if name not in optional],
        "properties": properties,
    }


_STRING: Schema = {"type": "string"}
_TIME: Schema = {"type": "string", "format": "date-time"}
_ANY: Schema = {}

SCHEMAS: dict[str, Schema] = {
    "Error": {
        "description": "Every failure: a message, a stable machine-readable code and the HTTP"
        " status again. Some errors add fields (``parameter`` names a bad query parameter).",
        **_object(
            {
                "error": {"type": "string", "description": "What went wrong, for a person."},
                "code": {"type": "string", "description": "Stable, for a program."},
                "status": {"type": "integer", "minimum": 400, "maximum": 599},
                "parameter": {"type": "string"},
            },
            optional=("parameter",),
        ),
    },
    "EventSendError": {
        "allOf": [
            _ref("Error"),
            _object(
                {
                    "ids": {
                        "type": "array",
                        "items": _STRING,
                        "description": "Ids of the events before the first bad one: those"
                        " were stored and will run.",
                    }
                }
            ),
        ]
    },
    "Metadata": _object(
        {
            "fetched_at": _TIME,
            "cached_until": _nullable(_TIME),
        }
    ),
    "Event": _object(
        {
            "internal_id": {"type": "string", "description": "The server's id (a ULID)."},
            "id": {
                "type": "string",
                "description": "The sender's id (idempotency), or the internal id.",
            },
            "name": _STRING,
            "data": {"type": "object"},
            "user": {"type": "object"},
            "ts": {"type": "integer", "description": "Milliseconds since the epoch."},
            "v": _nullable(_STRING),
            "received_at": _TIME,
            "meta": {
                "type": "object",
                "description": "The sender's ``meta``, its sessions resolved: ``sessions``"
                " is an object of string ids.",
            },
        },
        optional=("meta",),
    ),
    "Run": _object(
        {
            "run_id": _STRING,
            "run_started_at": {
                **_TIME,
                "description": "When the run started, or was created if it has not yet.",
            },
            "function_id": _STRING,
            "function_slug": _STRING,
            "function_version": {"type": "integer"},
            "environment_id": _STRING,
            "event_id": {
                **_nullable(_STRING),
                "description": "Internal id of the triggering event.",
            },
            "batch_id": {"type": "null"},
            "original_run_id": {
                "anyOf": [{"type": "string", "pattern": ULID}, {"type": "null"}],
                "description": "The run this one reruns (``POST /v1/runs/{id}/rerun``), if any.",
            },
            "cron": _nullable(_STRING),
            "status": {"type": "string", "enum": [s.value for s in RunStatus]},
            "ended_at": _nullable(_TIME),
            "output": {**_ANY, "description": "The function's return value; only once ended."},
            "skip_reason": _STRING,
        },
        optional=("output", "skip_reason"),
    ),
    "HistoryEntry": {
        **_object(
            {
                "kind": {"type": "string", "enum": [k.value for k in HistoryKind]},
                "at": _TIME,
                "step_id": _nullable(_STRING),
                "name": _nullable(_STRING),
                "attempt": _nullable({"type": "integer"}),
                "output": {**_ANY, "description": "A completed step's output."},
                "input": {
                    "type": "array",
                    "description": "A step's arguments, when its SDK sends them (JS; a"
                    " ``step.ai.wrap``'s from either SDK), arguments named like credentials"
                    " ``[redacted]``.",
                },
                "fetch": {
                    **_object({"method": _STRING, "url": _STRING}, optional=("url",)),
                    "description": "A step.fetch's request: its URL without query or"
                    " credentials (its headers and body are not kept).",
                },
                "type": {
                    **_STRING,
                    "description": "``step.ai.infer`` or ``step.ai.wrap`` for those steps.",
                },
                "request": {
                    "type": "object",
                    "description": "A ``step.ai.infer`` step's request (``StepPlanned``), "
                    "with its key and credential headers and parameters ``[redacted]``.",
                },
                "until": {**_TIME, "description": "When a sleep ends or a wait times out."},
                "event": {**_STRING, "description": "The event a wait is for."},
                "if": {**_STRING, "description": "The condition a waited-for event meets."},
                "signal": {**_STRING, "description": "The signal a wait is for."},
                "metadata": {
                    **_object(
                        {
                            "kind": _STRING,
                            "scope": {"type": "string", "enum": ["run", "step", "extended_trace"]},
                            "op": _STRING,
                            "values": {"type": "object"},
                        }
                    ),
                    "description": "A ``Metadata`` entry's update: the values its kind now"
                    " has on the run (scope ``run``) or on the entry's step.",
                },
                "defer": {
                    **_object({"function": _STRING, "event_id": _STRING}, optional=("event_id",)),
                    "description": "A defer's function; ``DeferStarted`` adds the event it sent.",
                },
                "reason": {**_STRING, "description": "Why a defer was rejected."},
            },
            optional=(
                "output",
                "input",
                "fetch",
                "type",
                "request",
                "until",
                "event",
                "if",
                "signal",
                "metadata",
                "defer",
                "reason",
            ),
        ),
        "description": "One thing that happened in a run; kinds add fields of their own.",
        "additionalProperties": True,
    },
    "MetadataRequest": _object(
        {
            "target": {
                "type": "object",
                "properties": {
                    "run_id": {**_STRING, "description": "The run of the path, if given."},
                    "step_id": {**_STRING, "description": "A step's id as its function names it."},
                    "step_index": {"type": "integer", "minimum": 0, "maximum": MAX_INDEX},
                    "step_attempt": {
                        "type": "integer",
                        "minimum": -MAX_INDEX,
                        "maximum": MAX_INDEX,
                        "description": "Below 0, or absent: the latest attempt.",
                    },
                    "span_id": _STRING,
                },
            },
            "metadata": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_UPDATES,
                "items": _object(
                    {
                        "kind": {
                            "anyOf": [
                                {"type": "string", "enum": sorted(INNGEST_KINDS)},
                                {
                                    "type": "string",
                                    "minLength": 1,
                                    "maxLength": 64,
                                    "pattern": "^(?!inngest[.])",
                                },
                            ]
                        },
                        "op": {"type": "string", "enum": ["set", "merge"]},
                        "values": {"type": "object"},
                    },
                    optional=("op",),
                ),
            },
        },
        optional=("target",),
    ),
    "Function": _object(
        {
            "id": _STRING,
            "slug": _STRING,
            "name": _STRING,
            "app_id": _STRING,
            "triggers": {"type": "array", "items": {"type": "object"}},
            "url": _STRING,
            "max_attempts": {"type": "integer"},
            "created_at": _TIME,
        }
    ),
    "App": _object(
        {
            "id": _STRING,
            "name": _STRING,
            "url": _STRING,
            "sdk": _STRING,
            "framework": _STRING,
            "sdk_language": {
                "type": "string",
                "description": "From ``sdk`` (``py:v0.1.0`` → ``py``).",
            },
            "sdk_version": {"type": "string", "description": "From ``sdk`` (→ ``0.1.0``)."},
            "synced_at": _TIME,
            "function_count": {"type": "integer", "minimum": 0},
            "functions": {"type": "array", "items": _ref("Function")},
            "sync": {
                **_nullable(_ref("AppSync")),
                "description": "The last attempt to sync the app from its URL, if recorded.",
            },
        }
    ),
    "AppSync": {
        "description": "The last attempt to sync the app at a URL: by the server (a PUT to"
        " the app) or by the app (``POST /fn/register``).",
        **_object(
            {
                "url": _STRING,
                "status": {"type": "string", "enum": ["ok", "failing"]},
                "error": {
                    **_nullable(_STRING),
                    "description": "Why it failed: unreachable, refused, a bad signature, an"
                    " invalid configuration, ...",
                },
                "attempted_at": _TIME,
                "added_at": {
                    **_nullable(_TIME),
                    "description": "When the URL was added through ``POST /v1/apps``.",
                },
                "app_name": _nullable(_STRING),
            }
        ),
    },
    "NewApp": {
        **_object({"url": {"type": "string", "description": "The app's serve URL."}}),
        "additionalProperties": False,
    },
    "AppSyncError": {
        "description": "An app that did not sync (``app_sync_failed``): the reason, and the"
        " attempt as kept.",
        "allOf": [_ref("Error"), _object({"sync": _ref("AppSync")}, optional=("sync",))],
    },
    "Cancellation": _object(
        {
            "id": _STRING,
            "app_id": _STRING,
            "function_id": {"type": "string", "description": "The function's slug."},
            "started_after": _nullable(_TIME),
            "started_before": _TIME,
            "if": _nullable(_STRING),
            "created_at": _TIME,
        }
    ),
    "NewCancellation": {
        **_object(
            {
                "app_id": {"type": "string", "minLength": 1},
                "function_id": {
                    "type": "string",
                    "minLength": 1,
                    "description": "The SDK's function id, or the full ``<app>-<fn>`` slug.",
                },
                "started_before": _TIME,
                "started_after": _nullable(_TIME),
                "if": {
                    **_nullable(_STRING),
                    "description": "A CEL expression over ``event``; only matching runs.",
                },
            },
            optional=("started_after", "if"),
        ),
    },
    "Signal": _object(
        {"signal": {"type": "string", "minLength": 1}, "data": _ANY}, optional=("data",)
    ),
}


def _envelope(data: Schema, *, next_cursor: bool = False) -> Schema:
    metadata: Schema = _ref("Metadata")
    if next_cursor:
        metadata = {
            "allOf": [
                _ref("Metadata"),
                _object(
                    {
                        "next_cursor": {
                            **_nullable(_STRING),
                            "description": "Pass as ``cursor`` for the next page; null on"
                            " the last one.",
                        },
                        "scanned": {
                            "type": "integer",
                            "minimum": 0,
                            "description": "With ``q``: how many runs were looked at.",
                        },
                        "stopped_early": {
                            "type": "boolean",
                            "description": "With ``q``: the search stopped at its bound"
                            " before filling the page; ``next_cursor`` goes on from there.",
                        },
                    },
                    optional=("scanned", "stopped_early"),
                ),
            ]
        }
    return _object({"data": data, "metadata": metadata})


def _json(schema: Schema, description: str, headers: Schema | None = None) -> Schema:
    response: Schema = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    if headers:
        response["headers"] = headers
    return response


def _errors(*statuses: int, schema: str = "Error") -> dict[str, Schema]:
    what = {
        400: "Invalid input; the body says what is wrong.",
        401: "A valid signing key is required (production mode).",
        404: "Not found.",
        409: "Conflict with the resource's state.",
        413: "The request body is too large.",
        429: "Too many failed authentications from this address; retry after the time given.",
        503: "The database is unavailable; retry later.",
    }
    return {str(s): _json(_ref(schema), what[s]) for s in statuses}


def _optional_body(properties: dict[str, Schema]) -> Schema:
    """A request body that may be empty, or an object of only these optional fields."""
    schema = {"type": "object", "properties": properties, "additionalProperties": False}
    return {"required": False, "content": {"application/json": {"schema": schema}}}


def _path_id(name: str, what: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": f"The {what}'s id (a ULID, either case).",
        "schema": {"type": "string", "pattern": ULID},
    }


def _query(name: str, schema: Schema, description: str, **extra: Any) -> Schema:
    return {"name": name, "in": "query", "description": description, "schema": schema, **extra}


_CURSOR_HEADER = {
    "x-next-cursor": {
        "description": "Present when a further page may exist: pass it as ``cursor``.",
        "schema": _STRING,
    }
}
_SIGNING_KEY: list[dict[str, list[str]]] = [{"signingKey": []}]


def _list_runs_parameters() -> list[Schema]:
    text = {"type": "string", "minLength": 1, "maxLength": MAX_TEXT}
    return [
        _query(
            "status",
            {
                "type": "array",
                "items": {
                    "type": "string",
                    "enum": [s.value for s in RunStatus] + [h.value for h in RunHold],
                },
                "maxItems": len(RunStatus) + len(RunHold),
            },
            "Only runs in one of these statuses (repeat the parameter for several)."
            " ``Sleeping`` and ``Waiting`` narrow ``Running``: runs whose only open work is"
            " a sleep, or a wait for an event, an invoked run or a signal.",
            style="form",
            explode=True,
        ),
        _query(
            "function",
            {"type": "array", "items": text, "maxItems": MAX_FUNCTIONS},
            "Only runs of one of these functions, by slug (``<app>-<function id>``).",
            style="form",
            explode=True,
        ),
        _query("app", text, "Only runs of this app's functions (the app's name)."),
        _query("from", _TIME, "Only runs created at or after this time (RFC 3339)."),
        _query("until", _TIME, "Only runs created before this time (RFC 3339)."),
        _query(
            "event_id",
            {"type": "string", "pattern": ULID},
            "Only runs triggered by this event (its internal id).",
        ),
        _query("event_name", text, "Only runs whose triggering event has this name."),
        _query(
            "q",
            {"type": "string", "minLength": 1, "maxLength": MAX_EXPRESSION},
            "A CEL expression over ``event`` (the run's first triggering event) and"
            " ``output`` (null until the run completes), such as ``event.data.customer =="
            ' "acme" && output.total > 10``: only runs it is true for. The server looks at'
            f" no more than {SCAN_LIMIT} runs per request: ``metadata.scanned`` says how"
            " many, ``metadata.stopped_early`` is true when it stopped there before filling"
            " the page, and ``next_cursor`` continues the search from where it stopped"
            " (a page may hold fewer runs than ``limit``, even none, and still have one).",
        ),
        _query(
            "limit",
            {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
            "Page size.",
        ),
        _query(
            "cursor",
            {"type": "string", "pattern": CURSOR_PATTERN},
            "``metadata.next_cursor`` of the previous page.",
        ),
    ]


def _paths(*, dev: bool) -> dict[str, Schema]:
    run_id = _path_id("run_id", "run")
    app_name: Schema = {"name": "app_name", "in": "path", "required": True, "schema": _STRING}
    event_id = _path_id("event_id", "event")
    paths: dict[str, Schema] = {
        "/health": {
            "get": {
                "tags": ["server"],
                "summary": "Liveness",
                "operationId": "health",
                "security": [],
                "responses": {
                    "200": _json(
                        _object({"status": {"type": "string", "const": "ok"}}), "The server is up."
                    )
                },
            }
        },
        "/v1/live": {
            "get": {
                "tags": ["server"],
                "summary": "The live feed (server-sent events)",
                "description": "A stream of ``event: change`` messages whose data is"
                ' ``{"topics": [...]}``: what changed since the previous message, among'
                " ``runs``, ``events`` and ``apps``; a comment line every 15 s while quiet."
                " It ends when the server stops; clients reconnect.",
                "operationId": "liveFeed",
                "responses": {
                    "200": {
                        "description": "The stream.",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **_errors(401, 429),
                },
            }
        },
        "/metrics": {
            "get": {
                "tags": ["server"],
                "summary": "Prometheus metrics",
                "description": "The Prometheus text exposition format: this node's counters"
                " (runs started and finished, steps, app call latency) and gauges read from the"
                " store (due jobs, the oldest due job's age, pauses by kind).",
                "operationId": "metrics",
                "responses": {
                    "200": {
                        "description": "The metrics.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_errors(401, 429),
                },
            }
        },
        "/e/{key}": {
            "post": {
                "tags": ["events"],
                "summary": "Send events",
                "description": "One event object or an array of them. The events before the"
                " first invalid one are kept; the error names their ids.",
                "operationId": "sendEvents",
                "security": [],
                "parameters": [
                    {
                        "name": "key",
                        "in": "path",
                        "required": True,
                        "description": "An event key (any value in dev mode).",
                        "schema": _STRING,
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "oneOf": [
                                    {"$ref": "#/components/schemas/NewEvent"},
                                    {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/NewEvent"},
                                    },
                                ]
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json(
                        _object(
                            {
                                "ids": {"type": "array", "items": _STRING},
                                "status": {"type": "integer", "const": 200},
                            }
                        ),
                        "Stored; one id per event, in order.",
                    ),
                    **_errors(400, 401, 413, 503, schema="EventSendError"),
                },
            }
        },
        "/fn/register": {
            "post": {
                "tags": ["sdk"],
                "summary": "Sync an app (the SDK calls this)",
                "description": "The Inngest SDK registration body: ``url``, ``appName``,"
                " ``functions`` and more; see the Inngest SDK specification.",
                "operationId": "registerApp",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "responses": {
                    "200": _json(
                        _object(
                            {
                                "ok": {"type": "boolean", "const": True},
                                "modified": {"type": "boolean"},
                                "app_id": _STRING,
                                "sync_id": _STRING,
                            }
                        ),
                        "Synced.",
                    ),
                    **_errors(400, 401, 413, 503),
                },
            }
        },
        "/v1/events": {
            "get": {
                "tags": ["events"],
                "summary": "List events, newest first",
                "operationId": "listEvents",
                "parameters": [
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 20},
                        "Page size.",
                    ),
                    _query(
                        "cursor",
                        {"type": "string", "pattern": EVENT_CURSOR},
                        "The ``x-next-cursor`` of the previous page.",
                    ),
                    _query("name", _STRING, "Only events of this name."),
                    _query("received_after", _TIME, "Only events received at or after this."),
                    _query("received_before", _TIME, "Only events received at or before this."),
                ],
                "responses": {
                    "200": _json(
                        _envelope({"type": "array", "items": _ref("Event")}),
                        "A page of events.",
                        _CURSOR_HEADER,
                    ),
                    **_errors(400, 401, 503),
                },
            }
        },
        "/v1/events/{event_id}": {
            "get": {
                "tags": ["events"],
                "summary": "One event",
                "operationId": "getEvent",
                "parameters": [event_id],
                "responses": {
                    "200": _json(_envelope(_ref("Event")), "The event."),
                    **_errors(400, 401, 404, 503),
                },
            }
        },
        "/v1/events/{event_id}/runs": {
            "get": {
                "tags": ["events", "runs"],
                "summary": "The runs an event started",
                "operationId": "getEventRuns",
                "parameters": [event_id],
                "responses": {
                    "200": _json(_envelope({"type": "array", "items": _ref("Run")}), "Its runs."),
                    **_errors(400, 401, 404, 503),
                },
            }
        },
        "/v1/events/{event_id}/reasons": {
            "get": {
                "tags": ["events"],
                "summary": "Why an event started no run",
                "description": "One reason per function the event concerns (or one for the"
                " event as a whole: no function is triggered by its name, a repeated copy);"
                " an empty list when the event started runs. Worked out from what the server"
                " stores and the functions synced now.",
                "operationId": "getEventReasons",
                "parameters": [event_id],
                "responses": {
                    "200": _json(
                        _envelope(
                            {
                                "type": "array",
                                "items": _object(
                                    {
                                        "function": _nullable(_STRING),
                                        "reason": _STRING,
                                        "run_id": _nullable({"type": "string", "pattern": ULID}),
                                    }
                                ),
                            }
                        ),
                        "The reasons.",
                    ),
                    **_errors(400, 401, 404, 503),
                },
            }
        },
        "/v1/runs": {
            "get": {
                "tags": ["runs"],
                "summary": "List runs, newest first",
                "description": "Filters combine (all must hold). Pages are chained by"
                " ``metadata.next_cursor``; runs created while paging never shift the pages"
                " that follow.",
                "operationId": "listRuns",
                "parameters": _list_runs_parameters(),
                "responses": {
                    "200": _json(
                        _envelope({"type": "array", "items": _ref("Run")}, next_cursor=True),
                        "A page of runs.",
                        _CURSOR_HEADER,
                    ),
                    **_errors(400, 401, 503),
                },
            }
        },
        "/v1/runs/{run_id}": {
            "get": {
                "tags": ["runs"],
                "summary": "One run",
                "operationId": "getRun",
                "parameters": [run_id],
                "responses": {
                    "200": _json(_envelope(_ref("Run")), "The run."),
                    **_errors(400, 401, 404, 503),
                },
            },
            "delete": {
                "tags": ["runs"],
                "summary": "Cancel a run",
                "operationId": "cancelRun",
                "parameters": [run_id],
                "responses": {
                    "200": _json(
                        _envelope(
                            _object(
                                {
                                    "run_id": _STRING,
                                    "status": {
                                        "type": "string",
                                        "enum": [s.value for s in RunStatus],
                                    },
                                }
                            )
                        ),
                        "Cancelled (or it had already been cancelled or skipped).",
                    ),
                    **_errors(400, 401, 404, 409, 503),
                },
            },
        },
        "/v1/runs/{run_id}/history": {
            "get": {
                "tags": ["runs"],
                "summary": "What happened in a run, oldest first",
                "operationId": "getRunHistory",
                "parameters": [run_id],
                "responses": {
                    "200": _json(
                        _envelope({"type": "array", "items": _ref("HistoryEntry")}), "History."
                    ),
                    **_errors(400, 401, 404, 503),
                },
            }
        },
        "/v1/runs/{run_id}/metadata": {
            "post": {
                "tags": ["runs"],
                "summary": "Set metadata on a run or one of its steps",
                "description": "Each update sets the values of its kind on the target (a"
                " later update of a kind replaces the earlier one), whether the run ended or"
                " not; each becomes a ``Metadata`` entry of the run's history. The target:"
                " no ``step_id`` is the run; a ``step_id`` (``step_index`` for its n-th use)"
                " is that step, which the run must have had (else nothing is written, and"
                " the answer says ``written: 0``); with ``step_attempt`` and ``span_id``, one"
                " span of it. Kinds: ``userland.<name>``, any name of yours, or the server's"
                f" {', '.join(sorted(INNGEST_KINDS))}. An ``inngest.ai`` update without"
                " ``estimated_cost`` gets one, from the model's list price and the tokens.",
                "operationId": "updateRunMetadata",
                "parameters": [run_id],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("MetadataRequest")}},
                },
                "responses": {
                    "200": _json(
                        _envelope(
                            _object(
                                {"run_id": _STRING, "written": {"type": "integer", "minimum": 0}}
                            )
                        ),
                        "Written (or, for a step the run does not have, not).",
                    ),
                    **_errors(400, 401, 404, 413, 503),
                },
            }
        },
        "/v1/runs/{run_id}/rerun": {
            "post": {
                "tags": ["runs"],
                "summary": "Start a new run of the same function with the same events",
                "description": "With ``from_step``, the new run keeps the results of the"
                " steps the original completed before that step, and runs it and what follows.",
                "operationId": "rerunRun",
                "parameters": [run_id],
                "requestBody": _optional_body({"from_step": {"type": "string", "minLength": 1}}),
                "responses": {
                    "201": _json(_envelope(_ref("Run")), "The new run."),
                    **_errors(400, 401, 404, 409, 413, 503),
                },
            }
        },
        "/v1/cancellations": {
            "get": {
                "tags": ["runs"],
                "summary": "List bulk cancellations",
                "operationId": "listCancellations",
                "responses": {
                    "200": _json(
                        _envelope({"type": "array", "items": _ref("Cancellation")}),
                        "Every bulk cancellation still stored.",
                    ),
                    **_errors(401, 503),
                },
            },
            "post": {
                "tags": ["runs"],
                "summary": "Cancel a function's runs started in a window",
                "operationId": "createCancellation",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("NewCancellation")}},
                },
                "responses": {
                    "200": _json(_envelope(_ref("Cancellation")), "Created."),
                    **_errors(400, 401, 404, 413, 503),
                },
            },
        },
        "/v1/cancellations/preview": {
            "post": {
                "tags": ["runs"],
                "summary": "How many runs a bulk cancellation would cancel now",
                "description": "The same body as creating one; nothing is created. Counted by"
                " the rule the cancellation applies, so runs that start or end in between"
                " change the number.",
                "operationId": "previewCancellation",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("NewCancellation")}},
                },
                "responses": {
                    "200": _json(
                        _envelope(
                            _object(
                                {
                                    "count": {"type": "integer", "minimum": 0},
                                    "runs": {
                                        "type": "array",
                                        "items": _STRING,
                                        "description": "The first few run ids, in id order.",
                                    },
                                }
                            )
                        ),
                        "The count and the first runs.",
                    ),
                    **_errors(400, 401, 404, 413, 503),
                },
            }
        },
        "/v1/cancellations/{cancellation_id}": {
            "delete": {
                "tags": ["runs"],
                "summary": "Delete a bulk cancellation",
                "operationId": "deleteCancellation",
                "parameters": [
                    {
                        "name": "cancellation_id",
                        "in": "path",
                        "required": True,
                        "schema": _STRING,
                    }
                ],
                "responses": {
                    "200": _json(
                        _envelope(
                            _object({"id": _STRING, "deleted": {"type": "boolean", "const": True}})
                        ),
                        "Deleted.",
                    ),
                    **_errors(401, 404, 503),
                },
            }
        },
        "/v1/signals": {
            "post": {
                "tags": ["runs"],
                "summary": "Resume the run waiting for a signal",
                "operationId": "sendSignal",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("Signal")}},
                },
                "responses": {
                    "200": _json(_envelope(_object({"run_id": _STRING})), "The resumed run."),
                    **_errors(400, 401, 404, 413, 503),
                },
            }
        },
        "/v1/checkpoint/{run_id}/async": {
            "post": {
                "tags": ["sdk"],
                "summary": "Save steps while a call is open (the JS SDK calls this)",
                "operationId": "checkpointAsync",
                "parameters": [run_id],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": AsyncCheckpointBody.model_json_schema()}
                    },
                },
                "responses": {
                    "200": _json(
                        _object({"run_id": _STRING, "saved": {"type": "boolean", "const": True}}),
                        "Saved.",
                    ),
                    **_errors(400, 401, 404, 409, 413, 503),
                },
            }
        },
        "/v1/apps": {
            "get": {
                "tags": ["apps"],
                "summary": "Every synced app with its functions",
                "operationId": "listApps",
                "responses": {
                    "200": _json(_envelope({"type": "array", "items": _ref("App")}), "Apps."),
                    **_errors(401, 503),
                },
            },
            "post": {
                "tags": ["apps"],
                "summary": "Add an app by its URL: sync it now, and keep syncing it",
                "description": "The server asks the app to sync (a PUT to its URL, as for"
                " ``-u``) and keeps the URL among those it syncs, on every node and across"
                " restarts, even when this first attempt fails. In production the URL must"
                " pass the outbound guard (public addresses, or ``--outbound-allow``).",
                "operationId": "addApp",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("NewApp")}},
                },
                "responses": {
                    "201": _json(_envelope(_ref("App")), "The app, synced."),
                    **_errors(400, 401, 413, 503),
                    "502": _json(_ref("AppSyncError"), "The app did not sync; the body says why."),
                },
            },
        },
        "/v1/apps/{app_name}": {
            "get": {
                "tags": ["apps"],
                "summary": "An app, its functions and its last sync attempt",
                "operationId": "getApp",
                "parameters": [app_name],
                "responses": {
                    "200": _json(_envelope(_ref("App")), "The app."),
                    **_errors(401, 404, 503),
                },
            }
        },
        "/v1/apps/{app_name}/resync": {
            "post": {
                "tags": ["apps"],
                "summary": "Ask an app to sync again, now",
                "operationId": "resyncApp",
                "parameters": [app_name],
                "responses": {
                    "200": _json(_envelope(_ref("App")), "The app, as it synced."),
                    **_errors(401, 404, 503),
                    "502": _json(_ref("AppSyncError"), "The app did not sync; the body says why."),
                },
            }
        },
        "/v1/app-syncs": {
            "get": {
                "tags": ["apps"],
                "summary": "Every URL the server syncs, with its last attempt",
                "description": "Includes URLs no app has registered from yet (an app added"
                " by URL that is failing).",
                "operationId": "listAppSyncs",
                "responses": {
                    "200": _json(
                        _envelope({"type": "array", "items": _ref("AppSync")}), "Attempts."
                    ),
                    **_errors(401, 503),
                },
            }
        },
        "/v1/apps/{app_name}/functions": {
            "get": {
                "tags": ["apps"],
                "summary": "An app's functions",
                "operationId": "listAppFunctions",
                "parameters": [app_name],
                "responses": {
                    "200": _json(
                        _envelope({"type": "array", "items": _ref("Function")}), "Functions."
                    ),
                    **_errors(401, 404, 503),
                },
            }
        },
        **_function_paths(),
        **_endpoint_paths(),
        "/v0/runs/{run_id}/batch": {
            "get": {
                "tags": ["sdk"],
                "summary": "A run's triggering events, in wire form (the SDK reads it)",
                "operationId": "getRunBatch",
                "parameters": [run_id],
                "responses": {
                    "200": _json(
                        {"type": "array", "items": {"type": "object"}}, "The events, first first."
                    ),
                    **_errors(400, 401, 404, 503),
                },
            }
        },
        "/v0/runs/{run_id}/actions": {
            "get": {
                "tags": ["sdk"],
                "summary": "A run's memoized step results by step id (the SDK reads it)",
                "operationId": "getRunActions",
                "parameters": [run_id],
                "responses": {
                    "200": _json(
                        {"type": "object", "additionalProperties": _ANY}, "Step id -> memo."
                    ),
                    **_errors(400, 401, 404, 503),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "tags": ["server"],
                "summary": "This document",
                "operationId": "openapi",
                "security": [],
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1.")},
            }
        },
        "/docs": {
            "get": {
                "tags": ["server"],
                "summary": "This document in a browser (Swagger UI, served locally)",
                "operationId": "docs",
                "security": [],
                "responses": {
                    "200": {
                        "description": "An HTML page.",
                        "content": {"text/html": {"schema": _STRING}},
                    }
                },
            }
        },
    }
    if dev:
        paths["/dev"] = {
            "get": {
                "tags": ["server"],
                "summary": "What the dev server runs (dev mode only)",
                "description": "The shape the Inngest dev server answers, which the official"
                " SDKs' test helpers read.",
                "operationId": "devInfo",
                "security": [],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["version", "functions"],
                            "properties": {
                                "version": _STRING,
                                "functions": {"type": "array", "items": {"type": "object"}},
                            },
                        },
                        "Dev server information.",
                    )
                },
            }
        }
    return paths


# PostgreSQL cannot store a NUL character in text: the server refuses one in these fields.
_NO_NUL: Schema = {"type": "string", "pattern": "^[^\\u0000]*$"}

_SESSION_ID: Schema = {
    "oneOf": [{"type": "string", "minLength": 1, "maxLength": 128}, {"type": "integer"}]
}
_SESSION_KEYS: Schema = {"minLength": 1, "maxLength": 32}
_SESSIONS: Schema = {
    "type": "object",
    "maxProperties": 5,
    "propertyNames": _SESSION_KEYS,
    "additionalProperties": {"oneOf": [_SESSION_ID, {"type": "null"}]},
}
_PROPAGATED_SESSIONS: Schema = {
    "type": "object",
    "propertyNames": _SESSION_KEYS,
    "additionalProperties": _SESSION_ID,
}

_NEW_EVENT: Schema = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {
            "type": "string",
            "maxLength": MAX_EVENT_NAME_LENGTH,
            # Not blank, not one of the server's own names, no NUL character.
            "pattern": f"^(?!{RESERVED_PREFIX})[^\\u0000]*[^\\s\\u0000][^\\u0000]*$",
        },
        "data": _nullable({"type": "object"}),
        "user": _nullable({"type": "object"}),
        "id": {
            **_nullable(_NO_NUL),
            "description": "Idempotency: one run per id a day.",
        },
        "ts": {
            "oneOf": [
                {"type": "number", "minimum": MIN_EVENT_TS, "maximum": MAX_EVENT_TS},
                {"const": 0},
                {"type": "null"},
            ],
            "description": "Milliseconds since the epoch, between 1980 and 2100; 0 or absent: now.",
        },
        "v": _nullable(_NO_NUL),
        "meta": {
            **_nullable(
                {
                    "type": "object",
                    "properties": {
                        "sessions": _nullable(_SESSIONS),
                        "propagated_sessions": _nullable(_PROPAGATED_SESSIONS),
                    },
                }
            ),
            "description": "``sessions``: up to 5 ids that group the runs this event leads"
            " to (a null id removes an inherited one, ``sessions: null`` all of them);"
            " ``propagated_sessions``: those the sending run had, filling the free places in"
            " byte order of their keys. The event is stored with the result as ``sessions``.",
        },
    },
}


_COUNT: Schema = {"type": "integer", "minimum": 0}
_FUNCTION_SCHEMAS: dict[str, Schema] = {
    "RunWindow": {
        "description": "A function's runs created in a window, counted by their status now"
        " in buckets (every bucket, oldest first), and the durations (created to ended) of"
        " those that ended, Completed or Failed: nearest-rank percentiles over the newest"
        " ``sampled`` of them.",
        **_object(
            {
                "from": _TIME,
                "until": _TIME,
                "bucket_seconds": {"type": "integer", "enum": [60, 3600]},
                "buckets": {
                    "type": "array",
                    "items": _object(
                        {
                            "start": _TIME,
                            "counts": _object({s.value: _COUNT for s in RunStatus}),
                        }
                    ),
                },
                "runs": _COUNT,
                "duration_ms": _object(
                    {
                        "ended": _COUNT,
                        "sampled": _COUNT,
                        "p50": _nullable(_COUNT),
                        "p95": _nullable(_COUNT),
                    }
                ),
            }
        ),
    },
    "FunctionMetrics": _object(
        {
            "function_id": _STRING,
            "last_hour": {**_ref("RunWindow"), "description": "By minute."},
            "last_day": {**_ref("RunWindow"), "description": "By hour."},
        }
    ),
}


def _function_paths() -> dict[str, Schema]:
    slug = {
        "name": "slug",
        "in": "path",
        "required": True,
        "description": "The function's full id as synced (``<app>-<fn>``).",
        "schema": {"type": "string", "minLength": 1},
    }
    return {
        "/v1/functions/{slug}/metrics": {
            "get": {
                "tags": ["functions"],
                "summary": "A function's runs by status per minute and per hour, with p50/p95"
                " durations, over the last hour and the last day",
                "operationId": "getFunctionMetrics",
                "parameters": [slug],
                "responses": {
                    "200": _json(_envelope(_ref("FunctionMetrics")), "Metrics."),
                    **_errors(401, 404, 503),
                },
            }
        },
        "/v1/functions/{slug}/invoke": {
            "post": {
                "tags": ["functions"],
                "summary": "Start a run of one function with the given data",
                "description": "The run receives an ``inngest/function.invoked`` event with"
                " ``data``; the function's flow control applies as to any run.",
                "operationId": "invokeFunction",
                "parameters": [slug],
                "requestBody": _optional_body({"data": {"type": "object"}}),
                "responses": {
                    "201": _json(_envelope(_ref("Run")), "The new run."),
                    "202": _json(
                        _envelope(
                            _object(
                                {
                                    "event_id": _STRING,
                                    "run_id": {"type": "null"},
                                    "held": {
                                        "enum": ["debounce", "batch", "idempotency"],
                                        "description": "The function's debounce or batch"
                                        " holds the event (a run starts later), or its"
                                        " idempotency key already started a run.",
                                    },
                                }
                            )
                        ),
                        "Stored, but no run started now.",
                    ),
                    **_errors(400, 401, 404, 409, 413, 503),
                },
            }
        },
    }


def _endpoint_paths() -> dict[str, Schema]:
    """Durable endpoints: what an SDK posts from inside an HTTP handler, and what the
    handler's client reads with the tokens it was given."""
    run_id = _path_id("run_id", "run")
    token = _query("token", _STRING, "The token the run's start answered with.", required=True)
    response: Schema = {
        "description": "The handler's response as it gave it (status, headers, body);"
        " a run that had no such response: its output as JSON. If the run did not end"
        ' within 5 minutes: ``{"status": "running", "message"}``.',
        "content": {"*/*": {"schema": _ANY}},
    }
    output: Schema = {
        "tags": ["sdk"],
        "summary": "Wait for a durable endpoint's run to end and get its response",
        "description": "Authorised by the token alone (the client holds no key).",
        "security": [],
        "parameters": [run_id, token],
        "responses": {
            "200": response,
            **_errors(400, 401, 404, 503),
            "500": _json(_ref("Error"), "The run failed or was cancelled: ``output`` says why."),
        },
    }
    return {
        "/v1/checkpoint": {
            "post": {
                "tags": ["sdk"],
                "summary": "Start a durable endpoint's run with its first ops (the SDK calls"
                " this from inside an HTTP handler)",
                "operationId": "startEndpointRun",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": NewRunBody.model_json_schema()}},
                },
                "responses": {
                    "200": _json(
                        _object(
                            {
                                "data": _object(
                                    {
                                        "fn_id": _STRING,
                                        "app_id": _STRING,
                                        "run_id": _STRING,
                                        "token": _STRING,
                                        "realtime_token": _STRING,
                                    }
                                )
                            }
                        ),
                        "Started (or started before by this same request).",
                    ),
                    **_errors(400, 401, 409, 413, 503),
                },
            }
        },
        "/v1/checkpoint/{run_id}/steps": {
            "post": {
                "tags": ["sdk"],
                "summary": "Record a durable endpoint's next ops",
                "operationId": "checkpointEndpointSteps",
                "parameters": [run_id],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": StepsBody.model_json_schema()}},
                },
                "responses": {
                    "200": _json(
                        _object({"run_id": _STRING, "saved": {"type": "boolean"}}),
                        "Saved; ``saved`` is false if the run had ended.",
                    ),
                    **_errors(400, 401, 404, 409, 413, 503),
                },
            }
        },
        "/v1/checkpoint/{run_id}/output": {"get": {**output, "operationId": "endpointOutput"}},
        "/v1/http/runs/{run_id}/output": {"get": {**output, "operationId": "endpointHttpOutput"}},
        "/v1/realtime/publish/tee": {
            "post": {
                "tags": ["sdk"],
                "summary": "Relay a durable endpoint's stream (server-sent-event frames)",
                "operationId": "teeEndpointStream",
                "parameters": [
                    _query(
                        "channel",
                        {"type": "string", "pattern": ULID},
                        "The run.",
                        required=True,
                    )
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/octet-stream": {"schema": {"type": "string"}}},
                },
                "responses": {
                    "200": _json(
                        _object({"run_id": _STRING, "relayed": {"type": "integer"}}),
                        "Relayed and kept.",
                    ),
                    **_errors(400, 401, 404, 413, 503),
                },
            }
        },
        "/v1/realtime/sse": {
            "get": {
                "tags": ["sdk"],
                "summary": "A durable endpoint's stream, from its first byte",
                "description": "Authorised by the run's realtime token alone. Ends after"
                " ``inngest.response``, or once the run ended and nothing came for 10 s;"
                " a comment line every 15 s while quiet.",
                "operationId": "endpointStream",
                "security": [],
                "parameters": [
                    _query("token", _STRING, "The run's realtime token.", required=True)
                ],
                "responses": {
                    "200": {
                        "description": "The stream.",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **_errors(401, 503),
                },
            }
        },
    }


def build_document(*, dev: bool) -> dict[str, Any]:
    """The document for a server in dev mode (no auth, ``/dev``) or in production."""
    security = [] if dev else _SIGNING_KEY
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Stepwise server API",
            "version": __version__,
            "description": "Event ingest, the REST API (``/v1``) and the state API the SDKs"
            " read (``/v0``). Errors are JSON: ``{error, code, status}``.",
        },
        "security": security,
        "paths": _paths(dev=dev),
        "components": {
            "schemas": {**SCHEMAS, **_FUNCTION_SCHEMAS, "NewEvent": _NEW_EVENT},
            "securitySchemes": {
                "signingKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "``signkey-<env>-<sha256 of the key's hex>``, as the SDKs"
                    " send it; not needed in dev mode.",
                }
            },
        },
    }

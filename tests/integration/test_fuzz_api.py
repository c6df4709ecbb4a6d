"""Property-based fuzzing of the server's HTTP API against one real server process.

Properties, whatever the input:
* the server never answers 5xx;
* every 4xx is a JSON body ``{"code": str, "error": str, "status": <the HTTP status>}``;
* ``POST /e/{key}`` answers 200 exactly when every event of the request is valid, and a
  refused request stores no event;
* afterwards the server still answers ``/health`` and its log holds no traceback.

Inputs that once got a 500 are pinned as regression tests at the end of this file,
against a second server so that the traceback check above stays meaningful.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stepwise.protocol import is_ulid, new_ulid
from support.harness import ServerProcess

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

MIN_TS, MAX_TS = 315532800000, 4102444800000  # event timestamps the API accepts (1980..2100)
MAX_NAME = 512
EVENT_NAMES = ["fuzz/a", "fuzz/b", "fuzz/order"]
APP_URL = "http://127.0.0.1:9/api/inngest"  # nothing listens there: calls fail at once


@pytest.fixture(scope="module")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("fuzz-api"), sdk_urls=[])
    proc.start_and_wait()
    yield proc
    proc.close()


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    # One connection per request: if a request did crash the server's handler, the next
    # example must not fail on a connection the server dropped.
    with httpx.Client(base_url=server.url, timeout=10, headers={"connection": "close"}) as client:
        yield client


LISTENER_EXPRESSIONS = [
    None,
    "event.data.amount > 10",
    "event.data.x == 'a'",
    "size(event.data) > 0",
    "event.data.missing.deep == 1",
    "event.user.id == event.data.id",
    "event.data.amount + 1 > 2",
]


@pytest.fixture(scope="module")
def listeners(http: httpx.Client) -> list[str]:
    """Functions triggered by the fuzzed events, some through expressions that may fail on
    arbitrary data. Their app is unreachable and they have no retries, so their runs fail
    at once (an ``inngest/function.failed`` listener reacts to one of them)."""

    def fn(slug: str, triggers: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": slug,
            "triggers": triggers,
            "steps": {
                "step": {"id": "step", "runtime": {"url": APP_URL}, "retries": {"attempts": 0}}
            },
        }

    functions = [
        fn(f"fuzz-listen-{i}", [{"event": name, "expression": expr} if expr else {"event": name}])
        for i, (name, expr) in enumerate(
            (name, expr) for name in [*EVENT_NAMES, "fuzz/*"] for expr in LISTENER_EXPRESSIONS
        )
    ]
    functions.append(
        fn(
            "fuzz-on-failure",
            [
                {
                    "event": "inngest/function.failed",
                    "expression": "event.data.function_id == 'fuzz-listen-0'",
                }
            ],
        )
    )
    body = {"url": APP_URL, "appName": "fuzz-listeners", "functions": functions}
    response = http.post("/fn/register", content=json.dumps(body))
    assert response.status_code == 200, response.text
    return [f["id"] for f in functions]


# ---- strategies -------------------------------------------------------------------

huge_ints = st.sampled_from([2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**30, -(10**40)])
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    huge_ints,
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.text(max_size=10), children, max_size=5),
    ),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(max_size=10), json_values, max_size=5)


def mostly(valid: st.SearchStrategy[Any], wrong: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``valid`` about seven times in eight, else ``wrong``: near-valid input, not noise."""
    # (``one_of(valid, valid, ...)`` would not do: equal branches are merged.)
    return st.integers(0, 7).flatmap(lambda n: wrong if n == 0 else valid)


# Non-finite floats exist in Python but not in JSON: sent, they make the body invalid.
non_finite = st.sampled_from([float("nan"), float("inf"), float("-inf")])
json_with_non_finite = st.recursive(
    st.one_of(json_scalars, non_finite),
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=4),
        st.dictionaries(st.text(max_size=5), children, min_size=1, max_size=4),
    ),
    max_leaves=10,
).filter(lambda v: "NaN" in json.dumps(v) or "Infinity" in json.dumps(v))

event_names = st.one_of(
    st.sampled_from(
        [
            *EVENT_NAMES,
            "inngest/function.finished",
            "inngest/anything",
            "",
            "   ",
            "x" * MAX_NAME,
            "x" * (MAX_NAME + 1),
            "ünïcødé/évent",
            "nul\x00byte",
        ]
    ),
    st.text(max_size=30),
)
timestamps = st.one_of(
    st.none(),
    st.integers(min_value=MIN_TS, max_value=MAX_TS),
    st.sampled_from([0, 0.0, -0.0, MIN_TS - 1, MIN_TS, MAX_TS, MAX_TS + 1, 1, -1, 1.5e12]),
    st.integers(min_value=MIN_TS, max_value=MAX_TS),
    st.floats(min_value=MIN_TS, max_value=MAX_TS),
    json_scalars,
)
event_fields = {
    "data": mostly(json_objects, json_values),
    "user": mostly(json_objects, json_values),
    "id": mostly(st.text(max_size=20), json_scalars),
    "ts": timestamps,
    "v": mostly(st.text(max_size=10), json_scalars),
    "extra": json_values,
}
near_valid_event = st.one_of(
    st.fixed_dictionaries(
        {"name": mostly(st.sampled_from(EVENT_NAMES), event_names)}, optional=event_fields
    ),
    st.fixed_dictionaries({"name": mostly(event_names, json_values)}, optional=event_fields),
    st.fixed_dictionaries({}, optional={"name": json_values, **event_fields}),
)
event_bodies = st.one_of(
    near_valid_event,
    st.lists(near_valid_event, max_size=5),
    st.lists(st.one_of(near_valid_event, json_values), max_size=4),
    json_values,
)

app_urls = st.one_of(
    st.sampled_from(
        [
            "http://127.0.0.1:9/api/inngest",
            "http://127.0.0.1:9/api/inngest?fnId=x&stepId=old",
            "https://127.0.0.1:9/x",
            "ws://127.0.0.1:9/x",
            "http://127.0.0.1:abc/",
            "http://127.0.0.1:99999/",
            "ftp://127.0.0.1/x",
            "127.0.0.1:9/x",
            "http://",
            "not a url",
            "",
        ]
    ),
    json_scalars,
)
crons = st.sampled_from(
    [
        "* * * * *",
        "*/5 * * * *",
        "0 9 * * *",
        "TZ=Europe/Paris 0 9 * * *",
        "CRON_TZ=UTC 0 0 * * *",
        "@daily",
        "0 0 29 2 *",
        "bogus",
        "* * *",
        "61 * * * *",
        "TZ=UTC",
        "",
    ]
)
expressions = st.one_of(
    st.sampled_from(
        [
            "event.data.amount > 10",
            "event.data.x == 'a'",
            "size(event.data) > 0",
            "event.name == 'fuzz/a'",
            "event.data.missing.deep == 1",
            "event.data.amount + 1 > 2",
            "has(event.data.x)",
            "1 / 0 == 1",
            "event.user.id == event.data.id",
            "(",
            "event.data.",
            "",
        ]
    ),
    st.text(max_size=20),
    json_scalars,
)
triggers = mostly(
    st.one_of(
        st.fixed_dictionaries(
            {"event": mostly(st.sampled_from([*EVENT_NAMES, "fuzz/*"]), json_scalars)},
            optional={"expression": expressions},
        ),
        st.fixed_dictionaries({"cron": mostly(crons, json_scalars)}),
        st.fixed_dictionaries(
            {},
            optional={
                "event": json_scalars,
                "expression": expressions,
                "cron": json_scalars,
                "jitter": json_scalars,
            },
        ),
    ),
    json_values,
)
steps = mostly(
    st.fixed_dictionaries(
        {
            "step": mostly(
                st.fixed_dictionaries(
                    {
                        "runtime": mostly(
                            st.fixed_dictionaries(
                                {"url": mostly(st.just(APP_URL), app_urls)},
                                optional={"type": st.just("http")},
                            ),
                            json_values,
                        ),
                    },
                    optional={
                        "id": st.one_of(st.just("step"), json_scalars),
                        "name": json_scalars,
                        "retries": st.one_of(
                            st.fixed_dictionaries(
                                {},
                                optional={"attempts": st.one_of(st.integers(-5, 30), json_scalars)},
                            ),
                            json_values,
                        ),
                    },
                ),
                json_values,
            )
        }
    ),
    json_values,
)
near_valid_function = mostly(
    st.fixed_dictionaries(
        {
            "id": mostly(st.sampled_from(["fuzz-fn", "fuzz-other", "fuzz-3"]), json_scalars),
            "steps": steps,
        },
        optional={
            "name": mostly(st.text(max_size=10), json_values),
            "triggers": mostly(st.lists(triggers, max_size=3), json_values),
            "retries": st.one_of(st.integers(-5, 30), json_scalars),
            "concurrency": json_values,
        },
    ),
    json_values,
)
register_fields = {
    "sdk": json_scalars,
    "framework": json_scalars,
    "deployType": json_scalars,
    "v": json_scalars,
}
register_bodies = mostly(
    st.fixed_dictionaries(
        {
            "url": mostly(st.just(APP_URL), app_urls),
            "appName": mostly(st.sampled_from(["fuzz-app", "fuzz-app-2"]), json_scalars),
            "functions": mostly(st.lists(near_valid_function, min_size=1, max_size=3), json_values),
        },
        optional=register_fields,
    ),
    st.one_of(
        st.fixed_dictionaries(
            {},
            optional={
                "url": app_urls,
                "appName": json_scalars,
                "functions": json_values,
                "app_name": json_scalars,
                **register_fields,
            },
        ),
        json_values,
    ),
)


def _truncated(doc: Any) -> st.SearchStrategy[bytes]:
    raw = json.dumps(doc).encode()
    return st.integers(0, len(raw) - 1).map(lambda n: raw[:n])


raw_bodies = st.one_of(
    st.binary(max_size=200),
    st.sampled_from(
        [
            b'{"name": "\xff\xfe"}',
            b'[{"name": "fuzz/a", "data": {"k": "\xc3\x28"}}]',
            b'{"name": "fuzz/a", "ts": 1e400}',
            b'{"name": "fuzz/a", "data": {"x": NaN}}',
            b'{"name": "fuzz/a", "data": {"x": Infinity}}',
            b'{"name": "fuzz/a", "data": {"x": "\\ud800"}}',
            b'{"name": "fuzz/a", "name": 5}',
            b"\xef\xbb\xbf[]",
            b"  \n\t ",
            b"[" * 2000 + b"]" * 2000,
        ]
    ),
    _truncated([{"name": "fuzz/a", "data": {"amount": 12, "s": "t"}, "ts": MIN_TS + 1}]),
    _truncated({"url": "http://127.0.0.1:9/api", "appName": "fuzz-app", "functions": []}),
    json_with_non_finite.map(lambda v: json.dumps(v).encode()),
)

path_segments = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="0123456789ABCDEFGHJKMNPQRSTVWXYZabcdefilou", min_size=26, max_size=26),
    st.sampled_from(["01ARZ3NDEKTSV4RRFFQ69G5FAV", "81ARZ3NDEKTSV4RRFFQ69G5FAV", "x" * 5000]),
)
query_values = st.one_of(
    st.integers(1, 100).map(str),
    st.sampled_from(["2024-01-01T00:00:00Z", "2030-01-01T00:00:00.123+02:00"]),
    st.text(max_size=30),
    st.integers().map(str),
    st.sampled_from(
        [
            "2024-01-01T00:00:00Z",
            "2024-01-01T00:00:00+23:59",
            "0001-01-01T00:00:00+23:59",
            "9999-12-31T23:59:59-23:59",
            "2024-13-45",
            "1e3",
            "0",
            "-1",
            "101",
            "100",
            "99999999999999999999999",
        ]
    ),
)


# Any key goes in dev mode; one that is not a single path segment is a different route.
event_keys = st.one_of(
    st.just("test-key"),
    st.text(st.characters(blacklist_characters="/\\"), min_size=1, max_size=20).filter(
        lambda k: k not in (".", "..")
    ),
)


# ---- oracles and checks -----------------------------------------------------------


def event_is_valid(raw: object) -> bool:
    """What the reference (§7.1) and this server accept as one event."""
    if not isinstance(raw, dict):
        return False
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        return False
    if name.startswith("inngest/"):
        return False
    for key in ("data", "user"):
        if raw.get(key) is not None and not isinstance(raw[key], dict):
            return False
    for key in ("id", "v"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            return False
    # No NUL character in the text fields (PostgreSQL cannot store one; refused everywhere).
    if any("\x00" in text for text in (name, raw.get("id"), raw.get("v")) if isinstance(text, str)):
        return False
    ts = raw.get("ts")
    if isinstance(ts, bool):  # JSON true/false is not a time, even though False == 0
        return False
    if ts is None or ts == 0:  # absent or zero: "now"
        return True
    if not isinstance(ts, int | float):
        return False
    return MIN_TS <= int(ts) <= MAX_TS


# Errors about the request as a whole: nothing in it is stored. Any other error is about
# one event, and the events before it are stored.
WHOLE_REQUEST_ERRORS = {
    "invalid_json",
    "empty_body",
    "json_too_deep",
    "payload_too_large",
    "too_many_events",
}


def check_response(response: httpx.Response) -> Any:
    """No 5xx; a 4xx is a JSON error body. Returns the parsed body of a JSON response."""
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/json"), response.text
        body = response.json()
        assert isinstance(body, dict), body
        assert isinstance(body.get("code"), str) and body["code"], body
        assert isinstance(body.get("error"), str) and body["error"], body
        assert body.get("status") == response.status_code, body
        return body
    if response.headers.get("content-type", "").startswith("application/json"):
        return response.json()
    return None


def user_event_ids(http: httpx.Client) -> list[str]:
    """The newest stored events' internal ids, leaving out the server's own events
    (runs of fuzz-registered functions end, asynchronously, with ``inngest/…`` events)."""
    response = http.get("/v1/events", params={"limit": 100})
    assert response.status_code == 200, response.text
    return [
        e["internal_id"] for e in response.json()["data"] if not e["name"].startswith("inngest/")
    ]


def post_events(http: httpx.Client, key: str, content: bytes) -> tuple[httpx.Response, Any]:
    before = set(user_event_ids(http))
    response = http.post(
        f"/e/{quote(key, safe='')}", content=content, headers={"content-type": "application/json"}
    )
    body = check_response(response)
    after = user_event_ids(http)
    new = [i for i in after if i not in before]
    if response.status_code >= 400:
        # Events before a batch's first bad one are stored, and the answer names exactly them.
        assert all(is_ulid(i) for i in body["ids"]), body
        assert sorted(new) == sorted(body["ids"]), f"stored {new}, answered {body['ids']}"
    else:
        assert response.status_code == 200
        assert body["status"] == 200
        assert all(is_ulid(i) for i in body["ids"]), body
        assert sorted(new) == sorted(body["ids"])
    return response, body


# ---- properties -------------------------------------------------------------------


@FUZZ
@given(body=register_bodies)
def test_fuzz_register(http: httpx.Client, body: Any) -> None:
    response = http.post(
        "/fn/register", content=json.dumps(body), headers={"content-type": "application/json"}
    )
    answer = check_response(response)
    if response.status_code == 200:
        assert answer["ok"] is True and isinstance(answer["app_id"], str)
        assert isinstance(answer["modified"], bool)


@FUZZ
@given(body=raw_bodies)
def test_fuzz_register_raw_bytes(http: httpx.Client, body: bytes) -> None:
    check_response(
        http.post("/fn/register", content=body, headers={"content-type": "application/json"})
    )


@FUZZ
@given(
    functions=st.lists(near_valid_function, min_size=1, max_size=3),
    app=st.sampled_from(["fuzz-fns", "fuzz-fns-2"]),
)
def test_fuzz_register_functions(http: httpx.Client, functions: list[Any], app: str) -> None:
    body = {"url": APP_URL, "appName": app, "sdk": "fuzz:v0", "functions": functions}
    response = http.post(
        "/fn/register", content=json.dumps(body), headers={"content-type": "application/json"}
    )
    check_response(response)
    if response.status_code == 200:
        slugs = {
            f["slug"] if "slug" in f else f["id"] for f in http.get("/dev").json()["functions"]
        }
        assert {f["id"] for f in functions} <= slugs


@FUZZ
@given(body=event_bodies, key=event_keys)
def test_fuzz_send_events(http: httpx.Client, listeners: list[str], body: Any, key: str) -> None:
    response, answer = post_events(http, key, json.dumps(body).encode())
    items = body if isinstance(body, list) else [body]
    valid_prefix = next((i for i, item in enumerate(items) if not event_is_valid(item)), len(items))
    all_valid = valid_prefix == len(items)
    assert (response.status_code == 200) == all_valid, (response.status_code, answer, body)
    if all_valid:
        assert len(answer["ids"]) == len(items)
    else:
        assert response.status_code in (400, 413), answer
        whole = answer["code"] in WHOLE_REQUEST_ERRORS
        assert len(answer["ids"]) == (0 if whole else valid_prefix), (answer, body)


@FUZZ
@given(body=raw_bodies)
def test_fuzz_send_raw_bytes(http: httpx.Client, body: bytes) -> None:
    response, answer = post_events(http, "test-key", body)
    try:
        parsed = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        parsed = None
        assert response.status_code == 400, (response.status_code, answer)
        return
    items = parsed if isinstance(parsed, list) else [parsed]
    if response.status_code == 200:
        assert all(event_is_valid(item) for item in items)


@FUZZ
@given(
    segment=path_segments,
    route=st.sampled_from(
        [
            "/v1/runs/{}",
            "/v1/runs/{}/history",
            "/v1/events/{}",
            "/v1/events/{}/runs",
            "/v0/runs/{}/batch",
            "/v0/runs/{}/actions",
        ]
    ),
    encode=st.booleans(),
)
def test_fuzz_lookups(http: httpx.Client, segment: str, route: str, encode: bool) -> None:
    path = route.format(quote(segment, safe="") if encode else segment)
    try:
        request = http.build_request("GET", path)
    except (httpx.InvalidURL, ValueError):
        return  # not a URL a client can send
    response = http.send(request)
    body = check_response(response)
    if response.status_code == 200:
        assert isinstance(body, dict | list)


@FUZZ
@given(
    run_id=st.one_of(st.builds(new_ulid), path_segments),
    body=st.one_of(
        raw_bodies,
        st.builds(
            lambda value: json.dumps(value).encode(),
            st.one_of(json_values, st.fixed_dictionaries({"from_step": json_values})),
        ),
    ),
)
def test_fuzz_rerun(http: httpx.Client, run_id: str, body: bytes) -> None:
    try:
        request = http.build_request(
            "POST", f"/v1/runs/{quote(run_id, safe='')}/rerun", content=body
        )
    except (httpx.InvalidURL, ValueError):
        return  # not a URL a client can send
    response = http.send(request)
    check_response(response)
    assert response.status_code != 201  # no such run, so nothing to rerun


@FUZZ
@given(
    params=st.dictionaries(
        st.sampled_from(["limit", "cursor", "received_after", "received_before", "name"]),
        query_values,
        max_size=5,
    )
)
def test_fuzz_list_events(http: httpx.Client, params: dict[str, str]) -> None:
    response = http.get("/v1/events", params=params)
    body = check_response(response)
    if response.status_code == 200:
        assert isinstance(body["data"], list)
        assert len(body["data"]) <= 100


def test_server_survived_the_fuzzing(
    server: ServerProcess, http: httpx.Client, listeners: list[str]
) -> None:
    assert http.get("/health").json() == {"status": "ok"}
    # Something valid still works end to end: the event is stored, its runs start and end.
    response, answer = post_events(
        http, "k", json.dumps({"name": "fuzz/a", "data": {"amount": 11}}).encode()
    )
    assert response.status_code == 200 and len(answer["ids"]) == 1
    run = server.wait_for_run(answer["ids"][0], timeout=20)
    assert run["status"] == "Failed"  # its app is unreachable and it has no retries
    slugs = {r["function_slug"] for r in server.runs(answer["ids"][0])}
    assert {"fuzz-listen-0", "fuzz-listen-1", "fuzz-listen-6"} <= slugs
    log = server.log()
    assert "Traceback" not in log, log[-5000:]


# ---- regressions: inputs that once got a 500 -----------------------------------------


@pytest.fixture(scope="module")
def bug_server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("fuzz-api-bugs"), sdk_urls=[])
    proc.start_and_wait()
    yield proc
    proc.close()


def _function(**fields: Any) -> dict[str, Any]:
    fn: dict[str, Any] = {
        "id": "bug-fn",
        "triggers": [{"event": "fuzz/a"}],
        "steps": {"step": {"id": "step", "runtime": {"url": "http://127.0.0.1:9/api"}}},
    }
    fn.update(fields)
    return fn


# Register bodies that once got a 500 (found by the properties above); now a clear 400.
REGISTER_REGRESSIONS = {
    "unknown-cron-zone": {"functions": [_function(triggers=[{"cron": "TZ=Nope/Zone * * * * *"}])]},
    "empty-cron-zone": {"functions": [_function(triggers=[{"cron": "TZ= 0 * * * *"}])]},
    "cron-never-fires": {"functions": [_function(triggers=[{"cron": "0 0 31 2 *"}])]},
    "bad-ipv6-app-url": {"url": "http://[abc/api", "functions": []},
    "bad-ipv6-function-url": {
        "functions": [_function(steps={"step": {"runtime": {"url": "http://[::1/api"}}})]
    },
    "deeply-nested-config": {"functions": [_function(meta=json.loads("[" * 300 + "]" * 300))]},
}


@pytest.mark.parametrize("case", sorted(REGISTER_REGRESSIONS))
def test_register_regressions_get_a_400(bug_server: ServerProcess, case: str) -> None:
    body = {"url": "http://127.0.0.1:9/api", "appName": f"bug-{case}", **REGISTER_REGRESSIONS[case]}
    with httpx.Client(base_url=bug_server.url, headers={"connection": "close"}) as client:
        response = client.post("/fn/register", content=json.dumps(body))
    assert response.status_code == 400, response.text
    check_response(response)


def test_deeply_nested_event_gets_a_400(bug_server: ServerProcess) -> None:
    body = b'{"name": "fuzz/a", "data": {"x": ' + b"[" * 300 + b"]" * 300 + b"}}"
    with httpx.Client(base_url=bug_server.url, headers={"connection": "close"}) as client:
        response = client.post("/e/key", content=body)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "json_too_deep"
    check_response(response)

"""Every feature the official SDKs emit, run on our server by each SDK flavour.

Four flavours serve the same function ids: the PyPI SDK on FastAPI (``async def``) and on
Flask (``def``), ``tests/integration/apps/official_py_features.py``; the npm SDK 3.x and 4.x
on its Node adapter, ``tests/interop/js/features.mjs``. Each flavour runs in dev mode and in
production mode (``stepwise start``: the server signs every call and the SDK verifies it,
the SDK signs every reply and the server verifies that, the SDK syncs and reads run state
with its key).

One test per flavour and mode starts one server and one app; every scenario then starts
at once on a thread of its own and records what it saw, and each check (a subtest of its
own, named after the feature) waits for its scenario's record and asserts on it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from stepwise.protocol import canonical_json
from stepwise.protocol.signature import sign
from support.harness import REPO, TERMINAL, AppProcess, Stack, wait_until

JS_DIR = REPO / "tests" / "interop" / "js"
SIGNING_KEY = "signkey-prod-" + "a7" * 32
WRONG_KEY = "signkey-prod-" + "b8" * 32
EVENT_KEY = "test-event-key"
BIG = 2_200_000  # characters of each of two steps of "big-state"


@dataclass(frozen=True)
class Flavour:
    module: str
    env: dict[str, str]
    app_id: str
    functions: int  # synced, failure handlers included

    @property
    def js(self) -> bool:
        return self.module.endswith(".mjs")


FLAVOURS = {
    "py-fastapi": Flavour(
        "official_py_features", {"STEPWISE_TEST_FRAMEWORK": "fastapi"}, "features-py-fastapi", 25
    ),
    "py-flask": Flavour(
        "official_py_features", {"STEPWISE_TEST_FRAMEWORK": "flask"}, "features-py-flask", 25
    ),
    "js3": Flavour("features.mjs", {"STEPWISE_TEST_SDK": "inngest3"}, "features-js3", 27),
    "js4": Flavour("features.mjs", {"STEPWISE_TEST_SDK": "inngest"}, "features-js4", 27),
}


def require_peer(flavour: Flavour) -> None:
    if flavour.js:
        # `make test` installs both (npm ci); a missing install is a broken setup, not a skip.
        for package in ("inngest", "inngest3"):
            if not (JS_DIR / "node_modules" / package).is_dir():
                pytest.fail(f"the JS SDK is not installed: run `npm ci --prefix {JS_DIR}`")


def make_stack(tmp: Path, flavour: Flavour, *, production: bool, env: dict[str, str]) -> Stack:
    app_env = {**flavour.env, **env}
    if production:
        app_env["STEPWISE_TEST_SIGNING_KEY"] = SIGNING_KEY
    # step.fetch calls the app itself, on loopback: `stepwise start` reaches it only if told.
    args = ["--retry-interval", "1", "--outbound-allow", "127.0.0.0/8"]
    stack = Stack(tmp, flavour.module, server_args=args, app_env=app_env)
    stack.functions = flavour.functions
    if production:
        stack.server.production(signing_key=SIGNING_KEY, event_key=EVENT_KEY)
    return stack


# ---- driving scenarios -----------------------------------------------------------------------


@dataclass
class Peer:
    """A running flavour: its stack, and the record of every scenario started on it."""

    name: str
    flavour: Flavour
    production: bool
    stack: Stack
    tmp: Path
    pool: ThreadPoolExecutor
    outcomes: dict[str, Future[dict[str, Any]]] = field(default_factory=dict)

    def outcome(self, scenario: str, timeout: float = 90) -> dict[str, Any]:
        try:
            return self.outcomes[scenario].result(timeout=timeout)
        except Exception as exc:
            raise AssertionError(f"scenario {scenario}: {exc!r}\n{self.stack.logs()}") from exc

    # What the scenarios use.

    def send(self, name: str, **data: Any) -> str:
        return self.send_many([{"name": f"feat/{name}", "data": data}])[0]

    def send_many(self, events: list[dict[str, Any]]) -> list[str]:
        """Events in one request: the server takes them in together."""
        server = self.stack.server
        r = server.http.post(f"/e/{server.event_key}", content=json.dumps(events))
        r.raise_for_status()
        ids: list[str] = r.json()["ids"]
        return ids

    def run_id(self, event_id: str) -> str:
        run_id: str = wait_until(
            lambda: (self.stack.server.runs(event_id) or [{}])[0].get("run_id"),
            timeout=30,
            what=f"the run of event {event_id}",
        )
        return run_id

    def end(self, event_id: str) -> dict[str, Any]:
        return self.stack.server.wait_for_run(event_id, timeout=60)

    def history_has(self, run_id: str, kind: str) -> None:
        wait_until(
            lambda: any(h["kind"] == kind for h in self.stack.server.history(run_id)),
            timeout=30,
            what=f"{kind} in run {run_id}",
        )

    def steps(self, fn: str) -> list[dict[str, Any]]:
        """The recorded step edges of one function, in the order the app wrote them."""
        return self.stack.app.ledger_of("step", fn=fn)

    def step_started(self, fn: str, token: str) -> None:
        wait_until(
            lambda: any(e["token"] == token for e in self.steps(fn)),
            timeout=30,
            what=f"the step of {fn} for {token}",
        )

    def runs_of(self, event_ids: list[str]) -> dict[str, dict[str, Any]]:
        return {r["run_id"]: r for e in event_ids for r in self.stack.server.runs(e)}


def token() -> str:
    return uuid.uuid4().hex


def scenario_wait(peer: Peer, fn: str) -> dict[str, Any]:
    """Wait for the run's wait, send a decoy that must not resume it, then the right event."""
    t = token()
    run_id = peer.run_id(peer.send(fn, token=t))
    peer.history_has(run_id, "WaitStarted")
    decoy = {"token": t, "ok": False} if fn == "wait-if" else {"token": "not-" + t, "ok": True}
    peer.send("wake", **decoy)
    peer.send("wake", token=t, ok=True, right=True)
    return {"token": t, "run": peer.stack.server.wait_for_run_end(run_id, timeout=60)}


def scenario_simple(fn: str) -> Callable[[Peer], dict[str, Any]]:
    def drive(peer: Peer) -> dict[str, Any]:
        t = token()
        return {"token": t, "run": peer.end(peer.send(fn, token=t))}

    return drive


def scenario_on_failure(peer: Peer) -> dict[str, Any]:
    t = token()
    run = peer.end(peer.send("on-failure", token=t))
    failed: list[dict[str, Any]] = wait_until(
        lambda: [
            e
            for e in peer.stack.server.events("inngest/function.failed")
            if e["data"].get("run_id") == run["run_id"]
        ],
        timeout=30,
        what="inngest/function.failed",
    )
    handler = peer.end(failed[0]["internal_id"])
    return {"token": t, "run": run, "failed": failed, "handler": handler}


def scenario_cancel_on(peer: Peer) -> dict[str, Any]:
    t = token()
    run_id = peer.run_id(peer.send("cancel-on", token=t))
    peer.history_has(run_id, "SleepStarted")
    peer.send("cancel", token="not-" + t)  # another run's cancellation
    peer.send("cancel", token=t)
    return {"run": peer.stack.server.wait_for_run_end(run_id)}


def group_of(n: int, fn: str, **extra: Any) -> tuple[str, list[dict[str, Any]]]:
    """``n`` events for ``fn`` sharing one flow-control key, each with its own token."""
    group = token()
    return group, [
        {"name": f"feat/{fn}", "data": {"group": group, "token": f"{group}-{i}", "n": i, **extra}}
        for i in range(1, n + 1)
    ]


def scenario_flow_all(fn: str, n: int, **extra: Any) -> Callable[[Peer], dict[str, Any]]:
    """``n`` events with one key in one request; every run they start, once all ended."""

    def drive(peer: Peer) -> dict[str, Any]:
        group, events = group_of(n, fn, **extra)
        ids = peer.send_many(events)
        runs = [peer.end(i) for i in ids]
        return {"group": group, "runs": runs, "steps": peer.steps(fn)}

    return drive


def scenario_throttle(peer: Peer) -> dict[str, Any]:
    """Three starts at once under ``limit 1 per 60 s, burst 1``: two start, the third waits
    its turn (a minute later): it is neither started nor dropped when the others ended."""
    group, events = group_of(3, "throttle")
    ids = peer.send_many(events)
    done = wait_until(
        lambda: (
            (r := [peer.stack.server.runs(i) for i in ids])
            and sum(1 for runs in r if runs and runs[0]["status"] == "Completed") == 2
            and r
        ),
        timeout=60,
        what="two throttled runs to complete",
    )
    return {
        "group": group,
        "runs": [runs[0] if runs else None for runs in done],
        "steps": peer.steps("throttle"),
    }


def scenario_debounce_or_batch(fn: str) -> Callable[[Peer], dict[str, Any]]:
    """Three events with one key in one request start one run (when is the server's)."""

    def drive(peer: Peer) -> dict[str, Any]:
        group, events = group_of(3, fn)
        ts = int(time.time() * 1000)
        for i, e in enumerate(events):
            e["ts"] = ts + i  # the last one sent is the latest
        ids = peer.send_many(events)
        runs = wait_until(
            lambda: [r for r in peer.runs_of(ids).values() if r["status"] in TERMINAL],
            timeout=60,
            what=f"the {fn} run",
        )
        return {"group": group, "runs": list(peer.runs_of(ids).values()), "ended": runs}

    return drive


def scenario_priority(peer: Peer) -> dict[str, Any]:
    """A run holds the one slot; then a low and a high priority run queue up behind it."""
    group = token()
    blocker = f"{group}-block"
    first = peer.send("priority", group=group, token=blocker, priority=0, hold=1500)
    peer.step_started("priority", blocker)
    ids = peer.send_many(
        [
            {"name": "feat/priority", "data": {"group": group, "token": f"{group}-low"}},
            {
                "name": "feat/priority",
                "data": {"group": group, "token": f"{group}-high", "priority": 600},
            },
        ]
    )
    runs = [peer.end(i) for i in [first, *ids]]
    starts = [e["token"] for e in peer.steps("priority") if e["edge"] == "start"]
    return {"group": group, "runs": runs, "starts": [s for s in starts if s.startswith(group)]}


def scenario_idempotency(peer: Peer) -> dict[str, Any]:
    group = token()
    first = peer.send("idempotency", group=group, token=f"{group}-1")
    run = peer.end(first)
    second = peer.send("idempotency", group=group, token=f"{group}-2")
    # The second event is stored and listed like any other, and starts no run.
    peer.run_id(peer.send("idempotency", group=token(), token="other"))  # a later event's run
    return {"run": run, "second_runs": peer.stack.server.runs(second)}


def scenario_singleton(mode: str) -> Callable[[Peer], dict[str, Any]]:
    def drive(peer: Peer) -> dict[str, Any]:
        fn = f"singleton-{mode}"
        group = token()
        first = peer.send(fn, group=group, token=f"{group}-1", hold=2500)
        peer.step_started(fn, f"{group}-1")
        second = peer.send(fn, group=group, token=f"{group}-2")
        return {"first": peer.end(first), "second": peer.end(second)}

    return drive


def scenario_big_state(peer: Peer) -> dict[str, Any]:
    t = token()
    run = peer.end(peer.send("big-state", token=t))
    steps = [e["fn"] for e in peer.stack.app.ledger_of("step", token=t)]
    return {"token": t, "run": run, "steps": steps}


def scenario_two_steps(fn: str) -> Callable[[Peer], dict[str, Any]]:
    def drive(peer: Peer) -> dict[str, Any]:
        run = peer.end(peer.send(fn, token=token()))
        return {"run": run, "entries": len(peer.stack.app.ledger_of("enter", run_id=run["run_id"]))}

    return drive


SCENARIOS: dict[str, Callable[[Peer], dict[str, Any]]] = {
    "wait-match": lambda peer: scenario_wait(peer, "wait-match"),
    "wait-if": lambda peer: scenario_wait(peer, "wait-if"),
    "wait-timeout": scenario_simple("wait-timeout"),
    "invoke-ok": scenario_simple("invoke-ok"),
    "invoke-fail": scenario_simple("invoke-fail"),
    "invoke-timeout": scenario_simple("invoke-timeout"),
    "parallel": scenario_simple("parallel"),
    "race": scenario_simple("race"),
    "on-failure": scenario_on_failure,
    "cancel-on": scenario_cancel_on,
    "timeout-finish": scenario_simple("timeout-finish"),
    "concurrency": scenario_flow_all("concurrency", 3, hold=300),
    "throttle": lambda peer: scenario_throttle(peer),
    "rate-limit": scenario_flow_all("rate-limit", 2),
    "debounce": scenario_debounce_or_batch("debounce"),
    "batch": scenario_debounce_or_batch("batch"),
    "idempotency": scenario_idempotency,
    "singleton-skip": scenario_singleton("skip"),
    "singleton-cancel": scenario_singleton("cancel"),
    "big-state": scenario_big_state,
    "two-steps": scenario_two_steps("two-steps"),
}
JS_ONLY: dict[str, Callable[[Peer], dict[str, Any]]] = {
    "fetch": scenario_simple("fetch"),
    "two-steps-checkpointed": scenario_two_steps("two-steps-checkpointed"),
}

PEERS = [
    pytest.param(name, production, id=f"{name}-{'production' if production else 'dev'}")
    for name in FLAVOURS
    for production in (False, True)
]


CheckFn = Callable[[Peer], None]


def only(select: Callable[[str, bool], bool]) -> Callable[[CheckFn], CheckFn]:
    """A check for some flavours only: ``select(flavour, production)`` says which; the
    others do not run it (it tests what they do not have)."""

    def mark(check: CheckFn) -> CheckFn:
        check.peers = select  # type: ignore[attr-defined]
        return check

    return mark


js_only = only(lambda flavour, production: flavour.startswith("js"))
production_only = only(lambda flavour, production: production)


def completed(outcome: dict[str, Any], key: str = "run") -> Any:
    run = outcome[key]
    assert run["status"] == "Completed", run
    return run["output"]


# ---- waits -----------------------------------------------------------------------------------


def check_wait_for_event_with_match(peer: Peer) -> None:
    outcome = peer.outcome("wait-match")
    # The decoy (another token) did not resume the wait; the matching event did.
    assert completed(outcome) == {"token": outcome["token"], "ok": True, "right": True}


def check_wait_for_event_with_an_if_expression(peer: Peer) -> None:
    outcome = peer.outcome("wait-if")
    # The decoy had the token but not `ok == true`.
    assert completed(outcome) == {"token": outcome["token"], "ok": True, "right": True}


def check_wait_for_event_timeout_resumes_with_null(peer: Peer) -> None:
    assert completed(peer.outcome("wait-timeout")) == {"got": None}


# ---- invoke ----------------------------------------------------------------------------------


def check_invoke_returns_the_child_output(peer: Peer) -> None:
    outcome = peer.outcome("invoke-ok")
    assert completed(outcome) == 42
    # The child ran as a run of its own, its step once.
    child_steps = [e for e in peer.steps("child") if e["token"] == outcome["token"]]
    assert [e["edge"] for e in child_steps] == ["start", "end"]


def check_invoke_of_a_failing_child_raises_its_error(peer: Peer) -> None:
    caught = completed(peer.outcome("invoke-fail"))["caught"]
    assert "child says no" in caught["message"], caught


def check_invoke_timeout_raises(peer: Peer) -> None:
    caught = completed(peer.outcome("invoke-timeout"))["caught"]
    assert caught["message"] == "Timed out waiting for invoked function to complete", caught


# ---- parallel steps --------------------------------------------------------------------------


def check_parallel_steps_then_one_more(peer: Peer) -> None:
    assert completed(peer.outcome("parallel")) == ["p1", "p2", "p3", "after"]


def check_race(peer: Peer) -> None:
    output = completed(peer.outcome("race"))
    if peer.flavour.js:
        assert output == "fast"  # Promise.race: the first step to settle
    else:
        assert output == ["fast", "slow"]  # the Python SDK's race mode still returns both


# ---- failure handler, cancellation, timeouts -------------------------------------------------


def check_on_failure_handler_runs_with_the_failed_event(peer: Peer) -> None:
    outcome = peer.outcome("on-failure")
    assert outcome["run"]["status"] == "Failed"
    assert completed(outcome, "handler") == {
        "failed_run": outcome["run"]["run_id"],
        "function_id": f"{peer.flavour.app_id}-on-failure",
        "token": outcome["token"],
        "message": "boom",
    }


def check_cancel_on_a_matching_event(peer: Peer) -> None:
    assert peer.outcome("cancel-on")["run"]["status"] == "Cancelled"


def check_finish_timeout_cancels_the_run(peer: Peer) -> None:
    run = peer.outcome("timeout-finish")["run"]
    assert run["status"] == "Cancelled", run


# ---- flow control ----------------------------------------------------------------------------


def check_concurrency_runs_one_step_at_a_time(peer: Peer) -> None:
    outcome = peer.outcome("concurrency")
    assert [r["status"] for r in outcome["runs"]] == ["Completed"] * 3
    edges = [e["edge"] for e in outcome["steps"] if e["token"].startswith(outcome["group"])]
    # Never two steps of the key at once: every start is followed by its end.
    assert edges == ["start", "end"] * 3


def check_throttle_holds_a_start_over_the_rate(peer: Peer) -> None:
    outcome = peer.outcome("throttle")
    held = [r for r in outcome["runs"] if r is None or r["status"] != "Completed"]
    assert len(held) == 1, outcome["runs"]
    # Held, not skipped: queued to start, and its step has not run.
    assert held[0] is not None and held[0]["status"] not in TERMINAL, held
    started = {e["token"] for e in outcome["steps"] if e["token"].startswith(outcome["group"])}
    assert len(started) == 2, started


def check_rate_limit_skips_the_second_run(peer: Peer) -> None:
    runs = peer.outcome("rate-limit")["runs"]
    assert sorted((r["status"], r.get("skip_reason")) for r in runs) == [
        ("Completed", None),
        ("Skipped", "rate_limited"),
    ]


def check_debounce_runs_once_with_the_latest_event(peer: Peer) -> None:
    outcome = peer.outcome("debounce")
    assert len(outcome["runs"]) == 1, outcome["runs"]
    output = completed({"run": outcome["ended"][0]})
    assert output["token"] == f"{outcome['group']}-3" and output["n"] == 3


def check_batch_runs_once_with_every_event(peer: Peer) -> None:
    outcome = peer.outcome("batch")
    assert len(outcome["runs"]) == 1, outcome["runs"]
    assert sorted(completed({"run": outcome["ended"][0]})["batch"]) == [1, 2, 3]


def priority_runs_the_high_priority_run_first(peer: Peer) -> None:
    outcome = peer.outcome("priority")
    assert [r["status"] for r in outcome["runs"]] == ["Completed"] * 3
    group = outcome["group"]
    assert outcome["starts"] == [f"{group}-block", f"{group}-high", f"{group}-low"]


def check_idempotency_starts_one_run_per_key(peer: Peer) -> None:
    outcome = peer.outcome("idempotency")
    assert outcome["run"]["status"] == "Completed"
    assert outcome["second_runs"] == []


def check_singleton_skip(peer: Peer) -> None:
    outcome = peer.outcome("singleton-skip")
    assert outcome["first"]["status"] == "Completed"
    assert (outcome["second"]["status"], outcome["second"].get("skip_reason")) == (
        "Skipped",
        "singleton",
    )


def check_singleton_cancel(peer: Peer) -> None:
    outcome = peer.outcome("singleton-cancel")
    assert outcome["first"]["status"] == "Cancelled"
    assert outcome["second"]["status"] == "Completed"


# ---- step.fetch, large state, calls per run --------------------------------------------------


@js_only
def check_step_fetch_is_made_by_the_server(peer: Peer) -> None:
    outcome = peer.outcome("fetch")
    assert completed(outcome) == {
        "status": 200,
        "body": {"token": outcome["token"], "method": "POST", "header": "there", "body": "ping"},
    }


def check_large_state_is_read_through_the_api(peer: Peer) -> None:
    """Past 4 MB of state the server sends none in the call (``use_api``, unit-tested in
    ``test_server_executor``) and the SDK reads events and steps from ``/v0/runs/{id}``:
    the last step sees both earlier outputs, and no step ran twice."""
    outcome = peer.outcome("big-state")
    assert completed(outcome) == {"a": BIG, "b": BIG, "ends": "ab", "token": outcome["token"]}
    assert outcome["steps"] == ["a", "a", "b", "b", "sum", "sum"]  # a start and an end each


def check_calls_per_run_of_two_steps(peer: Peer) -> None:
    """How often the function is entered for two steps: the Python SDK and JS 3.x run one
    step per call (3 calls); JS 4.x checkpoints both in its first call (1)."""
    outcome = peer.outcome("two-steps")
    assert completed(outcome) == [1, 2]
    assert outcome["entries"] == (1 if peer.name == "js4" else 3)


@js_only
def check_checkpointing_opted_into_on_js_3x(peer: Peer) -> None:
    """``checkpointing: true`` (opt-in on 3.x, the default on 4.x): one call runs both steps."""
    outcome = peer.outcome("two-steps-checkpointed")
    assert completed(outcome) == [1, 2]
    assert outcome["entries"] == 1


# ---- production mode: a wrong key is refused on each side -------------------------------------


def signed(body: bytes, key: str) -> dict[str, str]:
    return {"content-type": "application/json", "x-inngest-signature": sign(body, key)}


@production_only
def check_the_sdk_refuses_a_call_signed_with_another_key(peer: Peer) -> None:
    """The server's side of a call, played by the test: the same call request, signed with
    a key the SDK does not have, then with its own."""
    event = {"name": "feat/two-steps", "data": {"token": token()}, "id": token(), "ts": 0}
    call = {
        "event": event,
        "events": [event],
        "steps": {},
        "ctx": {
            "run_id": "01JB0000000000000000000000",
            "attempt": 0,
            "disable_immediate_execution": True,  # plan the step, run nothing
            "use_api": False,
            "stack": {"stack": [], "current": 0},
        },
        "use_api": False,
        "version": 1,
    }
    body = canonical_json(call)  # what the SDKs verify a signature over
    url = f"{peer.stack.app.url}?fnId={peer.flavour.app_id}-two-steps&stepId=step"
    wrong = httpx.post(url, content=body, headers=signed(body, WRONG_KEY), timeout=30)
    assert wrong.status_code == 401, wrong.text
    right = httpx.post(url, content=body, headers=signed(body, SIGNING_KEY), timeout=30)
    assert right.status_code == 206, right.text
    assert [op["op"] for op in right.json()] == ["StepPlanned"]


@production_only
def check_the_server_refuses_an_sdk_with_another_key(peer: Peer) -> None:
    """An app of the same SDK with another signing key: the server's sync request is
    refused by the SDK, and the SDK's own registration is refused by the server."""
    server = peer.stack.server
    app_id = f"{peer.flavour.app_id}-wrong-key"
    env = {
        **peer.flavour.env,
        "STEPWISE_TEST_SIGNING_KEY": WRONG_KEY,
        "STEPWISE_TEST_APP_ID": app_id,
    }
    app = AppProcess(peer.tmp, peer.flavour.module, server_url=server.url, extra_env=env)
    try:
        app.start_and_wait()
        # The server asks the app to sync: the JS SDK refuses the server's signature; the
        # Python SDK does not check it, registers, is refused, and says so in its answer.
        asked = server.http.post("/v1/apps", json={"url": app.url})
        assert asked.status_code == 502, asked.text
        assert "use the same signing key" in asked.json()["error"], asked.text
        # The app syncs itself (an unsigned PUT starts it): the server refuses its key, and
        # the SDK hands the refusal on (the JS SDK with the status, Python's with 200).
        put = httpx.put(app.url, timeout=30)
        assert "a valid signing key is required" in put.text, put.text
        names = [a["name"] for a in server.http.get("/v1/apps").json()["data"]]
        assert app_id not in names and peer.flavour.app_id in names
    finally:
        app.stop()


CHECKS = [value for name, value in list(globals().items()) if name.startswith("check_")]


@pytest.mark.parametrize(("name", "production"), PEERS)
def test_sdk_features(
    name: str, production: bool, tmp_path: Path, subtests: pytest.Subtests
) -> None:
    flavour = FLAVOURS[name]
    require_peer(flavour)
    with (
        make_stack(tmp_path, flavour, production=production, env={}) as stack,
        ThreadPoolExecutor(max_workers=32) as pool,
    ):
        peer = Peer(name, flavour, production, stack, tmp_path, pool)
        scenarios = {**SCENARIOS, **(JS_ONLY if flavour.js else {})}
        for scenario, drive in scenarios.items():
            peer.outcomes[scenario] = pool.submit(drive, peer)
        for check in CHECKS:
            select = getattr(check, "peers", None)
            if select is None or select(name, production):
                with subtests.test(msg=check.__name__.removeprefix("check_")):
                    check(peer)
        # Leaving the pool waits for every scenario: no thread outlives the stack.


# ---- streamed replies ---------------------------------------------------------------------------

# Each SDK's way to turn streaming on (Flask's adapter in the Python SDK does not stream).
STREAMED = [
    pytest.param("py-fastapi", False, {"INNGEST_STREAMING": "force"}, id="py-fastapi-dev"),
    pytest.param("js3", False, {"INNGEST_STREAMING": "force"}, id="js3-dev"),
    pytest.param("js3", True, {"INNGEST_STREAMING": "force"}, id="js3-production"),
    pytest.param("js4", False, {"INNGEST_STREAMING": "true"}, id="js4-dev"),
]


@pytest.mark.parametrize(("name", "production", "env"), STREAMED)
def test_streamed_replies(
    name: str, production: bool, env: dict[str, str], tmp_path: Path, subtests: pytest.Subtests
) -> None:
    """The SDK answers every call at once with ``201`` and keeps the connection alive with
    spaces until it sends the real status, headers and body as one JSON chunk (protocol
    §3.4): steps, parallel steps, a wait, an invoke and a failure handler work so too.
    (In production the Python SDK signs a streamed reply over ``null``: refused, see
    ``test_official_sdks.test_python_sdk_streaming_is_refused_in_production``.)"""
    flavour = FLAVOURS[name]
    require_peer(flavour)
    checks = [
        ("parallel", check_parallel_steps_then_one_more),
        ("invoke-ok", check_invoke_returns_the_child_output),
        ("wait-match", check_wait_for_event_with_match),
        ("on-failure", check_on_failure_handler_runs_with_the_failed_event),
        ("two-steps", check_calls_per_run_of_two_steps),
    ]
    with (
        make_stack(tmp_path, flavour, production=production, env=env) as stack,
        ThreadPoolExecutor(max_workers=8) as pool,
    ):
        peer = Peer(name, flavour, production, stack, tmp_path, pool)
        for scenario, _ in checks:
            peer.outcomes[scenario] = pool.submit(SCENARIOS[scenario], peer)
        for scenario, check in checks:
            with subtests.test(msg=scenario):
                check(peer)


# ---- a server bug found here, not fixed yet ---------------------------------------------------


def test_priority_orders_runs_waiting_for_a_concurrency_slot(tmp_path: Path) -> None:
    """Priority and concurrency together (the SDKs' usual pairing): a run holds the one
    slot, a low and a high priority run queue behind it; the high one must go first."""
    flavour = FLAVOURS["py-fastapi"]
    with (
        make_stack(tmp_path, flavour, production=False, env={}) as stack,
        ThreadPoolExecutor(max_workers=2) as pool,
    ):
        peer = Peer("py-fastapi", flavour, False, stack, tmp_path, pool)
        peer.outcomes["priority"] = pool.submit(scenario_priority, peer)
        priority_runs_the_high_priority_run_first(peer)

"""The test engine and the real server agree: the same function, run in-process by
``TestEngine`` and on ``stepwise dev`` (served from this process by ``ServedApp``), ends
with the same result and the same sequence of steps, retries, sleeps, waits and invokes in
its history."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import stepwise
from stepwise import NonRetriableError, StepError
from stepwise.testing import RunResult, TestEngine
from stepwise.testing.app import ServedApp
from support.harness import ServerProcess

client = stepwise.Stepwise("parity")


@client.create_function(fn_id="child", trigger=stepwise.TriggerEvent(event="parity/child"))
async def child(ctx: stepwise.Context) -> dict[str, Any]:
    squared = await ctx.step.run("square", lambda: ctx.event.data["n"] ** 2)
    return {"squared": squared}


@client.create_function(
    fn_id="sequence", trigger=stepwise.TriggerEvent(event="parity/sequence"), retries=2
)
async def sequence(ctx: stepwise.Context) -> dict[str, Any]:
    loaded = await ctx.step.run("load", lambda: {"n": ctx.event.data["n"]})

    def flaky() -> int:
        if ctx.attempt == 0:
            raise RuntimeError("first attempt fails")
        return ctx.attempt

    attempt = await ctx.step.run("flaky", flaky)
    await ctx.step.sleep("nap", "1s")
    approval = await ctx.step.wait_for_event(
        "approval", event="parity/approved", timeout="1s", match="data.n"
    )
    invoked = await ctx.step.invoke("square-it", function=child, data={"n": loaded["n"]})
    sent = await ctx.step.send_event("announce", {"name": "parity/done", "data": loaded})
    try:
        await ctx.step.run("refused", _refuse)
    except StepError as exc:
        refused = exc.message
    total = await ctx.step.run("total", lambda: loaded["n"] + invoked["squared"])
    return {
        "attempt": attempt,
        "approval": approval,
        "invoked": invoked,
        "sent": len(sent),
        "refused": refused,
        "total": total,
    }


def _refuse() -> None:
    raise NonRetriableError("not allowed")


@client.create_function(fn_id="fan", trigger=stepwise.TriggerEvent(event="parity/fan"))
async def fan(ctx: stepwise.Context) -> Any:
    pair = await asyncio.gather(
        ctx.step.run("left", lambda: "L"), ctx.step.run("right", lambda: "R")
    )
    return [pair, await ctx.step.run("after", lambda: "A")]


@client.create_function(
    fn_id="doomed", trigger=stepwise.TriggerEvent(event="parity/doomed"), retries=1
)
async def doomed(ctx: stepwise.Context) -> None:
    await ctx.step.run("ok", lambda: 1)
    raise ValueError(f"broken on attempt {ctx.attempt}")


FUNCTIONS = [child, sequence, fan, doomed]
# What the history says of steps and of the run's ends; the server plans and logs more.
TOLD = {
    "RunStarted",
    "StepCompleted",
    "StepErrored",
    "StepFailed",
    "SleepStarted",
    "SleepEnded",
    "WaitStarted",
    "WaitEnded",
    "InvokeStarted",
    "InvokeEnded",
    "AttemptFailed",
    "RunCompleted",
    "RunFailed",
}


@pytest.fixture(scope="module")
def served(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApp]:
    tmp: Path = tmp_path_factory.mktemp("parity")
    server = ServerProcess(tmp, sdk_urls=[], extra_args=["--retry-interval", "0.2"])
    server.start_and_wait()
    try:
        with ServedApp(server, client, FUNCTIONS) as app:
            yield app
    finally:
        server.close()


def both(
    served: ServedApp, function: stepwise.Function, event: dict[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]], RunResult]:
    on_server = served.server.trigger(event, timeout=60)
    history = served.server.history(on_server["run_id"])
    in_process = TestEngine(function, functions=FUNCTIONS, retry_interval="1s").execute(event)
    return on_server, history, in_process


def told(history: list[dict[str, Any]]) -> list[tuple[str, str | None, int | None]]:
    return [(h["kind"], h["name"], h["attempt"]) for h in history if h["kind"] in TOLD]


def test_a_sequence_of_every_kind_of_step_agrees(served: ServedApp) -> None:
    on_server, history, in_process = both(
        served, sequence, {"name": "parity/sequence", "data": {"n": 3}}
    )
    assert on_server["status"] == in_process.status == "Completed"
    assert (
        on_server["output"]
        == in_process.result
        == {
            "attempt": 1,
            "approval": None,
            "invoked": {"squared": 9},
            "sent": 1,
            "refused": "not allowed",
            "total": 12,
        }
    )
    engine_history = [
        {"kind": h.kind, "name": h.name, "attempt": h.attempt} for h in in_process.history
    ]
    assert told(history) == told(engine_history)
    # Each completed step's output, as the server's history shows it.
    server_outputs = [(h["name"], h["output"]) for h in history if h["kind"] == "StepCompleted"]
    engine_outputs = [
        (s.id, s.output)
        for s in in_process.steps
        if s.kind in ("run", "send_event") and not s.failed
    ]
    assert [name for name, _ in server_outputs] == [name for name, _ in engine_outputs]
    for (name, server_output), (_, engine_output) in zip(
        server_outputs, engine_outputs, strict=True
    ):
        if name == "announce":  # event IDs differ; their number does not
            assert len(server_output["ids"]) == len(engine_output["ids"]) == 1
        else:
            assert server_output == engine_output, name


def test_parallel_steps_agree(served: ServedApp) -> None:
    on_server, history, in_process = both(served, fan, {"name": "parity/fan", "data": {}})
    assert on_server["output"] == in_process.result == [["L", "R"], "A"]
    server_steps = [h["name"] for h in history if h["kind"] == "StepCompleted"]
    # The two parallel steps end in either order; what follows them does not.
    assert sorted(server_steps[:2]) == sorted(in_process.step_ids[:2]) == ["left", "right"]
    assert server_steps[2:] == in_process.step_ids[2:] == ["after"]
    planned = [h["name"] for h in history if h["kind"] == "StepPlanned"]
    assert sorted(planned) == sorted(
        h.name or "" for h in in_process.history if h.kind == "StepPlanned"
    )


def test_a_failing_function_agrees(served: ServedApp) -> None:
    on_server, history, in_process = both(served, doomed, {"name": "parity/doomed", "data": {}})
    assert on_server["status"] == in_process.status == "Failed"
    assert on_server["output"]["message"] == str(in_process.error) == "broken on attempt 1"
    assert on_server["output"]["name"] == in_process.state.output["name"] == "ValueError"
    engine_history = [
        {"kind": h.kind, "name": h.name, "attempt": h.attempt} for h in in_process.history
    ]
    assert told(history) == told(engine_history)

"""Checkpointing calls in-process: what the SDK posts to the checkpoint API, when, and
what it answers the call with. The server's API is an ``httpx.MockTransport``."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sdk_support import RUN_ID, App, call_body, dev_client, h, ops

import stepwise
from stepwise.errors import ConfigError
from stepwise.protocol import RUN_COMPLETE_ID, hash_signing_key, loads
from stepwise.sdk import checkpoint
from stepwise.sdk.checkpoint import CheckpointConfig, effective_config

SIGNING_KEY = "signkey-test-" + "ab" * 32
DISPATCH_HEADERS = {"x-request-id": "req-1", "x-inngest-generation-id": "3"}


class Api:
    """The server's checkpoint API: answers each POST with the next of ``statuses`` (the
    last one repeats), and keeps what it got; ``log`` interleaves posts with step bodies."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses) or [200]
        self.posts: list[dict[str, Any]] = []
        self.headers: list[httpx.Headers] = []
        self.log: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == f"/v1/checkpoint/{RUN_ID}/async"
        body = loads(request.content)
        self.posts.append(body)
        self.headers.append(request.headers)
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        self.log.append(f"post {[s.get('name') for s in body['steps']]} -> {status}")
        return httpx.Response(status, json={})

    @property
    def saved(self) -> list[list[str]]:
        return [[s["name"] for s in body["steps"]] for body in self.posts]


def checkpointing_body(**kwargs: Any) -> dict[str, Any]:
    body = call_body(**kwargs)
    body["ctx"].update(fn_id="fn-internal-id", qi_id="queue-item-7")
    return body


def steps_fn(
    client: stepwise.Stepwise, api: Api, names: str = "abc", **options: Any
) -> stepwise.Function:
    @client.create_function(
        fn_id="steps", trigger=stepwise.TriggerEvent(event="user/signup"), **options
    )
    async def steps(ctx: stepwise.Context) -> list[Any]:
        out = []
        for name in names:

            def body(name: str = name) -> str:
                api.log.append(f"run {name}")
                return name.upper()

            out.append(await ctx.step.run(name, body))
        return out

    return steps


async def test_sequential_steps_are_saved_one_by_one_before_the_next_runs() -> None:
    api = Api()
    client = dev_client(httpx.MockTransport(api), signing_key=SIGNING_KEY)
    fn = steps_fn(client, api)
    async with App(client, [fn]) as app:
        response = await app.call(fn, checkpointing_body(), headers=DISPATCH_HEADERS)
    assert ops(response) == [{"op": "RunComplete", "id": RUN_COMPLETE_ID, "data": ["A", "B", "C"]}]
    assert api.log == [
        "run a",
        "post ['a'] -> 200",
        "run b",
        "post ['b'] -> 200",
        "run c",
        "post ['c'] -> 200",
    ]
    first = api.posts[0]
    assert {k: first[k] for k in ("run_id", "fn_id", "qi_id", "request_id", "generation_id")} == {
        "run_id": RUN_ID,
        "fn_id": "fn-internal-id",
        "qi_id": "queue-item-7",
        "request_id": "req-1",
        "generation_id": 3,
    }
    assert isinstance(first["request_started_at"], int) and isinstance(first["ts"], int)
    assert first["steps"] == [
        {
            "op": "StepRun",
            "id": h("a"),
            "name": "a",
            "displayName": "a",
            "data": "A",
            "userland": {"id": "a", "index": 0},
        }
    ]
    assert api.headers[0]["authorization"] == f"Bearer {hash_signing_key(SIGNING_KEY)}"


async def test_a_call_without_a_queue_item_or_function_id_does_not_checkpoint() -> None:
    api = Api()
    client = dev_client(httpx.MockTransport(api))
    fn = steps_fn(client, api)
    async with App(client, [fn]) as app:
        without_fn = await app.call(fn, call_body())
        body = checkpointing_body()
        del body["ctx"]["qi_id"]
        without_item = await app.call(fn, body)
    for response in (without_fn, without_item):
        assert [op["op"] for op in ops(response)] == ["StepRun"]
    assert api.posts == []


@pytest.mark.parametrize(
    ("client_setting", "fn_setting", "checkpoints"),
    [(True, None, True), (False, None, False), (False, True, True), (True, False, False)],
)
async def test_a_functions_setting_wins_over_its_clients(
    client_setting: bool, fn_setting: bool | None, checkpoints: bool
) -> None:
    api = Api()
    client = dev_client(httpx.MockTransport(api), checkpointing=client_setting)
    fn = steps_fn(client, api, checkpointing=fn_setting)
    async with App(client, [fn]) as app:
        response = await app.call(fn, checkpointing_body())
    expected = ["RunComplete"] if checkpoints else ["StepRun"]
    assert [op["op"] for op in ops(response)] == expected
    # Not part of the synced config: it changes only how this SDK answers calls.
    assert "checkpointing" not in fn.get_config("http://app.test/api/inngest")


async def test_a_targeted_call_or_forced_step_planning_does_not_checkpoint() -> None:
    api = Api()
    client = dev_client(httpx.MockTransport(api))
    fn = steps_fn(client, api)
    async with App(client, [fn]) as app:
        planned = await app.call(fn, checkpointing_body(disable_immediate_execution=True))
        targeted = await app.call(fn, checkpointing_body(), step_id=h("a"))
    assert [op["op"] for op in ops(planned)] == ["StepPlanned"]
    assert [op["op"] for op in ops(targeted)] == ["StepRun"]
    assert api.posts == []


async def test_a_409_stops_the_call_with_a_stale_dispatch_error() -> None:
    api = Api(409)
    client = dev_client(httpx.MockTransport(api))
    fn = steps_fn(client, api)
    async with App(client, [fn]) as app:
        response = await app.call(fn, checkpointing_body())
    assert response.status_code == 400
    assert response.headers["x-inngest-no-retry"] == "true"
    error = loads(response.content)
    assert error["name"] == "StaleDispatchError"
    assert error["message"] == f"Stale dispatch: checkpoint returned 409 (run {RUN_ID})"
    assert api.log == ["run a", "post ['a'] -> 409"]  # not retried, nothing more ran


async def test_failed_checkpoints_are_retried_then_the_steps_go_back_in_the_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(checkpoint, "POST_BASE_DELAY_S", 0.0)
    api = Api(500, 502, 503, 500, 500)
    client = dev_client(httpx.MockTransport(api))
    fn = steps_fn(client, api)
    async with App(client, [fn]) as app:
        response = await app.call(fn, checkpointing_body())
    assert [(op["op"], op["data"]) for op in ops(response)] == [("StepRun", "A")]
    assert api.log == ["run a"] + [f"post ['a'] -> {s}" for s in (500, 502, 503, 500, 500)]


async def test_a_checkpoint_that_succeeds_on_a_retry_lets_the_handler_go_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(checkpoint, "POST_BASE_DELAY_S", 0.0)
    api = Api(503, 200)
    client = dev_client(httpx.MockTransport(api))
    fn = steps_fn(client, api, names="ab")
    async with App(client, [fn]) as app:
        response = await app.call(fn, checkpointing_body())
    assert [op["op"] for op in ops(response)] == ["RunComplete"]
    assert api.saved == [["a"], ["a"], ["b"]]


async def test_a_retried_call_hands_its_one_step_back() -> None:
    api = Api()
    client = dev_client(httpx.MockTransport(api))
    fn = steps_fn(client, api)
    async with App(client, [fn]) as app:
        response = await app.call(fn, checkpointing_body(attempt=1))
        done = await app.call(
            fn,
            checkpointing_body(attempt=1, steps={h(n): {"data": n.upper()} for n in "abc"}),
        )
    assert [op["op"] for op in ops(response)] == ["StepRun"]
    assert api.posts == []
    # Even a retry that only returns answers with RunComplete, never a plain 200.
    assert ops(done) == [{"op": "RunComplete", "id": RUN_COMPLETE_ID, "data": ["A", "B", "C"]}]


async def test_a_failing_step_is_answered_as_without_checkpoints() -> None:
    api = Api()
    client = dev_client(httpx.MockTransport(api))

    @client.create_function(fn_id="fails", trigger=stepwise.TriggerEvent(event="user/signup"))
    async def fails(ctx: stepwise.Context) -> None:
        await ctx.step.run("ok", lambda: 1)
        await ctx.step.run("boom", lambda: 1 / 0)

    async with App(client, [fails]) as app:
        response = await app.call(fails, checkpointing_body())
    assert [op["op"] for op in ops(response)] == ["StepError"]
    assert api.saved == [["ok"]]


async def test_async_ops_and_parallel_steps_end_the_call() -> None:
    api = Api()
    client = dev_client(httpx.MockTransport(api))

    @client.create_function(fn_id="mixed", trigger=stepwise.TriggerEvent(event="user/signup"))
    async def mixed(ctx: stepwise.Context) -> None:
        await ctx.step.run("a", lambda: 1)
        await ctx.step.sleep("nap", "1h")
        await asyncio.gather(ctx.step.run("p1", lambda: 1), ctx.step.run("p2", lambda: 2))

    async with App(client, [mixed]) as app:
        slept = await app.call(mixed, checkpointing_body())
        parallel = await app.call(
            mixed, checkpointing_body(steps={h("a"): {"data": 1}, h("nap"): None})
        )
    assert [op["op"] for op in ops(slept)] == ["Sleep"]
    assert [op["op"] for op in ops(parallel)] == ["StepPlanned", "StepPlanned"]
    assert api.saved == [["a"]]


async def test_buffered_steps_are_posted_together_and_the_rest_ride_on_the_answer() -> None:
    api = Api()
    client = dev_client(httpx.MockTransport(api))
    fn = steps_fn(client, api, checkpointing=CheckpointConfig(buffered_steps=2))
    async with App(client, [fn]) as app:
        response = await app.call(fn, checkpointing_body())
    assert api.log == ["run a", "run b", "post ['a', 'b'] -> 200", "run c"]
    assert [(op["op"], op.get("name")) for op in ops(response)] == [
        ("StepRun", "c"),
        ("RunComplete", None),
    ]


async def test_max_interval_posts_held_steps_while_code_runs() -> None:
    api = Api()
    client = dev_client(httpx.MockTransport(api))
    config = CheckpointConfig(buffered_steps=10, max_interval=0.05)

    @client.create_function(
        fn_id="paced", trigger=stepwise.TriggerEvent(event="user/signup"), checkpointing=config
    )
    async def paced(ctx: stepwise.Context) -> None:
        await ctx.step.run("a", lambda: 1)
        await asyncio.sleep(0.3)
        api.log.append("between")
        await ctx.step.run("b", lambda: 2)

    async with App(client, [paced]) as app:
        response = await app.call(paced, checkpointing_body())
    assert api.log == ["post ['a'] -> 200", "between"]
    assert [op["op"] for op in ops(response)] == ["StepRun", "RunComplete"]


async def test_max_runtime_plans_the_next_step_instead_of_running_it() -> None:
    api = Api()
    client = dev_client(httpx.MockTransport(api))

    @client.create_function(
        fn_id="long",
        trigger=stepwise.TriggerEvent(event="user/signup"),
        checkpointing=CheckpointConfig(max_runtime=0.1),
    )
    async def long(ctx: stepwise.Context) -> None:
        await ctx.step.run("a", lambda: 1)
        await asyncio.sleep(0.2)
        await ctx.step.run("b", lambda: 2)

    async with App(client, [long]) as app:
        response = await app.call(long, checkpointing_body())
    assert [(op["op"], op["name"]) for op in ops(response)] == [("StepPlanned", "b")]
    assert api.saved == [["a"]]


async def test_middleware_sees_each_step_once_and_the_logger_is_quiet_on_replay(
    caplog: pytest.LogCaptureFixture,
) -> None:
    api = Api()
    seen: list[str] = []

    class Counting(stepwise.Middleware):
        async def wrap_step(self, run: Any, step: Any, call_next: Any) -> Any:
            seen.append(f"wrap {step.id}")
            return await call_next()

        async def transform_output(self, run: Any, output: Any) -> None:
            if output.step is not None:
                seen.append(f"output {output.step.id}")

    client = dev_client(httpx.MockTransport(api), middleware=[Counting()])

    @client.create_function(fn_id="logs", trigger=stepwise.TriggerEvent(event="user/signup"))
    async def logs(ctx: stepwise.Context) -> None:
        for name in "abc":
            ctx.logger.info("before %s", name)
            await ctx.step.run(name, lambda: 1)

    caplog.set_level("INFO", logger="stepwise")
    async with App(client, [logs]) as app:
        await app.call(logs, checkpointing_body(steps={h("a"): {"data": 1}}))
    assert seen == ["wrap b", "output b", "wrap c", "output c"]
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("before")] == [
        "before b",
        "before c",
    ]


def test_checkpoint_config_is_checked() -> None:
    assert effective_config(None, None) == CheckpointConfig()
    assert effective_config(None, False) is None
    assert effective_config(CheckpointConfig(max_runtime="1m"), False) == CheckpointConfig(
        max_runtime="1m"
    )
    for bad in (
        {"buffered_steps": 0},
        {"buffered_steps": True},
        {"max_runtime": "soon"},
        {"max_interval": -1},
    ):
        with pytest.raises(ConfigError):
            CheckpointConfig(**bad)
    with pytest.raises(ConfigError):
        stepwise.Stepwise("demo", checkpointing="yes")  # type: ignore[arg-type]

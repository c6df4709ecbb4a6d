"""``ctx.step.ai``: the AIGateway op ``infer`` reports for each adapter, its typed answers
and errors, ``wrap`` as a step with its input, and the adapters' keys and URLs."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
from sdk_support import App, call_body, dev_client, h, ops

import stepwise
from stepwise import ai
from stepwise.protocol import loads

CHAT_BODY = {"messages": [{"role": "user", "content": "hi"}]}
CHAT_ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "gpt-4o",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    "service_tier": "default",
}


async def test_infer_reports_an_ai_gateway_op_and_types_the_answer() -> None:
    client = dev_client()
    model = ai.openai("gpt-4o", api_key="sk-test", default_parameters={"temperature": 0.5})

    @client.create_function(fn_id="asker", trigger=stepwise.TriggerEvent(event="x"))
    async def asker(ctx: stepwise.Context) -> Any:
        answer = await ctx.step.ai.infer("ask", model=model, body=CHAT_BODY)
        assert isinstance(answer, ai.ChatCompletion)
        return {"text": answer.text, "tier": answer.model_dump()["service_tier"]}

    async with App(client, [asker]) as app:
        found = ops(await app.call(asker, call_body()))
        done = await app.call(asker, call_body(steps={h("ask"): {"data": CHAT_ANSWER}}))
    assert found == [
        {
            "op": "AIGateway",
            "id": h("ask"),
            "displayName": "ask",
            "opts": {
                "type": "step.ai.infer",
                "url": "https://api.openai.com/v1/chat/completions",
                "headers": {},
                "auth_key": "sk-test",
                "format": "openai-chat",
                "body": {
                    "model": "gpt-4o",
                    "temperature": 0.5,
                    "messages": [{"role": "user", "content": "hi"}],
                },
            },
            "userland": {"id": "ask", "index": 0},
        }
    ]
    assert loads(done.content) == {"text": "hello", "tier": "default"}


async def test_a_failed_infer_raises_inference_error_with_status_and_body() -> None:
    client = dev_client()
    model = ai.anthropic("claude-sonnet-4-5", api_key="k", max_tokens=64)

    @client.create_function(fn_id="asker", trigger=stepwise.TriggerEvent(event="x"))
    def asker(ctx: stepwise.SyncContext) -> Any:
        body = {"messages": [{"role": "user", "content": "hi"}]}
        try:
            ctx.step.ai.infer("ask", model=model, body=body)
        except stepwise.InferenceError as exc:
            return {"name": exc.name, "status": exc.status, "body": exc.body, "stack": exc.stack}
        return "no error"

    body = {"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}}
    error = {
        "name": "AIGatewayError",
        "message": "the provider answered HTTP 400",
        "stack": '{"type":"error"}',
        "status": 400,
        "data": body,
    }
    async with App(client, [asker]) as app:
        failed = await app.call(asker, call_body(steps={h("ask"): {"error": error}}))
    assert loads(failed.content) == {
        "name": "AIGatewayError",
        "status": 400,
        "body": body,
        "stack": '{"type":"error"}',
    }


@pytest.mark.parametrize(
    ("body", "because"),
    [
        ({"prompt": "hi"}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "role"),
        ({**CHAT_BODY, "temperature": 7}, "temperature"),
        ({**CHAT_BODY, "stream": True}, "stream"),
        ("hi", "a ChatCompletionRequest or a dict"),
    ],
    ids=["no-messages", "empty", "bad-role", "temperature", "stream", "not-a-dict"],
)
async def test_a_wrong_body_is_caught_before_anything_is_sent(body: Any, because: str) -> None:
    client = dev_client()

    @client.create_function(fn_id="asker", trigger=stepwise.TriggerEvent(event="x"), retries=0)
    async def asker(ctx: stepwise.Context) -> Any:
        return await ctx.step.ai.infer("ask", model=ai.openai("gpt-4o", api_key="k"), body=body)

    async with App(client, [asker]) as app:
        response = await app.call(asker, call_body())
    assert response.status_code == 500  # the function failed: no op was reported
    error = loads(response.content)
    assert error["name"] == "ConfigError" and because in error["message"]


async def test_wrap_is_a_step_run_marked_with_its_input() -> None:
    client = dev_client()
    calls: list[Any] = []

    class Reply(pydantic.BaseModel):
        text: str

    async def call_model(prompt: str, *, temperature: float) -> Reply:
        calls.append((prompt, temperature))
        return Reply(text=prompt.upper())

    @client.create_function(fn_id="wrapper", trigger=stepwise.TriggerEvent(event="x"))
    async def wrapper(ctx: stepwise.Context) -> Any:
        return await ctx.step.ai.wrap("call", call_model, "hi", temperature=0.1)

    async with App(client, [wrapper]) as app:
        ran = ops(await app.call(wrapper, call_body()))
        done = await app.call(wrapper, call_body(steps={h("call"): {"data": {"text": "HI"}}}))
    assert calls == [("hi", 0.1)]
    assert ran == [
        {
            "op": "StepRun",
            "id": h("call"),
            "name": "call",
            "displayName": "call",
            "opts": {"type": "step.ai.wrap", "input": ["hi", {"temperature": 0.1}]},
            "data": {"text": "HI"},
            "userland": {"id": "call", "index": 0},
        }
    ]
    assert loads(done.content) == {"text": "HI"}


async def test_wrap_in_a_def_handler() -> None:
    client = dev_client()

    @client.create_function(fn_id="wrapper", trigger=stepwise.TriggerEvent(event="x"))
    def wrapper(ctx: stepwise.SyncContext) -> Any:
        return ctx.step.ai.wrap("call", lambda n: {"n": n + 1}, 41)

    async with App(client, [wrapper]) as app:
        [op] = ops(await app.call(wrapper, call_body()))
    assert (op["op"], op["data"], op["opts"]["input"]) == ("StepRun", {"n": 42}, [41])


def body_of(model: ai.Model[Any, Any], body: dict[str, Any]) -> dict[str, Any]:
    return model.gateway_options(body)


@pytest.mark.parametrize(
    ("make", "env", "expected"),
    [
        (
            lambda: ai.openai("gpt-4o"),
            {"OPENAI_API_KEY": "sk-env"},
            ("openai-chat", "https://api.openai.com/v1/chat/completions", "sk-env", {}),
        ),
        (
            lambda: ai.openai_responses("gpt-4.1", base_url="http://llm.local/v1/"),
            {"OPENAI_API_KEY": "sk-env"},
            ("openai-responses", "http://llm.local/v1/responses", "sk-env", {}),
        ),
        (
            lambda: ai.anthropic("claude", max_tokens=10, beta_headers=["b1", "b2"]),
            {"ANTHROPIC_API_KEY": "ak-env"},
            (
                "anthropic",
                "https://api.anthropic.com/v1/messages",
                "ak-env",
                {"anthropic-version": "2023-06-01", "anthropic-beta": "b1,b2"},
            ),
        ),
        (
            lambda: ai.gemini("gemini-2.5-flash"),
            {"GOOGLE_API_KEY": "g-env"},
            (
                "gemini",
                "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent",
                "g-env",
                {},
            ),
        ),
        (
            lambda: ai.grok("grok-4"),
            {"XAI_API_KEY": "x-env"},
            ("grok", "https://api.x.ai/v1/chat/completions", "x-env", {}),
        ),
        (
            lambda: ai.deepseek("deepseek-chat"),
            {"DEEPSEEK_API_KEY": "d-env"},
            ("openai-chat", "https://api.deepseek.com/v1/chat/completions", "d-env", {}),
        ),
        (
            lambda: ai.azure_openai("my-gpt", endpoint="https://res.openai.azure.com"),
            {"AZURE_OPENAI_API_KEY": "az-env", "OPENAI_API_VERSION": "2025-01-01"},
            (
                "azure-openai",
                "https://res.openai.azure.com/openai/deployments/my-gpt/chat/completions?api-version=2025-01-01",
                "az-env",
                {},
            ),
        ),
        (
            lambda: ai.openai_compatible("llama3", base_url="http://127.0.0.1:11434/v1"),
            {},
            ("openai-chat", "http://127.0.0.1:11434/v1/chat/completions", "", {}),
        ),
    ],
    ids=[
        "openai",
        "openai-responses",
        "anthropic",
        "gemini",
        "grok",
        "deepseek",
        "azure",
        "compatible",
    ],
)
def test_adapters_build_the_request_the_official_sdks_build(
    make: Any,
    env: dict[str, str],
    expected: tuple[str, str, str, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "GEMINI_API_KEY",
        "GOOGLE_API_KEY",
        "XAI_API_KEY",
        "DEEPSEEK_API_KEY",
        "AZURE_OPENAI_API_KEY",
        "OPENAI_API_VERSION",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    model = make()
    bodies = {
        "openai-responses": {"input": "hi"},
        "anthropic": {"messages": [{"role": "user", "content": "hi"}]},
        "gemini": {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
    }
    opts = model.gateway_options(bodies.get(model.format, CHAT_BODY))
    assert (opts["format"], opts["url"], opts["auth_key"], opts["headers"]) == expected
    if model.format == "gemini":
        assert "model" not in opts["body"]  # the URL names it
    elif model.format == "azure-openai":
        assert "model" not in opts["body"]  # the deployment names it
    else:
        assert opts["body"]["model"] == model.model
    if model.format == "anthropic":
        assert opts["body"]["max_tokens"] == 10


def test_a_model_without_a_key_says_where_to_put_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    model = ai.anthropic("claude", max_tokens=5)
    body = {"messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(stepwise.ConfigError, match="ANTHROPIC_API_KEY"):
        model.gateway_options(body)
    # The variable is read when the model is used, so it may be set after the model is made.
    monkeypatch.setenv("ANTHROPIC_API_KEY", "ak-later")
    assert model.gateway_options(body)["auth_key"] == "ak-later"
    assert "sk-" not in repr(ai.openai("gpt-4o", api_key="sk-hidden"))


def test_gemini_bodies_accept_either_spelling_and_send_camel_case() -> None:
    model = ai.gemini("gemini-2.5-flash", api_key="g")
    body = model.request_body(
        {
            "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "system_instruction": {"parts": [{"text": "be brief"}]},
            "generationConfig": {"temperature": 0},
        }
    )
    assert body == {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "generationConfig": {"temperature": 0},
    }
    answer = model.parse_response(
        {
            "candidates": [{"content": {"role": "model", "parts": [{"text": "ok"}]}}],
            "usageMetadata": {"totalTokenCount": 3},
        }
    )
    assert answer.text == "ok" and answer.usage_metadata is not None
    assert answer.usage_metadata.total_token_count == 3


def test_typed_answers_have_their_text() -> None:
    message = ai.Message.model_validate(
        {
            "content": [
                {"type": "text", "text": "a"},
                {"type": "tool_use", "id": "t"},
                {"type": "text", "text": "b"},
            ]
        }
    )
    assert message.text == "ab"
    response = ai.Response.model_validate(
        {
            "output": [
                {"type": "reasoning", "id": "r"},
                {"type": "message", "content": [{"type": "output_text", "text": "yes"}]},
            ]
        }
    )
    assert response.output_text == "yes"
    assert ai.ChatCompletion.model_validate({"choices": []}).text == ""


def test_a_typed_body_is_accepted_as_is() -> None:
    model = ai.openai("gpt-4o", api_key="k")
    request = ai.ChatCompletionRequest(messages=[ai.ChatMessage(role="user", content="hi")], seed=3)
    assert model.request_body(request) == {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "hi"}],
        "seed": 3,
    }

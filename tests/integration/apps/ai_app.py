"""A Stepwise SDK app whose functions call models through ``ctx.step.ai``.

``infer`` (``async def``) and ``infer-sync`` (``def``) have the server call the provider
named in the event with the event's prompt, one model per adapter, all pointed at the
test's local providers (``STEPWISE_TEST_PROVIDERS``); keys come from the providers' usual
environment variables. ``wrap`` makes an OpenAI-compatible call itself inside
``ctx.step.ai.wrap`` and records each time it really ran.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import uvicorn

import stepwise
from stepwise import ai
from stepwise.adapters.starlette import app as asgi_app

SERVER = os.environ["STEPWISE_TEST_SERVER"]
PROVIDERS = os.environ["STEPWISE_TEST_PROVIDERS"]
LEDGER = os.environ["STEPWISE_TEST_LEDGER"]
SIGNING_KEY = os.environ.get("STEPWISE_TEST_SIGNING_KEY")

client = stepwise.Stepwise(
    app_id="ai",
    is_production=bool(SIGNING_KEY),
    signing_key=SIGNING_KEY,
    event_key="test-event-key",
    api_base_url=SERVER,
    event_api_base_url=SERVER,
)

MODELS: dict[str, ai.Model[Any, Any]] = {
    "openai": ai.openai("gpt-test", base_url=f"{PROVIDERS}/openai/v1"),
    "openai-responses": ai.openai_responses("gpt-test", base_url=f"{PROVIDERS}/openai/v1"),
    "anthropic": ai.anthropic("claude-test", max_tokens=64, base_url=f"{PROVIDERS}/anthropic/v1"),
    "gemini": ai.gemini("gemini-test", base_url=f"{PROVIDERS}/gemini/v1beta"),
    "grok": ai.grok("grok-test", base_url=f"{PROVIDERS}/xai/v1"),
    "deepseek": ai.deepseek("deepseek-test", base_url=f"{PROVIDERS}/deepseek/v1"),
    "azure": ai.azure_openai("gpt-deploy", endpoint=f"{PROVIDERS}/azure", api_version="2024-10-21"),
    "compatible": ai.openai_compatible("llama-test", base_url=f"{PROVIDERS}/local/v1"),
}


def body_for(provider: str, prompt: str) -> dict[str, Any]:
    if provider == "openai-responses":
        return {"input": prompt}
    if provider == "gemini":
        return {"contents": [{"role": "user", "parts": [{"text": prompt}]}]}
    return {"messages": [{"role": "user", "content": prompt}]}


def text_of(answer: Any) -> str:
    if isinstance(answer, ai.Response):
        return answer.output_text
    return str(answer.text)


def failure(exc: stepwise.InferenceError) -> dict[str, Any]:
    return {"error": exc.name, "status": exc.status, "body": exc.body, "message": exc.message}


@client.create_function(fn_id="infer", trigger=stepwise.TriggerEvent(event="ai/infer"), retries=1)
async def infer(ctx: stepwise.Context) -> dict[str, Any]:
    provider, prompt = ctx.event.data["provider"], ctx.event.data["prompt"]
    try:
        answer = await ctx.step.ai.infer(
            "ask", model=MODELS[provider], body=body_for(provider, prompt)
        )
    except stepwise.InferenceError as exc:
        return failure(exc)
    return {"text": text_of(answer), "type": type(answer).__name__}


@client.create_function(
    fn_id="infer-sync", trigger=stepwise.TriggerEvent(event="ai/infer.sync"), retries=1
)
def infer_sync(ctx: stepwise.SyncContext) -> dict[str, Any]:
    provider, prompt = ctx.event.data["provider"], ctx.event.data["prompt"]
    try:
        answer = ctx.step.ai.infer("ask", model=MODELS[provider], body=body_for(provider, prompt))
    except stepwise.InferenceError as exc:
        return failure(exc)
    return {"text": text_of(answer), "type": type(answer).__name__}


async def chat_here(prompt: str, *, model: str) -> ai.ChatCompletion:
    """A model call the app makes itself (as with any provider's own SDK)."""
    with Path(LEDGER).open("a") as f:  # noqa: ASYNC230 - one short line, in a test app
        f.write(json.dumps({"kind": "wrap", "prompt": prompt}) + "\n")
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{PROVIDERS}/local/v1/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": prompt}]},
        )
    return ai.ChatCompletion.model_validate(response.json())


@client.create_function(fn_id="wrap", trigger=stepwise.TriggerEvent(event="ai/wrap"), retries=1)
async def wrap(ctx: stepwise.Context) -> dict[str, Any]:
    answer = await ctx.step.ai.wrap("chat", chat_here, ctx.event.data["prompt"], model="llama")
    await ctx.step.sleep("pause", 0.5)
    return {"wrapped": answer["choices"][0]["message"]["content"]}


app = asgi_app(client, [infer, infer_sync, wrap])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")

"""An app served by the official Inngest Python SDK (PyPI ``inngest``) whose one function
calls a model with its ``step.ai.infer``, through our server's AI gateway.

Every adapter the SDK has (``inngest.experimental.ai``) points at the test's local
providers (``STEPWISE_TEST_PROVIDERS``); an OpenAI adapter without a key stands for an
OpenAI-compatible local server.
"""

from __future__ import annotations

import os
from typing import Any

import inngest
import inngest.fast_api
import uvicorn
from fastapi import FastAPI
from inngest.experimental.ai import anthropic, deepseek, gemini, grok, openai

SERVER = os.environ["STEPWISE_TEST_SERVER"]
PROVIDERS = os.environ["STEPWISE_TEST_PROVIDERS"]

client = inngest.Inngest(
    app_id="official-py-ai",
    is_production=False,
    api_base_url=SERVER,
    event_api_base_url=SERVER,
)

ADAPTERS: dict[str, Any] = {
    "openai": openai.Adapter(
        auth_key=os.environ["OPENAI_API_KEY"], base_url=f"{PROVIDERS}/openai/v1", model="gpt-test"
    ),
    "anthropic": anthropic.Adapter(
        auth_key=os.environ["ANTHROPIC_API_KEY"],
        base_url=f"{PROVIDERS}/anthropic/v1",
        model="claude-test",
    ),
    "gemini": gemini.Adapter(
        auth_key=os.environ["GEMINI_API_KEY"],
        base_url=f"{PROVIDERS}/gemini/v1beta",
        model="gemini-test",
    ),
    "grok": grok.Adapter(
        auth_key=os.environ["XAI_API_KEY"], base_url=f"{PROVIDERS}/xai/v1", model="grok-test"
    ),
    "deepseek": deepseek.Adapter(
        auth_key=os.environ["DEEPSEEK_API_KEY"],
        base_url=f"{PROVIDERS}/deepseek/v1",
        model="deepseek-test",
    ),
    "compatible": openai.Adapter(auth_key="", base_url=f"{PROVIDERS}/local/v1", model="llama-test"),
}


def text_of(provider: str, answer: dict[str, Any]) -> str:
    if provider == "anthropic":
        return "".join(block["text"] for block in answer["content"] if block["type"] == "text")
    if provider == "gemini":
        return "".join(part["text"] for part in answer["candidates"][0]["content"]["parts"])
    return str(answer["choices"][0]["message"]["content"])


@client.create_function(fn_id="infer", trigger=inngest.TriggerEvent(event="ai/infer"), retries=1)
async def infer(ctx: inngest.Context) -> dict[str, Any]:
    provider, prompt = ctx.event.data["provider"], str(ctx.event.data["prompt"])
    if provider == "gemini":
        body: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": prompt}]}]}
    else:
        body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": 64}
    try:
        answer = await ctx.step.ai.infer("ask", adapter=ADAPTERS[provider], body=body)
    except inngest.StepError as exc:
        return {"error": exc.name, "message": exc.message}
    return {"text": text_of(provider, answer)}


app = FastAPI()
inngest.fast_api.serve(app, client, [infer])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")

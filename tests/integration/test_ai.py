"""``step.ai.infer`` through the real server's AI gateway, with our SDK, against local
servers that speak each provider's format (``support/providers.py``); and ``step.ai.wrap``.

Every adapter is run through four cases at once (one run per provider): a success, a 400,
a 429 answered with ``Retry-After`` and then a success, and a provider that does not answer
within the server's ``--outbound-timeout``. Then: nothing the server keeps or shows holds an
API key, and in production the gateway goes through the same destination guard as
``step.fetch``.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stepwise.protocol import hash_step_id
from support.harness import Stack, wait_until
from support.providers import PROVIDERS, RETRY_AFTER_S, Providers, success_body

TIMEOUT_S = 2
SIGNING_KEY = "signkey-prod-" + "3c" * 32


def new_keys() -> dict[str, str]:
    token = secrets.token_hex(12)
    keys = {
        "openai": f"sk-openai-{token}",
        "anthropic": f"sk-ant-{token}",
        "gemini": f"AIza-gemini-{token}",
        "grok": f"xai-{token}",
        "deepseek": f"sk-deepseek-{token}",
        "azure": f"azure-{token}",
    }
    keys["openai-responses"] = keys["openai"]
    return keys


KEY_ENV = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "grok": "XAI_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
    "azure": "AZURE_OPENAI_API_KEY",
}
TYPES = {
    "openai-responses": "Response",
    "anthropic": "Message",
    "gemini": "GenerateContentResponse",
}


@pytest.fixture(scope="module")
def providers(backend: str) -> Iterator[Providers]:
    with Providers(new_keys()) as p:
        yield p


def ai_stack(
    tmp: Path, providers: Providers, *args: str, env: dict[str, str] | None = None, **fields: Any
) -> Stack:
    """The server (with ``args`` after ``--retry-interval 1``) and ``ai_app``, which finds
    the providers and each one's key in its usual variable."""
    keys = {name: providers.keys[provider] for provider, name in KEY_ENV.items()}
    return Stack(
        tmp,
        "ai_app",
        app_env={**keys, "STEPWISE_TEST_PROVIDERS": providers.url, **(env or {})},
        server_args=["--retry-interval", "1", *args],
        functions=3,
        **fields,
    )


@pytest.fixture(scope="module")
def stack(
    backend: str, providers: Providers, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    args = ("--outbound-timeout", str(TIMEOUT_S))
    with ai_stack(tmp_path_factory.mktemp("ai"), providers, *args) as s:
        yield s


def run_everywhere(
    stack: Stack, word: str, event: str = "ai/infer"
) -> dict[str, tuple[str, dict[str, Any]]]:
    """One run per provider with a prompt starting with ``word``: provider -> (prompt, run)."""
    sent = {}
    for provider in PROVIDERS:
        prompt = f"{word} {provider} {uuid.uuid4().hex[:8]}"
        sent[provider] = (
            prompt,
            stack.server.send(event, {"provider": provider, "prompt": prompt}),
        )
    return {
        provider: (prompt, stack.server.wait_for_run(event_id, timeout=60))
        for provider, (prompt, event_id) in sent.items()
    }


def step_history(stack: Stack, run: dict[str, Any]) -> list[dict[str, Any]]:
    return [h for h in stack.server.history(run["run_id"]) if h["name"] == "ask"]


@pytest.mark.parametrize("event", ["ai/infer", "ai/infer.sync"], ids=["async-def", "def"])
def test_every_adapter_gets_its_answer_through_the_server(
    stack: Stack, providers: Providers, event: str
) -> None:
    for provider, (prompt, run) in run_everywhere(stack, "ok", event).items():
        assert run["status"] == "Completed", stack.logs()
        assert run["output"] == {
            "text": f"echo: {prompt}",
            "type": TYPES.get(provider, "ChatCompletion"),
        }, provider
        [request] = providers.to(provider, prompt)  # made once, by the server
        if provider == "compatible":  # no key given, none sent
            assert "authorization" not in request.request.headers
        history = step_history(stack, run)
        assert [(h["kind"], h["attempt"]) for h in history] == [
            ("StepPlanned", None),
            ("StepCompleted", 0),
        ]
        planned, completed = history
        # The request as sent, less its key; the answer in full, as the provider gave it.
        assert planned["type"] == "step.ai.infer"
        assert planned["request"]["body"] == request.body
        assert planned["request"]["auth_key"] == ("" if provider == "compatible" else "[redacted]")
        assert completed["output"] == success_body(provider, f"echo: {prompt}")


def test_a_4xx_answer_fails_the_step_at_once_with_the_providers_status_and_body(
    stack: Stack, providers: Providers
) -> None:
    for provider, (prompt, run) in run_everywhere(stack, "reject").items():
        output = run["output"]
        assert output["error"] == "AIGatewayError", (provider, output)
        assert output["status"] == 400
        assert "the request is not valid" in repr(output["body"])  # the provider's own body
        assert "HTTP 400" in output["message"]
        assert len(providers.to(provider, prompt)) == 1  # a 400 is not retried
        kinds = [(h["kind"], h["attempt"]) for h in step_history(stack, run)]
        assert kinds == [("StepPlanned", None), ("StepFailed", 0)]


def test_a_429_is_retried_no_sooner_than_its_retry_after(
    stack: Stack, providers: Providers
) -> None:
    for provider, (prompt, run) in run_everywhere(stack, "busy").items():
        assert run["output"]["text"] == f"echo: {prompt}", (provider, run["output"])
        first, second = providers.to(provider, prompt)
        # The server's own backoff here is 1 s (--retry-interval): the provider asked for 2.
        assert second.at - first.at >= RETRY_AFTER_S - 0.05
        history = step_history(stack, run)
        assert [(h["kind"], h["attempt"]) for h in history] == [
            ("StepPlanned", None),
            ("StepErrored", 0),
            ("StepCompleted", 1),
        ]
        assert history[1]["error"]["status"] == 429


def test_a_provider_past_the_timeout_is_retried_then_fails(
    stack: Stack, providers: Providers
) -> None:
    for provider, (prompt, run) in run_everywhere(stack, "slow").items():
        output = run["output"]
        assert output["error"] == "AIGatewayError", (provider, output)
        assert output["status"] is None and f"within {TIMEOUT_S} s" in output["message"]
        assert len(providers.to(provider, prompt)) == 2  # retries=1: two attempts
        kinds = [(h["kind"], h["attempt"]) for h in step_history(stack, run)]
        assert kinds == [("StepPlanned", None), ("StepErrored", 0), ("StepFailed", 1)]


def test_wrap_records_the_call_made_in_the_app_with_its_input(
    stack: Stack, providers: Providers
) -> None:
    prompt = f"ok wrapped {uuid.uuid4().hex[:8]}"
    run = stack.server.wait_for_run(stack.server.send("ai/wrap", {"prompt": prompt}), timeout=30)
    assert run["output"] == {"wrapped": f"echo: {prompt}"}, stack.logs()
    # Made once by the app, and not again on the replays after the sleep.
    assert stack.app.ledger_of("wrap", prompt=prompt) == [{"kind": "wrap", "prompt": prompt}]
    [completed] = [
        h
        for h in stack.server.history(run["run_id"])
        if h["kind"] == "StepCompleted" and h["name"] == "chat"
    ]
    assert completed["type"] == "step.ai.wrap"
    assert completed["input"] == [prompt, {"model": "llama"}]
    assert completed["output"]["choices"][0]["message"]["content"] == f"echo: {prompt}"


def test_no_api_key_is_stored_or_shown(stack: Stack, providers: Providers) -> None:
    """After runs of every provider (successes, errors, retries), no table of the server's
    database, no API answer and no dashboard page holds any of the keys that were sent."""
    server = stack.server
    # While a request is in flight its job holds the key (the only copy the server keeps):
    # the scan below would find it there, and does not once the step has settled.
    slow = f"slow held {uuid.uuid4().hex[:8]}"
    held = server.send("ai/infer", {"provider": "anthropic", "prompt": slow})
    wait_until(lambda: providers.to("anthropic", slow), timeout=20, what="the slow request")
    assert providers.keys["anthropic"] in repr(server.query("SELECT * FROM jobs"))
    runs = [server.wait_for_run(held, timeout=30)]
    runs += [run for _, run in run_everywhere(stack, "ok").values()]
    runs += [run for _, run in run_everywhere(stack, "busy").values()]
    runs += [run for _, run in run_everywhere(stack, "reject").values()]
    keys = {key for provider, key in providers.keys.items() if provider != "compatible"}
    # The keys did travel: each provider checked its own before answering.
    assert all(r["status"] == "Completed" for r in runs)
    assert {a.provider for a in providers.arrivals} == set(PROVIDERS)

    tables = server.tables()
    assert "history" in tables and "steps" in tables and "jobs" in tables
    for table in tables:
        dump = repr(server.query(f"SELECT * FROM {table}"))
        for key in keys:
            assert key not in dump, f"an API key is stored in table {table}"

    pages = ["/v1/runs", "/v1/events", "/runs"]
    for run in runs:
        run_id = run["run_id"]
        pages += [f"/v1/runs/{run_id}", f"/v1/runs/{run_id}/history", f"/v0/runs/{run_id}/actions"]
        pages.append(f"/runs/{run_id}")
    for page in pages:
        response = server.http.get(page)
        assert response.status_code == 200, page
        for key in keys:
            assert key not in response.text, f"an API key is shown by {page}"
    for key in keys:
        assert key not in server.log()


@pytest.fixture
def production(
    backend: str, providers: Providers, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("ai-production")
    s = ai_stack(tmp, providers, env={"STEPWISE_TEST_SIGNING_KEY": SIGNING_KEY})
    s.server.production(signing_key=SIGNING_KEY, event_key="test-event-key")
    with s:
        yield s


def test_in_production_the_gateway_refuses_a_loopback_provider(
    production: Stack, providers: Providers
) -> None:
    """The same guard as ``step.fetch``: a loopback destination is refused unless
    ``--outbound-allow`` names it, at once, without a retry and without a request."""
    prompt = f"ok guarded {uuid.uuid4().hex[:8]}"
    event_id = production.server.send("ai/infer", {"provider": "openai", "prompt": prompt})
    run = production.server.wait_for_run(event_id, timeout=30)
    output = run["output"]
    assert output["error"] == "AIGatewayError", production.logs()
    assert "refused to connect" in output["message"] and "loopback" in output["message"]
    assert providers.to("openai", prompt) == []
    kinds = [(h["kind"], h["attempt"]) for h in step_history(production, run)]
    assert kinds == [("StepPlanned", None), ("StepFailed", 0)]


def test_a_server_killed_between_the_answer_and_its_commit_asks_again_once(
    backend: str, providers: Providers, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The provider's answer, the step's history and the run's next call commit in one
    transaction: a server killed after the answer came but before that commit has stored
    none of them, so after a restart the request is made again, once, and the run ends
    with one result for the step."""
    s = ai_stack(
        tmp_path_factory.mktemp("ai-crash"),
        providers,
        "--lease-seconds",
        "2",
        server_env={"STEPWISE_FAULTS": "commit.ai_gateway=crash"},
    )
    with s:
        server = s.server
        prompt = f"ok crash {uuid.uuid4().hex[:8]}"
        event_id = server.send("ai/infer", {"provider": "anthropic", "prompt": prompt})
        assert server.proc is not None
        assert server.proc.wait(timeout=30) == -9, s.logs()  # SIGKILL at the fault point
        assert len(providers.to("anthropic", prompt)) == 1
        assert (
            server.query("SELECT step_id FROM steps WHERE step_id = ?", (hash_step_id("ask"),))
            == []
        )

        del server.env["STEPWISE_FAULTS"]
        server.start_and_wait()
        run = server.wait_for_run(event_id, timeout=60)
        assert run["output"] == {"text": f"echo: {prompt}", "type": "Message"}, s.logs()
        assert len(providers.to("anthropic", prompt)) == 2  # the one step in flight, once more
        kinds = [h["kind"] for h in step_history(s, run)]
        assert kinds == ["StepPlanned", "StepCompleted"]

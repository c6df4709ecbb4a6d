"""The official SDKs' ``step.ai.infer`` (PyPI ``inngest``, npm ``inngest`` 4.x) runs
unchanged against our server's AI gateway.

Each SDK's app calls every model adapter it has, pointed at local servers that speak each
provider's format (``support/providers.py``), in the four cases of ``tests/integration/
test_ai.py``: a success (the SDK reads the provider's JSON as it is), a 400 (the SDK raises
the ``AIGatewayError`` the server stored, at once), a 429 with ``Retry-After`` (retried, then
a success) and a provider past ``--outbound-timeout`` (retried, then the error). The runs
of one SDK all go at once.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.harness import REPO, AppProcess, ServerProcess, free_port
from support.providers import PROVIDERS, Providers

JS_DIR = REPO / "tests" / "interop" / "js"
TIMEOUT_S = 2

KEYS = {
    "openai": "sk-openai-interop-7f1c",
    "anthropic": "sk-ant-interop-7f1c",
    "gemini": "AIza-interop-7f1c",
    "grok": "xai-interop-7f1c",
    "deepseek": "sk-deepseek-interop-7f1c",
    "azure": "azure-interop-7f1c",
}
KEYS["openai-responses"] = KEYS["openai"]
KEY_ENV = {
    "OPENAI_API_KEY": KEYS["openai"],
    "ANTHROPIC_API_KEY": KEYS["anthropic"],
    "GEMINI_API_KEY": KEYS["gemini"],
    "XAI_API_KEY": KEYS["grok"],
    "DEEPSEEK_API_KEY": KEYS["deepseek"],
    "AZURE_OPENAI_API_KEY": KEYS["azure"],
}

# Each SDK's adapters: the Python SDK has no Responses API and no Azure model.
PEERS = [
    pytest.param(
        ("official_py_ai", ["openai", "anthropic", "gemini", "grok", "deepseek", "compatible"]),
        id="python-sdk",
    ),
    pytest.param(("ai.mjs", list(PROVIDERS)), id="js-sdk"),
]


@contextlib.contextmanager
def peer_stack(
    tmp_path: Path, module: str, providers: Providers
) -> Iterator[tuple[ServerProcess, AppProcess]]:
    if module.endswith(".mjs"):
        if not (JS_DIR / "node_modules" / "inngest").is_dir():
            pytest.fail(f"the JS SDK is not installed: run `npm ci --prefix {JS_DIR}`")
        assert shutil.which("node"), "Node.js is required for the JS interop tests"
    port = free_port()
    env = {**KEY_ENV, "STEPWISE_TEST_PROVIDERS": providers.url}
    app = AppProcess(tmp_path, module, server_url=f"http://127.0.0.1:{port}", extra_env=env)
    server = ServerProcess(
        tmp_path,
        port=port,
        sdk_urls=[app.url],
        extra_args=["--retry-interval", "1", "--outbound-timeout", str(TIMEOUT_S)],
    )
    try:
        app.start_and_wait()
        server.start_and_wait()
        server.wait_for_functions(1)
        yield server, app
    finally:
        app.stop()
        server.close()


@pytest.mark.parametrize("peer", PEERS)
def test_official_step_ai_infer_through_the_gateway(
    peer: tuple[str, list[str]], tmp_path: Path
) -> None:
    module, adapters = peer
    with Providers(KEYS) as providers, peer_stack(tmp_path, module, providers) as (server, app):
        sent: dict[tuple[str, str], tuple[str, str]] = {}
        for provider in adapters:
            for word in ("ok", "reject", "busy", "slow"):
                prompt = f"{word} {provider} {uuid.uuid4().hex[:8]}"
                event_id = server.send("ai/infer", {"provider": provider, "prompt": prompt})
                sent[provider, word] = (prompt, event_id)
        runs: dict[tuple[str, str], dict[str, Any]] = {
            case: server.wait_for_run(event_id, timeout=90) for case, (_, event_id) in sent.items()
        }
        logs = server.log()[-4000:] + app.log()[-4000:]
        for (provider, word), run in runs.items():
            prompt = sent[provider, word][0]
            output = run["output"]
            assert run["status"] == "Completed", (provider, word, run, logs)
            reached = providers.to(provider, prompt)
            if word in ("ok", "busy"):
                # The SDK got the provider's own JSON and read its text from it.
                assert output == {"text": f"echo: {prompt}"}, (provider, word, output, logs)
                assert len(reached) == (1 if word == "ok" else 2)
            else:
                assert output["error"] == "AIGatewayError", (provider, word, output, logs)
                if word == "reject":
                    assert "HTTP 400" in output["message"] and len(reached) == 1
                else:
                    assert f"within {TIMEOUT_S} s" in output["message"] and len(reached) == 2
        # The keys went where each provider wants them (the fakes check), and not to the
        # server's history.
        for key in {KEYS[p] for p in adapters if p in KEYS}:
            assert key not in repr(server.query("SELECT * FROM history"))
            assert key not in repr(server.query("SELECT * FROM steps"))

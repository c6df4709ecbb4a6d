"""What an app of the official SDKs was asked and answered, read from its ledger.

The apps ``tests/integration/apps/official_py_exact.py`` and ``tests/interop/js/exact.mjs``
write one ``call`` line per call request they answer (the function and step asked for,
the run, the attempt, and the status and body of the answer) and one ``hook`` line per
middleware ``transform_input`` / ``transformFunctionInput``. These helpers read them back
for the tests that hold our server to the reference server's exact results.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from .harness import TERMINAL, Stack

PY_APP = ("official_py_exact", "exact-py", 18)  # module, app id, synced functions
JS_APP = ("exact.mjs", "exact-js", 12)


def exact_stack(tmp: Path, app: tuple[str, str, int]) -> Stack:
    """The server (retries 1 s apart, so retry cases stay short) and one recording app."""
    module, _, functions = app
    return Stack(tmp, module, server_args=["--retry-interval", "1"], functions=functions)


def trigger(stack: Stack, name: str, timeout: float = 60, **data: Any) -> dict[str, Any]:
    """Send ``exact/<name>`` and wait for the end of the run it starts."""
    data.setdefault("token", uuid.uuid4().hex)
    event_id = stack.server.send(f"exact/{name}", data)
    return stack.server.wait_for_run(event_id, timeout=timeout)


def calls(stack: Stack, run_id: str) -> list[dict[str, Any]]:
    """Every call request of one run the app answered, in the order it answered them."""
    return stack.app.ledger_of("call", run_id=run_id)


def hooks(stack: Stack, run_id: str) -> list[dict[str, Any]]:
    return stack.app.ledger_of("hook", run_id=run_id)


def child_run_id(stack: Stack, function_id: str, parent_run_id: str) -> str:
    """The run of ``function_id`` that ``parent_run_id`` invoked (the parent passes its id)."""
    runs = {
        c["run_id"]
        for c in stack.app.ledger_of("call", fn=function_id)
        if (c["event"]["data"] or {}).get("parent") == parent_run_id
    }
    assert len(runs) == 1, f"expected one child run of {parent_run_id}, found {sorted(runs)}"
    return runs.pop()


def ops(call: dict[str, Any]) -> list[str]:
    """The op names of a 206 answer, e.g. ``["StepPlanned:p1", "StepPlanned:p2"]``."""
    body = call["body"]
    if call["status"] != 206 or not isinstance(body, list):
        return []
    return [f"{op.get('op')}:{op.get('displayName') or op.get('name')}" for op in body]


def summary(run_calls: list[dict[str, Any]]) -> list[str]:
    """One line a call, for assertion messages: step asked for, attempt, status, ops."""
    out = []
    for c in run_calls:
        step = c["step"] if c["step"] == "step" else f"target {c['step'][:8]}"
        answer = ",".join(ops(c)) or str(c["body"])[:120]
        out.append(f"{step} attempt={c['attempt']} -> {c['status']} {answer}")
    return out


def final_answer(stack: Stack, run_id: str) -> dict[str, Any]:
    """The last call of a failed run: the answer whose body the run's output must be."""
    run_calls = calls(stack, run_id)
    assert run_calls, f"the app answered no call of run {run_id}"
    last = run_calls[-1]
    assert last["status"] >= 400, summary(run_calls)
    return last


def send_until_run_ends(
    stack: Stack, run_id: str, name: str, data: dict[str, Any], timeout: float = 30
) -> dict[str, Any]:
    """Send an event again and again until the run ends: the first may come before the wait.

    Extra copies resume nothing, since a wait is resumed once and no function is
    triggered by them.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.server.send(name, data)
        for _ in range(10):
            run = stack.server.run(run_id)
            if run["status"] in TERMINAL:
                return run
            time.sleep(0.1)
    raise TimeoutError(f"run {run_id} did not end after sending {name} for {timeout}s")

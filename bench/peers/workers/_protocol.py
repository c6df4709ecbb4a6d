"""What every peer's worker script shares (standard library only: it runs in the peer's
own virtualenv, where Stepwise is not installed).

A worker script is called as ``python <peer>.py b1 --events N ...`` or ``... b2 --steps S``
and prints one JSON object as its last line of output:

* B1: ``{"version": ..., "samples": [[submitted_ms, ended_ms], ...], "failed": k}`` — one
  pair per run that completed, in epoch milliseconds;
* B2: ``{"version": ..., "step_times": [ms, ...]}`` — when each step's body ran, in order.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any


def parse_args(description: str, **connections: str) -> argparse.Namespace:
    """``workload`` (b1|b2), ``--events``, ``--steps`` and one option per connection."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("workload", choices=["b1", "b2", "worker"])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--steps", type=int, default=100)
    for name, default in connections.items():
        parser.add_argument(f"--{name}", default=default)
    return parser.parse_args()


def now_ms() -> float:
    return time.time() * 1000


def emit(result: dict[str, Any]) -> None:
    print(json.dumps(result), flush=True)

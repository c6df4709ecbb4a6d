"""Named fault points, for tests that make the server fail at one exact place.

``STEPWISE_FAULTS`` lists points and what happens there, comma-separated:

* ``point=N``: ``hit(point)`` raises ``InjectedFault`` the first N times it is reached;
* ``point=always``: it raises every time;
* ``point=crash``: the process kills itself with SIGKILL there, as ``kill -9`` would.

Unset (as in any real deployment) every ``hit`` is a dictionary lookup that finds nothing.
"""

from __future__ import annotations

import os
import signal

ENV = "STEPWISE_FAULTS"


class InjectedFault(RuntimeError):
    """Raised at a fault point a test armed."""


def _parse(spec: str) -> dict[str, str]:
    armed: dict[str, str] = {}
    for item in spec.split(","):
        point, _, action = item.strip().partition("=")
        if point:
            armed[point] = action or "always"
    return armed


_armed = _parse(os.environ.get(ENV, ""))
_hits: dict[str, int] = {}


def hit(point: str) -> None:
    """Fail here if a test armed ``point``."""
    action = _armed.get(point)
    if action is None:
        return
    if action == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    count = _hits.get(point, 0) + 1
    _hits[point] = count
    if action == "always" or (action.isdigit() and count <= int(action)):
        raise InjectedFault(f"fault injected at {point} (hit {count})")

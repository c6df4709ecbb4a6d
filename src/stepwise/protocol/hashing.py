"""Step-ID hashing: the wire ID of a step is the SHA-1 of its user ID (with repeat suffixes)."""

from __future__ import annotations

import hashlib

# The k-th repeat (k >= 1) of a user step ID within one replay is hashed as "<id>:<k>".
REPEAT_SEPARATOR = ":"


def hash_step_id(user_id: str) -> str:
    """Lower-case hex SHA-1 of the UTF-8 bytes of ``user_id``."""
    return hashlib.sha1(user_id.encode("utf-8")).hexdigest()


class StepIdCounter:
    """Assigns hashed IDs to step calls in discovery order within one replay.

    The first use of a user ID hashes the ID itself; later uses append ``:<k>``.
    An index already claimed by an explicit ID (e.g. a user ID that is literally
    ``"a:1"``) is skipped so that two calls never share a hash.
    """

    __slots__ = ("_next_index", "_used")

    def __init__(self) -> None:
        self._next_index: dict[str, int] = {}
        self._used: set[str] = set()

    def next_id(self, user_id: str) -> tuple[str, int]:
        """Return ``(hashed_id, index)`` for the next call with ``user_id``."""
        index = self._next_index.get(user_id, 0)
        while True:
            candidate = user_id if index == 0 else f"{user_id}{REPEAT_SEPARATOR}{index}"
            if candidate not in self._used:
                break
            index += 1
        self._used.add(candidate)
        self._next_index[user_id] = index + 1
        return hash_step_id(candidate), index


# Internal IDs the protocol reserves.
RUN_COMPLETE_ID = hash_step_id("complete")

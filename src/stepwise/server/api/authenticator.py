"""What a node remembers for auth: failed attempts per client, and API keys found lately.

A client address that fails ``limit`` times in ``period_ms`` is refused for a while,
whatever key it sends, so that keys cannot be guessed at speed. The failures are counted
in each node's memory with GCRA, as rate limits are: an attacker spreading guesses over N
nodes gets N times the rate, which is still far too slow to guess a 256-bit key.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..flow import gcra
from ..store.base import Store
from ..store.records import ApiKeyRecord

# How long a node trusts a key it found before looking again (so revocation takes this long).
KEY_CACHE_MS = 1000
# How often a key's ``last_used_at`` is written at most (per node).
LAST_USED_EVERY_MS = 60_000
# Past this many client addresses, those whose failures have all expired are forgotten.
_PRUNE_AT = 10_000


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class AuthFailures:
    """Failed authentications per client address, in this node's memory."""

    limit: int = 10
    period_ms: int = 60_000
    _tats: dict[str, int] = field(default_factory=dict)

    def retry_after_ms(self, client: str, now: int) -> int:
        """0 if ``client`` may try now, else how long until it may."""
        tat = self._tats.get(client)
        if gcra.allow(tat, now, self.limit, self.period_ms) is not None:
            return 0
        return gcra.next_allowed(tat, now, self.limit, self.period_ms) - now

    def record(self, client: str, now: int) -> None:
        tat = gcra.allow(self._tats.get(client), now, self.limit, self.period_ms)
        if tat is None:
            return  # already over: a refused attempt does not push the wait further
        if len(self._tats) >= _PRUNE_AT:
            # A TAT in the past is the same as none: a client who stopped failing long ago.
            self._tats = {c: t for c, t in self._tats.items() if t > now}
        self._tats[client] = tat


@dataclass
class ApiKeyCache:
    """Keys found recently, by hash, with the time (monotonic ms) until they are trusted."""

    _found: dict[str, tuple[ApiKeyRecord, float]] = field(default_factory=dict)

    async def find(self, store: Store, key_hash: str) -> ApiKeyRecord | None:
        clock = time.monotonic() * 1000
        hit = self._found.get(key_hash)
        if hit is not None and hit[1] > clock:
            return hit[0]
        self._found.pop(key_hash, None)
        key = await store.find_api_key(key_hash)
        if key is None:
            return None
        now = now_ms()
        if key.last_used_at is None or now - key.last_used_at >= LAST_USED_EVERY_MS:
            await store.touch_api_key(key.id, now)
        self._found[key_hash] = (key, clock + KEY_CACHE_MS)
        return key


@dataclass
class Authenticator:
    """This node's memory for auth: failures per client and the keys found recently."""

    failures: AuthFailures = field(default_factory=AuthFailures)
    keys: ApiKeyCache = field(default_factory=ApiKeyCache)

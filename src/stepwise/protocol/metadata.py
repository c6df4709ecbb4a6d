"""Run and step metadata on the wire: the kinds a server keeps, and how long a kind may be.

A kind is the user's (``userland.<name>``) or one of the server's ``inngest.*`` kinds
below; an SDK sends updates as ``{kind, op, values}`` (with ``scope`` on a step's op).
"""

from __future__ import annotations

INNGEST_KINDS = frozenset(
    {
        "inngest.ai",
        "inngest.http",
        "inngest.http.timing",
        "inngest.response_headers",
        "inngest.warnings",
        "inngest.experiment",
        "inngest.score",
    }
)
MAX_KIND_BYTES = 128

__all__ = ["INNGEST_KINDS", "MAX_KIND_BYTES"]

"""Run and step metadata: small JSON objects, by kind, shown with a run's history.

Inside a ``step.run`` body, ``ctx.metadata(values)`` goes out with the step's result, so
it is written once, with the result. Anywhere else, ``client.set_metadata(run_id, ...)``
sends it to the server (``POST /v1/runs/{run_id}/metadata``), on a run that ended too.
A kind is yours (``"default"`` is ``userland.default``) or one of the ``inngest.*`` kinds
the server knows (``inngest.score``, ``inngest.ai``, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from ..errors import ConfigError
from ..protocol import dumps
from ..protocol.metadata import INNGEST_KINDS, MAX_KIND_BYTES
from .current import step_metadata_var

MetadataScope = Literal["run", "step"]


def wire_kind(kind: str) -> str:
    """The kind as the server stores it: ``userland.<kind>`` unless it names one of ours."""
    if not isinstance(kind, str) or not kind:
        raise ConfigError("a metadata kind must be a non-empty string")
    if kind.startswith("inngest."):
        if kind not in INNGEST_KINDS:
            raise ConfigError(f"{kind!r} is not a metadata kind the server knows")
        full = kind
    else:
        full = kind if kind.startswith("userland.") else f"userland.{kind}"
    if len(full.encode()) > MAX_KIND_BYTES:
        raise ConfigError(f"a metadata kind is at most {MAX_KIND_BYTES} bytes")
    return full


def update(values: Mapping[str, Any], kind: str, scope: MetadataScope | None) -> dict[str, Any]:
    """One metadata update as it travels: ``{kind, op, values}`` (and ``scope`` on an op)."""
    if not isinstance(values, Mapping):
        raise ConfigError("metadata values must be a dict")
    shown = dict(values)
    try:
        dumps(shown)
    except TypeError as exc:
        raise ConfigError(f"metadata values are not JSON: {exc}") from exc
    out: dict[str, Any] = {"kind": wire_kind(kind), "op": "set", "values": shown}
    if scope is not None:
        out["scope"] = scope
    return out


class StepMetadata:
    """``ctx.metadata(values, kind="default", run=False)``, inside a ``step.run`` body.

    The update goes out with the step's result: on the step, or on the run with
    ``run=True``. A later update of the same kind replaces the earlier one.
    """

    __slots__ = ()

    def __call__(
        self, values: Mapping[str, Any], kind: str = "default", *, run: bool = False
    ) -> None:
        collected = step_metadata_var.get()
        if collected is None:
            raise ConfigError(
                "ctx.metadata works inside a step.run body, where it goes out with the"
                " step's result; elsewhere use client.set_metadata(run_id, ...)"
            )
        collected.append(update(values, kind, "run" if run else "step"))


__all__ = ["INNGEST_KINDS", "MetadataScope", "StepMetadata", "update", "wire_kind"]

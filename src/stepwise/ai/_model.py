"""``Model``: how one provider's request is built, and the types of its body and response.

A ``Model`` is what ``ctx.step.ai.infer`` takes: it turns the body into the ``AIGateway``
op's options (the URL, headers, key and format the server needs to make the request) and
the server's stored answer back into the provider's typed response.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import pydantic

from ..errors import ConfigError

RequestT = TypeVar("RequestT", bound=pydantic.BaseModel)
ResponseT = TypeVar("ResponseT", bound=pydantic.BaseModel)


class ProviderModel(pydantic.BaseModel):
    """Base of the request and response types: fields a provider adds later are kept."""

    model_config = pydantic.ConfigDict(extra="allow", populate_by_name=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class Model(Generic[RequestT, ResponseT]):
    """One model of one provider, as ``step.ai.infer`` calls it.

    Made by the adapters (``stepwise.ai.openai(...)``, ``anthropic(...)``, ...) rather than
    by hand. ``auth_key`` is not shown in ``repr``.
    """

    format: str
    """How the server authenticates and how the SDKs read the answer: ``openai-chat``,
    ``openai-responses``, ``anthropic``, ``gemini``, ``grok``, ``azure-openai``."""
    url: str
    model: str | None
    request_type: type[RequestT]
    response_type: type[ResponseT]
    auth_key: str = field(default="", repr=False)
    key_env: tuple[str, ...] = ()
    """Environment variables read for the key when none was given (first set wins)."""
    key_required: bool = True
    headers: Mapping[str, str] = field(default_factory=dict)
    default_parameters: Mapping[str, Any] = field(default_factory=dict)
    model_in_body: bool = True
    """False when the URL names the model (Gemini) and the body has no ``model`` field."""

    def key(self) -> str:
        """The API key: the one given, else the first of ``key_env`` that is set."""
        if self.auth_key:
            return self.auth_key
        for name in self.key_env:
            value = os.environ.get(name)
            if value:
                return value
        if self.key_required:
            where = " or ".join(self.key_env) or "no environment variable"
            raise ConfigError(
                f"{self.format} model {self.model!r} has no API key: pass api_key= or set {where}"
            )
        return ""

    def request_body(self, body: RequestT | Mapping[str, Any]) -> dict[str, Any]:
        """The body to send: defaults, then the given body over them, the model filled in,
        checked against ``request_type`` (a ``ConfigError`` says what is wrong)."""
        if isinstance(body, pydantic.BaseModel):
            given = body.model_dump(mode="json", by_alias=True, exclude_none=True)
        elif isinstance(body, Mapping):
            given = dict(body)
        else:
            raise ConfigError(
                f"step.ai.infer needs a body: a {self.request_type.__name__} or a dict, "
                f"not {type(body).__name__}"
            )
        merged = {**self.default_parameters, **given}
        if self.model_in_body and self.model and not merged.get("model"):
            merged["model"] = self.model
        try:
            checked = self.request_type.model_validate(merged)
        except pydantic.ValidationError as exc:
            raise ConfigError(
                f"the body is not a valid {self.request_type.__name__}: {exc}"
            ) from None
        dumped: dict[str, Any] = checked.model_dump(mode="json", by_alias=True, exclude_none=True)
        return dumped

    def gateway_options(self, body: RequestT | Mapping[str, Any]) -> dict[str, Any]:
        """The ``opts`` of the ``AIGateway`` op: the request the server makes."""
        return {
            "type": "step.ai.infer",
            "url": self.url,
            "headers": dict(self.headers),
            "auth_key": self.key(),
            "format": self.format,
            "body": self.request_body(body),
        }

    def parse_response(self, data: Any) -> ResponseT:
        """The provider's answer, as the server stored it, typed."""
        try:
            return self.response_type.model_validate(data)
        except pydantic.ValidationError as exc:
            raise ConfigError(
                f"the provider's answer is not a {self.response_type.__name__}: {exc}"
            ) from None


def join_url(base: str, path: str) -> str:
    """``path`` under ``base``, whether or not ``base`` ends in a slash."""
    return base.rstrip("/") + "/" + path.lstrip("/")


__all__ = ["Model", "ProviderModel", "RequestT", "ResponseT", "join_url"]

"""The model adapters: one function per provider, each returning a ``Model``.

Keys come from ``api_key=`` or, when it is not given, from the provider's usual
environment variable, read when the model is first used (so a module can define its
models before the environment is set). The URLs and the places of the key follow what
the official SDKs' adapters send, so a function can move between SDKs and servers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from ..errors import ConfigError
from ._anthropic import Message, MessagesRequest
from ._gemini import GenerateContentRequest, GenerateContentResponse
from ._model import Model, join_url
from ._openai import ChatCompletion, ChatCompletionRequest, Response, ResponseRequest

OPENAI_URL = "https://api.openai.com/v1"
ANTHROPIC_URL = "https://api.anthropic.com/v1"
ANTHROPIC_VERSION = "2023-06-01"
GEMINI_URL = "https://generativelanguage.googleapis.com/v1beta"
GROK_URL = "https://api.x.ai/v1"
DEEPSEEK_URL = "https://api.deepseek.com/v1"
AZURE_API_VERSION = "2024-10-21"

ChatModel = Model[ChatCompletionRequest, ChatCompletion]


def _check_model(model: str) -> None:
    if not isinstance(model, str) or not model:
        raise ConfigError("a model needs its name, e.g. model='gpt-4o'")


def _chat(
    fmt: str,
    model: str,
    base_url: str,
    api_key: str | None,
    key_env: tuple[str, ...],
    headers: Mapping[str, str] | None,
    default_parameters: Mapping[str, Any] | None,
    *,
    key_required: bool = True,
) -> ChatModel:
    _check_model(model)
    return Model(
        format=fmt,
        url=join_url(base_url, "chat/completions"),
        model=model,
        request_type=ChatCompletionRequest,
        response_type=ChatCompletion,
        auth_key=api_key or "",
        key_env=key_env,
        key_required=key_required,
        headers=dict(headers or {}),
        default_parameters=dict(default_parameters or {}),
    )


class ChatAdapter(Protocol):
    """The signature of ``openai``, ``grok`` and ``deepseek``."""

    def __call__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        headers: Mapping[str, str] | None = None,
        default_parameters: Mapping[str, Any] | None = None,
    ) -> ChatModel: ...


def _chat_adapter(
    name: str, fmt: str, base: str, key_env: str, doc: str, *, base_env: str | None = None
) -> ChatAdapter:
    """An adapter for a provider of the Chat Completions format at ``base``."""

    def adapter(
        model: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        headers: Mapping[str, str] | None = None,
        default_parameters: Mapping[str, Any] | None = None,
    ) -> ChatModel:
        chosen = base_url or (os.environ.get(base_env) if base_env else None) or base
        return _chat(fmt, model, chosen, api_key, (key_env,), headers, default_parameters)

    adapter.__name__ = adapter.__qualname__ = name
    adapter.__doc__ = doc
    return adapter


openai = _chat_adapter(
    "openai",
    "openai-chat",
    OPENAI_URL,
    "OPENAI_API_KEY",
    """OpenAI Chat Completions. Key: ``api_key`` or ``OPENAI_API_KEY``; base URL:
    ``base_url`` or ``OPENAI_BASE_URL`` (``https://api.openai.com/v1``).""",
    base_env="OPENAI_BASE_URL",
)
grok = _chat_adapter(
    "grok",
    "grok",
    GROK_URL,
    "XAI_API_KEY",
    "xAI Grok (OpenAI Chat Completions format). Key: ``api_key`` or ``XAI_API_KEY``.",
)
deepseek = _chat_adapter(
    "deepseek",
    "openai-chat",
    DEEPSEEK_URL,
    "DEEPSEEK_API_KEY",
    "DeepSeek (OpenAI Chat Completions format). Key: ``api_key`` or ``DEEPSEEK_API_KEY``.",
)


def openai_responses(
    model: str,
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    headers: Mapping[str, str] | None = None,
    default_parameters: Mapping[str, Any] | None = None,
) -> Model[ResponseRequest, Response]:
    """OpenAI's Responses API (``POST {base}/responses``); key and base URL as ``openai``."""
    _check_model(model)
    base = base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL
    return Model(
        format="openai-responses",
        url=join_url(base, "responses"),
        model=model,
        request_type=ResponseRequest,
        response_type=Response,
        auth_key=api_key or "",
        key_env=("OPENAI_API_KEY",),
        headers=dict(headers or {}),
        default_parameters=dict(default_parameters or {}),
    )


def anthropic(
    model: str,
    *,
    max_tokens: int | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    beta_headers: tuple[str, ...] | list[str] = (),
    headers: Mapping[str, str] | None = None,
    default_parameters: Mapping[str, Any] | None = None,
) -> Model[MessagesRequest, Message]:
    """Anthropic Messages. ``max_tokens`` (which every request needs) may be given here once.
    Key: ``api_key`` or ``ANTHROPIC_API_KEY``; base URL: ``base_url`` or
    ``ANTHROPIC_BASE_URL`` (``https://api.anthropic.com/v1``)."""
    _check_model(model)
    base = base_url or os.environ.get("ANTHROPIC_BASE_URL") or ANTHROPIC_URL
    sent = {"anthropic-version": ANTHROPIC_VERSION}
    if beta_headers:
        sent["anthropic-beta"] = ",".join(beta_headers)
    defaults = dict(default_parameters or {})
    if max_tokens is not None:
        defaults.setdefault("max_tokens", max_tokens)
    return Model(
        format="anthropic",
        url=join_url(base, "messages"),
        model=model,
        request_type=MessagesRequest,
        response_type=Message,
        auth_key=api_key or "",
        key_env=("ANTHROPIC_API_KEY",),
        headers={**sent, **(headers or {})},
        default_parameters=defaults,
    )


def gemini(
    model: str,
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    headers: Mapping[str, str] | None = None,
    default_parameters: Mapping[str, Any] | None = None,
) -> Model[GenerateContentRequest, GenerateContentResponse]:
    """Google Gemini ``generateContent``. Key: ``api_key``, ``GEMINI_API_KEY`` or
    ``GOOGLE_API_KEY``; the server adds it to the URL as ``?key=``."""
    _check_model(model)
    base = base_url or GEMINI_URL
    return Model(
        format="gemini",
        url=join_url(base, f"models/{quote(model, safe='')}:generateContent"),
        model=model,
        request_type=GenerateContentRequest,
        response_type=GenerateContentResponse,
        auth_key=api_key or "",
        key_env=("GEMINI_API_KEY", "GOOGLE_API_KEY"),
        headers=dict(headers or {}),
        default_parameters=dict(default_parameters or {}),
        model_in_body=False,
    )


def azure_openai(
    deployment: str,
    *,
    model: str | None = None,
    endpoint: str | None = None,
    api_version: str | None = None,
    api_key: str | None = None,
    headers: Mapping[str, str] | None = None,
    default_parameters: Mapping[str, Any] | None = None,
) -> ChatModel:
    """Azure OpenAI Chat Completions of one ``deployment``. Endpoint: ``endpoint`` or
    ``AZURE_OPENAI_ENDPOINT``; API version: ``api_version`` or ``OPENAI_API_VERSION``;
    key: ``api_key`` or ``AZURE_OPENAI_API_KEY``, sent as the ``api-key`` header."""
    if not isinstance(deployment, str) or not deployment:
        raise ConfigError("azure_openai needs the name of a deployment")
    base = endpoint or os.environ.get("AZURE_OPENAI_ENDPOINT")
    if not base:
        raise ConfigError("azure_openai needs endpoint= or AZURE_OPENAI_ENDPOINT")
    version = api_version or os.environ.get("OPENAI_API_VERSION") or AZURE_API_VERSION
    path = f"openai/deployments/{quote(deployment, safe='')}/chat/completions"
    return Model(
        format="azure-openai",
        url=f"{join_url(base, path)}?{urlencode({'api-version': version})}",
        model=model,
        request_type=ChatCompletionRequest,
        response_type=ChatCompletion,
        auth_key=api_key or "",
        key_env=("AZURE_OPENAI_API_KEY",),
        headers=dict(headers or {}),
        default_parameters=dict(default_parameters or {}),
        # The deployment names the model; the body may still say which (it is optional).
        model_in_body=model is not None,
    )


def openai_compatible(
    model: str,
    *,
    base_url: str,
    api_key: str | None = None,
    headers: Mapping[str, str] | None = None,
    default_parameters: Mapping[str, Any] | None = None,
) -> ChatModel:
    """Any server of the OpenAI Chat Completions API at ``base_url`` (vLLM, Ollama,
    llama.cpp, LM Studio, a gateway...). The key is optional and read from no variable."""
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"openai_compatible needs an http(s) base_url, not {base_url!r}")
    return _chat(
        "openai-chat",
        model,
        base_url,
        api_key,
        (),
        headers,
        default_parameters,
        key_required=False,
    )


__all__ = [
    "ChatModel",
    "anthropic",
    "azure_openai",
    "deepseek",
    "gemini",
    "grok",
    "openai",
    "openai_compatible",
    "openai_responses",
]

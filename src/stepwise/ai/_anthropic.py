"""Anthropic's Messages API: POST {base}/messages, the key in ``x-api-key``."""

from __future__ import annotations

from typing import Any, Literal

import pydantic

from ._model import ProviderModel


class AnthropicMessage(ProviderModel):
    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]


class MessagesRequest(ProviderModel):
    model: str
    max_tokens: int = pydantic.Field(ge=1)
    messages: list[AnthropicMessage] = pydantic.Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None
    temperature: float | None = pydantic.Field(default=None, ge=0, le=1)
    top_p: float | None = pydantic.Field(default=None, ge=0, le=1)
    top_k: int | None = pydantic.Field(default=None, ge=0)
    stop_sequences: list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    stream: Literal[False] | None = None


class ContentBlock(ProviderModel):
    """A block of an answer: ``text``, ``tool_use``, ``thinking``, ..."""

    type: str
    text: str | None = None
    id: str | None = None
    name: str | None = None
    input: dict[str, Any] | None = None


class AnthropicUsage(ProviderModel):
    input_tokens: int | None = None
    output_tokens: int | None = None


class Message(ProviderModel):
    id: str | None = None
    type: str | None = None
    role: str | None = None
    model: str | None = None
    content: list[ContentBlock] = pydantic.Field(default_factory=list)
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: AnthropicUsage | None = None

    @property
    def text(self) -> str:
        """The text blocks of the answer, joined."""
        return "".join(block.text or "" for block in self.content if block.type == "text")


__all__ = ["AnthropicMessage", "AnthropicUsage", "ContentBlock", "Message", "MessagesRequest"]

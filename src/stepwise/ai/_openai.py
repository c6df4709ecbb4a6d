"""OpenAI's formats: Chat Completions (also Grok, DeepSeek, Azure OpenAI and any
OpenAI-compatible server) and the Responses API.

Only the fields these types name are checked; any other field a request or response
carries is kept and sent (or returned) as it is.
"""

from __future__ import annotations

from typing import Any, Literal

import pydantic

from ._model import ProviderModel

# ---- Chat Completions: POST {base}/chat/completions ------------------------------------------


class ToolCall(ProviderModel):
    id: str | None = None
    type: str = "function"
    function: dict[str, Any] | None = None


class ChatMessage(ProviderModel):
    """One message of a chat; ``content`` is text or a list of content parts."""

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class ChatCompletionRequest(ProviderModel):
    model: str | None = None
    """Filled in from the adapter's model; Azure OpenAI's deployment names it instead."""
    messages: list[ChatMessage] = pydantic.Field(min_length=1)
    temperature: float | None = pydantic.Field(default=None, ge=0, le=2)
    top_p: float | None = pydantic.Field(default=None, ge=0, le=1)
    max_tokens: int | None = pydantic.Field(default=None, ge=1)
    max_completion_tokens: int | None = pydantic.Field(default=None, ge=1)
    n: int | None = pydantic.Field(default=None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    user: str | None = None
    stream: Literal[False] | None = None
    """The server stores one JSON answer: streaming is not possible through it."""


class ChoiceMessage(ProviderModel):
    role: str = "assistant"
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None


class Choice(ProviderModel):
    index: int = 0
    message: ChoiceMessage = pydantic.Field(default_factory=ChoiceMessage)
    finish_reason: str | None = None


class Usage(ProviderModel):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None


class ChatCompletion(ProviderModel):
    id: str | None = None
    object: str | None = None
    created: int | None = None
    model: str | None = None
    choices: list[Choice] = pydantic.Field(default_factory=list)
    usage: Usage | None = None

    @property
    def text(self) -> str:
        """The first choice's text ("" when it has none, as with a tool call)."""
        return (self.choices[0].message.content or "") if self.choices else ""


# ---- Responses: POST {base}/responses ----------------------------------------------------


class ResponseRequest(ProviderModel):
    model: str
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    max_output_tokens: int | None = pydantic.Field(default=None, ge=1)
    temperature: float | None = pydantic.Field(default=None, ge=0, le=2)
    top_p: float | None = pydantic.Field(default=None, ge=0, le=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    text: dict[str, Any] | None = None
    previous_response_id: str | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None
    stream: Literal[False] | None = None


class ResponseItem(ProviderModel):
    """One item of a response's ``output``: a message, a function call, reasoning, ..."""

    type: str
    id: str | None = None
    role: str | None = None
    content: list[dict[str, Any]] | None = None


class ResponseUsage(ProviderModel):
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None


class Response(ProviderModel):
    id: str | None = None
    object: str | None = None
    created_at: float | None = None
    model: str | None = None
    status: str | None = None
    output: list[ResponseItem] = pydantic.Field(default_factory=list)
    usage: ResponseUsage | None = None
    error: dict[str, Any] | None = None

    @property
    def output_text(self) -> str:
        """The text of every ``output_text`` part of the output's messages, joined."""
        return "".join(
            str(part.get("text", ""))
            for item in self.output
            if item.type == "message"
            for part in item.content or []
            if part.get("type") == "output_text"
        )


__all__ = [
    "ChatCompletion",
    "ChatCompletionRequest",
    "ChatMessage",
    "Choice",
    "ChoiceMessage",
    "Response",
    "ResponseItem",
    "ResponseRequest",
    "ResponseUsage",
    "ToolCall",
    "Usage",
]

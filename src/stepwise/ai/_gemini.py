"""Google's Gemini API: POST {base}/models/{model}:generateContent, the key as ``?key=``.

The wire names are camelCase (``systemInstruction``, ``generationConfig``); these types
accept either spelling and send camelCase.
"""

from __future__ import annotations

from typing import Any, Literal

import pydantic
from pydantic.alias_generators import to_camel

from ._model import ProviderModel


class _Camel(ProviderModel):
    model_config = pydantic.ConfigDict(
        extra="allow", populate_by_name=True, alias_generator=to_camel
    )


class Part(_Camel):
    """One part of a content: text, inline data, a function call or its response."""

    text: str | None = None
    inline_data: dict[str, Any] | None = None
    file_data: dict[str, Any] | None = None
    function_call: dict[str, Any] | None = None
    function_response: dict[str, Any] | None = None


class Content(_Camel):
    role: Literal["user", "model", "function"] | None = None
    parts: list[Part] = pydantic.Field(min_length=1)


class GenerateContentRequest(_Camel):
    contents: list[Content] = pydantic.Field(min_length=1)
    system_instruction: Content | None = None
    generation_config: dict[str, Any] | None = None
    safety_settings: list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_config: dict[str, Any] | None = None


class AnswerContent(_Camel):
    role: str | None = None
    parts: list[Part] = pydantic.Field(default_factory=list)


class Candidate(_Camel):
    content: AnswerContent | None = None
    finish_reason: str | None = None
    index: int | None = None


class UsageMetadata(_Camel):
    prompt_token_count: int | None = None
    candidates_token_count: int | None = None
    total_token_count: int | None = None


class GenerateContentResponse(_Camel):
    candidates: list[Candidate] = pydantic.Field(default_factory=list)
    usage_metadata: UsageMetadata | None = None
    model_version: str | None = None

    @property
    def text(self) -> str:
        """The text parts of the first candidate, joined."""
        if not self.candidates or self.candidates[0].content is None:
            return ""
        return "".join(part.text or "" for part in self.candidates[0].content.parts)


__all__ = [
    "AnswerContent",
    "Candidate",
    "Content",
    "GenerateContentRequest",
    "GenerateContentResponse",
    "Part",
    "UsageMetadata",
]

"""Models for ``ctx.step.ai.infer``: one adapter per provider, with typed bodies and answers.

::

    from stepwise import ai

    gpt = ai.openai("gpt-4o")  # key from OPENAI_API_KEY
    answer = await ctx.step.ai.infer(
        "summarize", model=gpt, body={"messages": [{"role": "user", "content": text}]}
    )
    answer.text  # a ChatCompletion

Adapters: ``openai`` (Chat Completions), ``openai_responses``, ``anthropic``, ``gemini``,
``grok``, ``deepseek``, ``azure_openai``, ``openai_compatible`` (any server of the OpenAI
API: vLLM, Ollama, ...). See docs/ai.md.
"""

from ..errors import InferenceError
from ._adapters import (
    ChatModel,
    anthropic,
    azure_openai,
    deepseek,
    gemini,
    grok,
    openai,
    openai_compatible,
    openai_responses,
)
from ._anthropic import AnthropicMessage, AnthropicUsage, ContentBlock, Message, MessagesRequest
from ._gemini import (
    AnswerContent,
    Candidate,
    Content,
    GenerateContentRequest,
    GenerateContentResponse,
    Part,
    UsageMetadata,
)
from ._model import Model, ProviderModel
from ._openai import (
    ChatCompletion,
    ChatCompletionRequest,
    ChatMessage,
    Choice,
    ChoiceMessage,
    Response,
    ResponseItem,
    ResponseRequest,
    ResponseUsage,
    ToolCall,
    Usage,
)

__all__ = [
    "AnswerContent",
    "AnthropicMessage",
    "AnthropicUsage",
    "Candidate",
    "ChatCompletion",
    "ChatCompletionRequest",
    "ChatMessage",
    "ChatModel",
    "Choice",
    "ChoiceMessage",
    "Content",
    "ContentBlock",
    "GenerateContentRequest",
    "GenerateContentResponse",
    "InferenceError",
    "Message",
    "MessagesRequest",
    "Model",
    "Part",
    "ProviderModel",
    "Response",
    "ResponseItem",
    "ResponseRequest",
    "ResponseUsage",
    "ToolCall",
    "Usage",
    "UsageMetadata",
    "anthropic",
    "azure_openai",
    "deepseek",
    "gemini",
    "grok",
    "openai",
    "openai_compatible",
    "openai_responses",
]

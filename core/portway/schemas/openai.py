"""OpenAI Chat Completions and Embeddings request bodies.

Strict types (a ``"5"`` is not an integer, ``"false"`` is not a boolean):
the body that passed validation is the body the gateway forwards.  The
Anthropic-only keys a client may add (``top_k``, ``thinking``,
``output_config``, ...; see ``formats.anthropic.ANTHROPIC_PASSTHROUGH``) are
typed too, because the Anthropic translation reads them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Open(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class TextPart(Open):
    type: Literal["text"]
    text: str
    cache_control: dict[str, Any] | None = None


class ImageURL(Open):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(Open):
    type: Literal["image_url"]
    image_url: ImageURL


class AudioPart(Open):
    type: Literal["input_audio"]
    input_audio: dict[str, Any]


class FilePart(Open):
    type: Literal["file"]
    file: dict[str, Any]


class RefusalPart(Open):
    type: Literal["refusal"]
    refusal: str


ContentPart = Annotated[TextPart | ImagePart | AudioPart | FilePart | RefusalPart, Field(discriminator="type")]


class FunctionCall(Open):
    name: str
    arguments: str


class ToolCall(Open):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class SystemMessage(Open):
    role: Literal["system", "developer"]
    content: str | list[TextPart]
    name: str | None = None


class UserMessage(Open):
    role: Literal["user"]
    content: str | list[ContentPart]
    name: str | None = None


class ThinkingBlock(Open):
    type: Literal["thinking", "redacted_thinking"]
    thinking: str | None = None
    signature: str | None = None
    data: str | None = None


class AssistantMessage(Open):
    role: Literal["assistant"]
    content: str | list[TextPart | RefusalPart] | None = None
    tool_calls: list[ToolCall] | None = None
    name: str | None = None
    refusal: str | None = None
    reasoning_content: str | None = None
    #: Anthropic's signed thinking blocks, replayed in a tool loop (see formats.anthropic).
    thinking_blocks: list[ThinkingBlock] | None = None


class ToolMessage(Open):
    role: Literal["tool"]
    content: str | list[TextPart]
    tool_call_id: str


class FunctionMessage(Open):
    role: Literal["function"]
    content: str | None
    name: str


Message = Annotated[
    SystemMessage | UserMessage | AssistantMessage | ToolMessage | FunctionMessage, Field(discriminator="role")
]


class FunctionDef(Open):
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(Open):
    type: Literal["function"]
    function: FunctionDef
    cache_control: dict[str, Any] | None = None


class NamedToolChoice(Open):
    type: Literal["function"]
    function: dict[str, Any]


class JSONSchemaFormat(Open):
    name: str
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None
    description: str | None = None


class ResponseFormat(Open):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None


class StreamOptions(Open):
    include_usage: bool | None = None


class OutputConfig(Open):
    effort: str | None = None
    format: dict[str, Any] | None = None


class ChatCompletionRequest(Open):
    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    n: int | None = Field(None, ge=1, le=128)
    stop: str | list[str] | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    seed: int | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    reasoning_effort: str | None = None
    safety_identifier: str | None = None
    # Anthropic-only keys, passed on to Anthropic-format upstreams.
    system: str | list[TextPart] | None = None
    stop_sequences: list[str] | None = None
    top_k: int | None = Field(None, ge=0)
    thinking: dict[str, Any] | None = None
    cache_control: dict[str, Any] | None = None
    output_config: OutputConfig | None = None
    context_management: dict[str, Any] | None = None
    container: str | dict[str, Any] | None = None
    mcp_servers: list[dict[str, Any]] | None = None

    @field_validator("stop")
    @classmethod
    def _stop(cls, value: Any) -> Any:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value


class EmbeddingsRequest(Open):
    model: str = Field(min_length=1)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if value == "" or value == []:
            raise ValueError("input must not be empty")
        return value

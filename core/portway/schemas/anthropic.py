"""Anthropic Messages API request body (what ``POST /v1/messages`` accepts).

Strict types (a ``"5"`` is not an integer, ``"false"`` is not a boolean):
the body that passed validation is the body the gateway forwards, so what
was checked must be what was sent.  Content blocks Portway knows are
checked field by field, because the translators read those fields; blocks
of types it does not know yet pass with only their ``type`` checked.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag


class Open(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class Block(Open):
    """A content block of a type the gateway passes on without reading."""

    type: str


class TextBlock(Open):
    type: Literal["text"]
    text: str
    cache_control: dict[str, Any] | None = None
    citations: list[dict[str, Any]] | None = None


class Source(Open):
    type: str
    media_type: str | None = None
    data: str | None = None
    url: str | None = None
    file_id: str | None = None
    content: str | list[dict[str, Any]] | None = None


class ImageBlock(Open):
    type: Literal["image"]
    source: Source
    cache_control: dict[str, Any] | None = None


class DocumentBlock(Open):
    type: Literal["document"]
    source: Source
    title: str | None = None
    context: str | None = None
    cache_control: dict[str, Any] | None = None


class ToolUseBlock(Open):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]


class ToolResultBlock(Open):
    type: Literal["tool_result"]
    tool_use_id: str
    content: str | list[ContentBlock] | None = None
    is_error: bool | None = None
    cache_control: dict[str, Any] | None = None


class ThinkingBlock(Open):
    type: Literal["thinking"]
    thinking: str
    signature: str | None = None


class RedactedThinkingBlock(Open):
    type: Literal["redacted_thinking"]
    data: str


class SearchResultBlock(Open):
    type: Literal["search_result"]
    source: str
    title: str
    content: list[TextBlock]


_KNOWN_BLOCKS = {"text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking",
                 "search_result"}


def _block_tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else None
    return kind if isinstance(kind, str) and kind in _KNOWN_BLOCKS else "other"


ContentBlock = Annotated[
    Annotated[TextBlock, Tag("text")] | Annotated[ImageBlock, Tag("image")]
    | Annotated[DocumentBlock, Tag("document")] | Annotated[ToolUseBlock, Tag("tool_use")]
    | Annotated[ToolResultBlock, Tag("tool_result")] | Annotated[ThinkingBlock, Tag("thinking")]
    | Annotated[RedactedThinkingBlock, Tag("redacted_thinking")]
    | Annotated[SearchResultBlock, Tag("search_result")] | Annotated[Block, Tag("other")],
    Discriminator(_block_tag),
]
ToolResultBlock.model_rebuild()


class MessageParam(Open):
    #: ``system`` inside ``messages``: Anthropic's mid-conversation system messages (Claude Code sends them).
    role: Literal["user", "assistant", "system"]
    content: str | list[ContentBlock]


class ToolParam(Open):
    name: str = Field(min_length=1)
    type: str | None = None
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    cache_control: dict[str, Any] | None = None


class ToolChoice(Open):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class OutputConfig(Open):
    effort: str | None = None
    format: dict[str, Any] | None = None


class ThinkingConfig(Open):
    type: str
    budget_tokens: int | None = None


class Metadata(Open):
    user_id: str | None = None


class MessagesRequest(Open):
    model: str = Field(min_length=1)
    max_tokens: int = Field(ge=1)
    messages: list[MessageParam] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    stream: bool | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(None, ge=0, le=1)
    top_p: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=0)
    tools: list[ToolParam] | None = None
    tool_choice: ToolChoice | None = None
    metadata: Metadata | None = None
    output_config: OutputConfig | None = None
    thinking: ThinkingConfig | None = None
    context_management: dict[str, Any] | None = None
    container: str | dict[str, Any] | None = None
    mcp_servers: list[dict[str, Any]] | None = None
    service_tier: str | None = None


class MessagesEnvelope(Open):
    """What the gateway itself reads of a Messages request before it knows
    where the request goes.  A request that goes through as it is (to an
    upstream that speaks the Messages API, with no hook reading it) is
    checked only this far, and the upstream checks the rest (its 400 reaches
    the client in this same shape); any other is checked in full against
    :class:`MessagesRequest` first."""

    model: str = Field(min_length=1)
    stream: bool | None = None


class CountTokensEnvelope(Open):
    """What the gateway reads of ``POST /v1/messages/count_tokens``: the
    model (to find who counts) and the messages (to estimate when nobody
    can).  The rest goes to a provider that counts as it was sent."""

    model: str = Field(min_length=1)
    messages: list[dict[str, Any]]

"""OpenAI Responses API request body (what ``POST /v1/responses`` accepts).

Strict types, like :mod:`portway.schemas.openai`: the body that passed
validation is the body the gateway translates or forwards.  What the
translation in :mod:`portway.formats.responses` reads is checked field by
field; input items, content parts, tools and tool choices of types Portway
does not know yet pass with only their ``type`` checked, so a native
pass-through to OpenAI keeps working when OpenAI adds one (the translation
to other providers refuses them with a 400 naming the item).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag


class Open(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class Object(Open):
    """An object of a type the gateway passes on without reading."""

    type: str


def _tagger(known: frozenset[str], untyped: str = "other") -> Any:
    """A discriminator: the object's ``type`` when it is one of ``known``,
    ``untyped`` when it has no ``type``, ``"other"`` for the rest."""

    def tag(value: Any) -> str:
        if not isinstance(value, dict):
            return "other"
        kind = value.get("type")
        if kind is None:
            return untyped
        return kind if isinstance(kind, str) and kind in known else "other"

    return Discriminator(tag)


# -- content parts ---------------------------------------------------------------------


class InputText(Open):
    type: Literal["input_text"]
    text: str


class InputImage(Open):
    type: Literal["input_image"]
    image_url: str | None = None
    file_id: str | None = None
    detail: Literal["low", "high", "auto", "original"] | None = None


class InputFile(Open):
    type: Literal["input_file"]
    file_data: str | None = None
    file_id: str | None = None
    file_url: str | None = None
    filename: str | None = None


class OutputText(Open):
    type: Literal["output_text"]
    text: str
    annotations: list[dict[str, Any]] | None = None


class Refusal(Open):
    type: Literal["refusal"]
    refusal: str


ContentPart = Annotated[
    Annotated[InputText, Tag("input_text")] | Annotated[InputImage, Tag("input_image")]
    | Annotated[InputFile, Tag("input_file")] | Annotated[OutputText, Tag("output_text")]
    | Annotated[Refusal, Tag("refusal")] | Annotated[Object, Tag("other")],
    _tagger(frozenset({"input_text", "input_image", "input_file", "output_text", "refusal"})),
]


# -- input items -----------------------------------------------------------------------


class MessageItem(Open):
    """An easy message (``{role, content}``) or a ``message`` item."""

    type: Literal["message"] | None = None
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[ContentPart]
    id: str | None = None
    status: str | None = None
    phase: str | None = None


class FunctionCallItem(Open):
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str
    id: str | None = None
    status: str | None = None


class FunctionCallOutputItem(Open):
    type: Literal["function_call_output"]
    call_id: str
    output: str | list[ContentPart]
    id: str | None = None
    status: str | None = None


class SummaryPart(Open):
    type: str
    text: str


class ReasoningItem(Open):
    type: Literal["reasoning"]
    id: str | None = None
    summary: list[SummaryPart] | None = None
    content: list[dict[str, Any]] | None = None
    encrypted_content: str | None = None


InputItem = Annotated[
    Annotated[MessageItem, Tag("message")] | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")] | Annotated[ReasoningItem, Tag("reasoning")]
    | Annotated[Object, Tag("other")],
    _tagger(frozenset({"message", "function_call", "function_call_output", "reasoning"}), untyped="message"),
]


# -- tools, tool choice, text format, reasoning ----------------------------------------


class FunctionTool(Open):
    type: Literal["function"]
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


Tool = Annotated[
    Annotated[FunctionTool, Tag("function")] | Annotated[Object, Tag("other")],
    _tagger(frozenset({"function"})),
]


class FunctionChoice(Open):
    type: Literal["function"]
    name: str


class AllowedTools(Open):
    type: Literal["allowed_tools"]
    mode: Literal["auto", "required"]
    tools: list[dict[str, Any]]


def _choice_tag(value: Any) -> str:
    if isinstance(value, str):
        return "options"
    kind = value.get("type") if isinstance(value, dict) else None
    return kind if kind in ("function", "allowed_tools") else "other"


# One tagged union for the string and the object forms: with a plain union,
# pydantic would report a mistake in an object against the string branch too.
ToolChoice = Annotated[
    Annotated[Literal["none", "auto", "required"], Tag("options")] | Annotated[FunctionChoice, Tag("function")]
    | Annotated[AllowedTools, Tag("allowed_tools")] | Annotated[Object, Tag("other")],
    Discriminator(_choice_tag),
]


class PlainFormat(Open):
    type: Literal["text", "json_object"]


class JSONSchemaFormat(Open):
    type: Literal["json_schema"]
    name: str
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None
    description: str | None = None


class TextConfig(Open):
    format: Annotated[PlainFormat | JSONSchemaFormat, Field(discriminator="type")] | None = None
    verbosity: str | None = None


class ReasoningConfig(Open):
    effort: str | None = None
    summary: str | None = None


class ResponsesRequest(Open):
    model: str = Field(min_length=1)
    input: str | list[InputItem] | None = None
    instructions: str | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    metadata: dict[str, str] | None = None
    stream: bool | None = None
    store: bool | None = None
    previous_response_id: str | None = None
    user: str | None = None
    include: list[str] | None = None
    truncation: Literal["auto", "disabled"] | None = None

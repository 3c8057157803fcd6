"""How an OpenAI-compatible upstream differs from OpenAI, as data.

Two dozen servers speak OpenAI's Chat Completions wire format, and each
differs from it a little: one refuses ``n``, one wants ``max_tokens`` where
OpenAI now says ``max_completion_tokens``, one has no ``developer`` role,
one returns its model's reasoning as ``reasoning`` rather than
``reasoning_content``.  An adapter for such a server is a subclass of
:class:`~portway.formats.openai.OpenAICompatibleProvider` that states its
differences as a :class:`Quirks` value (and which of its models can use
tools, images and JSON mode, as :attr:`~portway.providers.Provider.capabilities`);
the base applies them, on the way out and on the way back::

    class GroqProvider(OpenAICompatibleProvider):
        type = "groq"
        default_base_url = "https://api.groq.com/openai/v1"
        env_key = "GROQ_API_KEY"
        quirks = Quirks(refuse={"logprobs": "Groq does not return logprobs"}, max_n=1,
                        rename={"max_completion_tokens": "max_tokens"}, reasoning_field="reasoning")
        capabilities = {"llama-3.1-8b-instant": {"tools", "json"}, "meta-llama/llama-4-*": {"tools", "vision", "json"}}

The rule for what a server cannot take: a key that only steers a model (a
tie-breaker, an end-user id) is dropped, and the plugin's README says so; a
key whose loss would change the answer is refused with a 400 naming it, before
anything is sent.  Nothing is silently wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from portway.catalog import lookup_pattern
from portway.errors import PortwayError

EMPTY: Mapping[str, str] = MappingProxyType({})

#: What :attr:`Provider.capabilities` may list for a model.
CAPABILITIES = frozenset({"tools", "vision", "json"})


def _frozen(mapping: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class Quirks:
    """One upstream's differences from OpenAI's Chat Completions.  The
    defaults are OpenAI's own behaviour: ``Quirks()`` changes nothing."""

    # -- the request -------------------------------------------------------------------

    #: Top-level keys removed before sending: they only steer OpenAI, and
    #: the server refuses or ignores them (``user``, ``service_tier``, …).
    drop: frozenset[str] = frozenset()
    #: Top-level keys the server cannot honour and whose loss would change the
    #: answer: a request that sets one (to anything but ``null``/``false``/empty)
    #: is a 400 naming it, with this reason.
    refuse: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    #: Keys the server spells differently: canonical name -> the server's
    #: (``max_completion_tokens`` -> ``max_tokens``).  The canonical key wins
    #: over one the client also sent under the server's name.
    rename: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    #: The most choices (``n``) the server returns; more is a 400, and ``n: 1``
    #: is not sent to a server that takes no ``n`` at all (``max_n=1``).
    max_n: int | None = None
    #: Whether ``response_format`` ``json_schema`` / ``json_object`` are understood (a 400 if not).
    json_schema: bool = True
    json_object: bool = True
    #: Whether ``stream_options`` is understood; if not it is not sent (the
    #: usage then comes as the server sends it, if it does).
    stream_options: bool = True
    #: Whether ``tool_choice: "required"`` and a named function are understood (a 400 if not).
    tool_choice_required: bool = True
    tool_choice_named: bool = True
    #: Whether the ``developer`` role is understood; if not, it is sent as ``system``.
    developer_role: bool = True
    #: Whether messages may carry ``name``; if not, it is not sent.
    message_names: bool = True
    #: Whether an assistant message may carry its earlier ``reasoning_content``
    #: back; if not, it is not sent (DeepSeek refuses it).
    reasoning_in_history: bool = True
    #: Whether an Anthropic client's earlier thinking blocks are sent back as
    #: the assistant message's ``reasoning_content`` (DeepSeek needs a tool
    #: turn's reasoning back); otherwise they are dropped, as for OpenAI.
    thinking_as_reasoning: bool = False
    #: Whether content given as a list of text parts must be sent as one
    #: string (servers that take only string content for text).  Lists
    #: with an image or other non-text part are sent as they are.
    text_as_string: bool = False

    # -- the answer --------------------------------------------------------------------

    #: Where the server's answers carry the model's reasoning text: mapped
    #: to the canonical ``reasoning_content`` in whole answers and deltas.
    reasoning_field: str = "reasoning_content"

    def __post_init__(self) -> None:
        object.__setattr__(self, "drop", frozenset(self.drop))
        object.__setattr__(self, "refuse", _frozen(self.refuse))
        object.__setattr__(self, "rename", _frozen(self.rename))

    @property
    def changes_requests(self) -> bool:
        """Whether any request-side quirk is set (if not, bodies go as they are)."""
        return self._request_fields() != Quirks()._request_fields()

    def _request_fields(self) -> tuple[Any, ...]:
        return (self.drop, dict(self.refuse), dict(self.rename), self.max_n, self.json_schema, self.json_object,
                self.stream_options, self.tool_choice_required, self.tool_choice_named, self.developer_role,
                self.message_names, self.reasoning_in_history, self.text_as_string, self.thinking_as_reasoning)

    # -- applying them -----------------------------------------------------------------

    def request(self, body: dict[str, Any], provider: str) -> dict[str, Any]:
        """``body`` as this server takes it: a copy (``body`` itself is never
        changed: a fallback target may need it as it was).  Raises a 400
        naming the field for what the server cannot honour."""
        out = dict(body)
        for key, reason in self.refuse.items():
            if _asks(out.get(key)):
                raise refused(provider, key, reason)
        n = out.get("n")
        if self.max_n is not None and n is not None:
            if isinstance(n, int) and n > self.max_n:
                raise refused(provider, "n", f"it returns at most {self.max_n} choice(s)")
            if self.max_n == 1:
                del out["n"]
        response_format = out.get("response_format")
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if (kind == "json_schema" and not self.json_schema) or (kind == "json_object" and not self.json_object):
            other = " (use json_object)" if kind == "json_schema" and self.json_object else ""
            raise refused(provider, "response_format", f"it has no {kind} mode{other}")
        tool_choice = out.get("tool_choice")
        if tool_choice == "required" and not self.tool_choice_required:
            raise refused(provider, "tool_choice", 'it has no tool_choice "required"')
        if isinstance(tool_choice, dict) and not self.tool_choice_named:
            raise refused(provider, "tool_choice", "it cannot be told which function to call")
        if not self.stream_options:
            out.pop("stream_options", None)
        for key in self.drop:
            out.pop(key, None)
        for old, new in self.rename.items():
            if old in out:
                out[new] = out.pop(old)
        if not (self.developer_role and self.message_names and self.reasoning_in_history
                and not self.text_as_string):
            messages = out.get("messages")
            if isinstance(messages, list):
                out["messages"] = [self._message(m) if isinstance(m, dict) else m for m in messages]
        return out

    def _message(self, message: dict[str, Any]) -> dict[str, Any]:
        changed: dict[str, Any] | None = None

        def edit() -> dict[str, Any]:
            nonlocal changed
            if changed is None:
                changed = dict(message)
            return changed

        if not self.developer_role and message.get("role") == "developer":
            edit()["role"] = "system"
        if not self.message_names and "name" in message:
            del edit()["name"]
        if not self.reasoning_in_history and "reasoning_content" in message:
            del edit()["reasoning_content"]
        content = message.get("content")
        if self.text_as_string and isinstance(content, list) and all(
                isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content):
            edit()["content"] = "".join(p["text"] for p in content)
        return message if changed is None else changed

    def completion(self, completion: Any) -> Any:
        """A whole answer with the reasoning under its canonical name (in
        place).  The answer is not checked yet: what is not as expected is
        left for the check to name."""
        if self.reasoning_field != "reasoning_content":
            _rename_in(completion, "message", self.reasoning_field)
        return completion

    def chunk(self, chunk: Any) -> Any:
        """A stream chunk with the reasoning under its canonical name (in place)."""
        if self.reasoning_field != "reasoning_content":
            _rename_in(chunk, "delta", self.reasoning_field)
        return chunk


def _rename_in(answer: Any, key: str, field_name: str) -> None:
    choices = answer.get("choices") if isinstance(answer, dict) else None
    for choice in choices if isinstance(choices, list) else ():
        if isinstance(choice, dict):
            _rename_reasoning(choice.get(key), field_name)


def _rename_reasoning(message: Any, field_name: str) -> None:
    if isinstance(message, dict) and field_name in message:
        value = message.pop(field_name)
        if isinstance(value, str) and value and not message.get("reasoning_content"):
            message["reasoning_content"] = value


def _asks(value: Any) -> bool:
    """Whether a parameter's value asks for something (``null``, ``false``
    and empty values ask for nothing: sending none is the same)."""
    return value is not None and value is not False and value != [] and value != {} and value != ""


def refused(provider: str, param: str, reason: str) -> PortwayError:
    """The 400 for a request this provider cannot serve as asked, before
    anything is sent.  Its code ``unsupported`` lets an alias fall back to a
    target that can."""
    return PortwayError(f"provider {provider!r} cannot take {param}: {reason}", kind="bad_request",
                        code="unsupported", param=param)


# -- what a model can do ----------------------------------------------------------------------


def lookup_capabilities(table: Mapping[str, Iterable[str]], model: str) -> frozenset[str] | None:
    """What ``model`` can do by a provider's capability table: the entry of
    the first pattern (shell-style, case-insensitive) that matches, or None
    for a model the table does not know (then nothing is checked)."""
    found = lookup_pattern(table, model)
    return None if found is None else frozenset(found)


def check_capabilities(body: dict[str, Any], capabilities: frozenset[str], provider: str, model: str) -> None:
    """Refuse (a 400 naming the field) a request that needs what ``model``
    cannot do: tools, images, JSON mode."""
    if "tools" not in capabilities and body.get("tools"):
        raise refused(provider, "tools", f"model {model!r} does not support tools")
    if "json" not in capabilities:
        response_format = body.get("response_format")
        if isinstance(response_format, dict) and response_format.get("type") in ("json_object", "json_schema"):
            raise refused(provider, "response_format", f"model {model!r} has no JSON mode")
    if "vision" not in capabilities:
        for i, message in enumerate(body.get("messages") or ()):
            content = message.get("content") if isinstance(message, dict) else None
            for j, part in enumerate(content if isinstance(content, list) else ()):
                if isinstance(part, dict) and part.get("type") == "image_url":
                    raise refused(provider, f"messages[{i}].content[{j}]", f"model {model!r} does not read images")


__all__ = ["CAPABILITIES", "Quirks", "check_capabilities", "lookup_capabilities", "refused"]

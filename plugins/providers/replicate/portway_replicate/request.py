"""Canonical chat requests (OpenAI Chat Completions bodies) as the
``input`` of a Replicate prediction, and the endpoint that creates it.

Replicate has no chat schema: each model declares its own inputs (its
"API" page on replicate.com).  Two input schemas are targeted:

``prompt``
    Meta's Llama 3 / 3.1 instruct models (``meta/meta-llama-3-70b-instruct``,
    ``meta/meta-llama-3.1-405b-instruct``...) and the many models with the
    same inputs: ``prompt``, ``system_prompt``, ``max_tokens``,
    ``temperature``, ``top_p``, ``presence_penalty``, ``frequency_penalty``,
    ``stop_sequences`` (one comma-separated string) and ``prompt_template``.
    A conversation of more than one user turn is written into ``prompt`` in
    Llama 3's chat format with ``prompt_template: "{prompt}"`` (the way the
    model pages say to build a dialog), for the models whose template is
    known to be Llama 3's; for others it is a 400 naming ``messages``.
``messages``
    The ``openai/*`` models on Replicate (``openai/gpt-4o``, ``openai/gpt-5``,
    ``openai/o4-mini``...): ``messages`` (a list of ``{role, content}``),
    ``image_input`` (a list of image URLs or data URIs),
    ``max_completion_tokens``, ``temperature``, ``top_p``,
    ``presence_penalty``, ``frequency_penalty``, ``reasoning_effort``.

Nothing Replicate cannot express is sent silently wrong: it is dropped
(said in the README) or refused with a 400 naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Literal

from portway.errors import PortwayError
from portway.formats.openai import content_text

Schema = Literal["prompt", "messages"]

#: Models (shell patterns) that take ``messages`` rather than ``prompt``: OpenAI's models on Replicate.
MESSAGES_MODELS = ("openai/*",)
#: Prompt-schema models whose prompt format is Llama 3's (Meta's Llama 3, 3.1, 3.2 and 3.3 models).
LLAMA3_MODELS = ("meta/meta-llama-3*", "meta/llama-3*", "meta/llama-4*")
#: Llama 3's special tokens (https://www.llama.com/docs/model-cards-and-prompt-formats/meta-llama-3/).
BEGIN, HEADER_START, HEADER_END, END_OF_TURN = "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"
#: A model name as Replicate's paths take it: ``owner/name``, optionally ``:version`` (64 hex digits).
MODEL_ID = re.compile(r"^(?P<owner>[A-Za-z0-9][A-Za-z0-9_.-]*)/(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)"
                      r"(?::(?P<version>[0-9a-f]{64}))?$")
VERSION_ID = re.compile(r"^[0-9a-f]{64}$")


#: What a 400 for a non-text part says the upstream takes.
ONLY_TEXT = "this Replicate model takes text"


def bad_request(message: str, param: str) -> PortwayError:
    return PortwayError(message, kind="bad_request", param=param)


def matches(model: str, patterns: Iterable[str]) -> bool:
    return any(fnmatchcase(model.lower(), pattern) for pattern in patterns)


@dataclass(frozen=True)
class Endpoint:
    """Where a prediction for a model is created, and the body keys that name it."""

    path: str
    version: str | None = None


def endpoint(model: str) -> Endpoint:
    """``owner/name`` -> the official-model endpoint; ``owner/name:version``
    or a bare version id -> ``/predictions`` with ``version`` (as
    replicate-python's ``predictions.create`` does)."""
    if VERSION_ID.match(model):
        return Endpoint("/predictions", model)
    found = MODEL_ID.match(model)
    if found is None:
        raise bad_request(f"a Replicate model is 'owner/name' or 'owner/name:<64-hex version id>', not {model!r}",
                          "model")
    if found["version"]:
        return Endpoint("/predictions", found["version"])
    return Endpoint(f"/models/{found['owner']}/{found['name']}/predictions")


def schema_of(model: str, configured: str) -> Schema:
    if configured in ("prompt", "messages"):
        return configured  # type: ignore[return-value]
    return "messages" if matches(model.split(":", 1)[0], MESSAGES_MODELS) else "prompt"


def prediction_input(body: dict[str, Any], *, schema: Schema, max_tokens: int | None, chat_template: str) -> dict[str, Any]:
    """``body`` (canonical, validated, capabilities checked) as the
    prediction's ``input``.  ``max_tokens``: the limit sent when the request
    gives none (so a cut answer can be told from a finished one)."""
    n = body.get("n")
    if n is not None and n != 1:
        raise bad_request("a Replicate prediction gives one answer: n must be 1", "n")
    for key in ("logprobs", "top_logprobs", "logit_bias", "audio", "prediction"):
        if body.get(key):
            raise bad_request(f"Replicate's language models take no {key}", key)
    model = body["model"].split(":", 1)[0]
    out = messages_input(body) if schema == "messages" else prompt_input(body, llama3=template_is_llama3(model, chat_template))
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is None:
        limit = max_tokens
    if limit is not None:
        out["max_completion_tokens" if schema == "messages" else "max_tokens"] = limit
    for key in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
        if body.get(key) is not None:
            out[key] = body[key]
    stop = body.get("stop")
    if stop:
        stops = [stop] if isinstance(stop, str) else list(stop)
        if schema == "messages":
            raise bad_request("OpenAI's models on Replicate take no stop sequences", "stop")
        if any("," in s for s in stops):
            raise bad_request("Replicate takes stop sequences as one comma-separated string: a stop sequence "
                              "cannot contain a comma", "stop")
        out["stop_sequences"] = ",".join(stops)
    if schema == "messages" and body.get("reasoning_effort") is not None:
        out["reasoning_effort"] = body["reasoning_effort"]
    if schema == "prompt" and body.get("top_k") is not None:  # an Anthropic client's top_k
        out["top_k"] = body["top_k"]
    return out


def template_is_llama3(model: str, chat_template: str) -> bool:
    return chat_template == "llama3" or (chat_template == "auto" and matches(model, LLAMA3_MODELS))


# -- the prompt schema -------------------------------------------------------------------


def turns(messages: list[dict[str, Any]]) -> tuple[str | None, list[tuple[str, str]]]:
    """The system text (system and developer messages, joined) and the
    user/assistant turns as text.  Tool messages and images cannot be said
    in a prompt: a 400 naming them."""
    system: list[str] = []
    out: list[tuple[str, str]] = []
    for i, message in enumerate(messages):
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(content_text(message.get("content"), f"messages[{i}]", ONLY_TEXT))
        elif role in ("user", "assistant"):
            if role == "assistant" and message.get("tool_calls"):
                raise bad_request("Replicate's language models have no tool calls", f"messages[{i}].tool_calls")
            out.append((role, content_text(message.get("content"), f"messages[{i}]", ONLY_TEXT)))
        else:
            raise bad_request(f"Replicate's language models take no {role!r} messages", f"messages[{i}].role")
    return ("\n".join(system) if system else None), out


def prompt_input(body: dict[str, Any], *, llama3: bool) -> dict[str, Any]:
    system, conversation = turns(body.get("messages") or [])
    if not conversation or conversation[-1][0] != "user":
        raise bad_request("the conversation must end with a user message: Replicate completes a prompt", "messages")
    if len(conversation) == 1:
        out: dict[str, Any] = {"prompt": conversation[0][1]}
        if system is not None:
            out["system_prompt"] = system
        return out
    if not llama3:
        raise bad_request(f"model {body['model']!r} takes one prompt, and its chat format is not known: send one "
                          "user message (set chat_template: llama3 for a model in Llama 3's format)", "messages")
    return {"prompt": llama3_prompt(system, conversation), "prompt_template": "{prompt}"}


def llama3_prompt(system: str | None, conversation: list[tuple[str, str]]) -> str:
    """The dialog in Llama 3's instruct format, ending with the assistant's
    header for the model to complete."""
    blocks = [BEGIN]
    for role, text in ([("system", system)] if system is not None else []) + conversation:
        blocks.append(f"{HEADER_START}{role}{HEADER_END}\n\n{text}{END_OF_TURN}")
    blocks.append(f"{HEADER_START}assistant{HEADER_END}\n\n")
    return "".join(blocks)


# -- the messages schema -----------------------------------------------------------------


def messages_input(body: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's models on Replicate: ``messages`` with text content (system
    prompts as system messages: ``system_prompt`` is ignored when messages
    are given), and the images of user messages in ``image_input``."""
    messages: list[dict[str, str]] = []
    images: list[str] = []
    for i, message in enumerate(body.get("messages") or []):
        role = message.get("role")
        content = message.get("content")
        if role not in ("system", "developer", "user", "assistant"):
            raise bad_request(f"Replicate's language models take no {role!r} messages", f"messages[{i}].role")
        if role == "assistant" and message.get("tool_calls"):
            raise bad_request("Replicate's language models have no tool calls", f"messages[{i}].tool_calls")
        if role == "user" and isinstance(content, list):
            texts = []
            for j, part in enumerate(content):
                if part.get("type") == "image_url":
                    images.append((part.get("image_url") or {}).get("url") or "")
                elif part.get("type") == "text":
                    texts.append(part.get("text") or "")
                else:
                    raise bad_request(f"Replicate takes text and images, not {part.get('type')!r} parts",
                                      f"messages[{i}].content[{j}]")
            text = "".join(texts)
        else:
            text = content_text(content, f"messages[{i}]", ONLY_TEXT)
        messages.append({"role": "system" if role == "developer" else role, "content": text})
    out: dict[str, Any] = {"messages": messages}
    if images:
        out["image_input"] = images
    return out

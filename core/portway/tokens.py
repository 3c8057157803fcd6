"""A cheap estimate of a request's input tokens, with no tokenizer.

Used for the context-window pre-check (a request that cannot fit is refused
before it costs anything) and for ``POST /v1/messages/count_tokens`` where
the provider has no counting API of its own.

The estimate walks the request once and measures its text in UTF-8 bytes:
message content, tool calls and results, tool definitions, the system
prompt.  An image counts :data:`IMAGE_TOKENS`; its bytes (base64 data, a
URL) do not count as text.  Then:

* :func:`estimate` = bytes / :data:`BYTES_PER_TOKEN` (4: the usual figure for
  English with a BPE tokenizer; code and other scripts take more tokens per
  byte, plain English a little fewer), plus a few tokens per message for the
  chat template.  It is what ``count_tokens`` answers: an estimate, marked as
  one.
* :func:`lower_bound` = bytes / :data:`BYTES_PER_TOKEN_MAX` (8) with no
  overheads and no images.  Real tokenizers (cl100k, o200k, Claude's,
  Gemini's) do not pack more than that into a token on ordinary text, so a
  request refused by the pre-check is refused because it cannot fit, not
  because the estimate was high.  A request between the two goes to the
  provider, which answers with its own context-length error.

It is a single pass with no allocation but the counts: a few microseconds
for a chat request, tens for a 100 KB agent request (see
docs/performance.md).
"""

from __future__ import annotations

from typing import Any

BYTES_PER_TOKEN = 4
BYTES_PER_TOKEN_MAX = 8
#: What an image costs in the estimate (OpenAI's high-detail 1024x1024 is 765;
#: Claude's ~1.15 megapixel image about 1,600).
IMAGE_TOKENS = 1000
#: Per message: the chat template's role and separators.
MESSAGE_TOKENS = 4

#: Keys whose values are image data or references, not text.
_IMAGE_KEYS = frozenset({"image_url", "source", "inlineData", "inline_data", "images"})
#: Keys that are not sent to the model as text.
_SKIPPED_KEYS = frozenset({"model", "stream", "stream_options", "metadata", "id", "tool_call_id", "tool_use_id",
                           "cache_control", "type", "role", "signature", "max_tokens", "max_completion_tokens",
                           "temperature", "top_p", "top_k", "seed", "n", "user", "stop"})


def measure(body: dict[str, Any]) -> tuple[int, int, int]:
    """(UTF-8 bytes of text, images, messages) in a chat request in the
    OpenAI or the Anthropic shape."""
    size = 0
    images = 0
    stack: list[Any] = [value for key, value in body.items() if key not in _SKIPPED_KEYS]
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is str:
            size += len(node) if node.isascii() else len(node.encode("utf-8", "surrogatepass"))
        elif kind is dict:
            for key, value in node.items():
                if key in _IMAGE_KEYS:
                    images += 1
                elif key not in _SKIPPED_KEYS:
                    stack.append(value)
        elif kind is list:
            stack.extend(node)
    messages = body.get("messages")
    return size, images, len(messages) if isinstance(messages, list) else 0


def estimate(body: dict[str, Any]) -> int:
    """The estimated input tokens of a chat request (see the module docstring)."""
    size, images, messages = measure(body)
    return -(-size // BYTES_PER_TOKEN) + images * IMAGE_TOKENS + messages * MESSAGE_TOKENS


def lower_bound(body: dict[str, Any]) -> int:
    """Fewer input tokens than the request can have (see the module docstring)."""
    return measure(body)[0] // BYTES_PER_TOKEN_MAX


def requested_output(body: dict[str, Any]) -> int:
    """The output tokens a request asks room for (0 when it does not say)."""
    for key in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        value = body.get(key)
        if type(value) is int and value > 0:
            return value
    return 0

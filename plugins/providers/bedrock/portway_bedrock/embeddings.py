"""OpenAI embeddings requests as Bedrock ``InvokeModel`` bodies, and the
answers back.

* Amazon Titan Text Embeddings (``amazon.titan-embed-text-v2:0``; v1 and
  ``titan-embed-g1-text-02`` without the options): one text per call,
  ``{"inputText", "dimensions", "normalize"}`` → ``{"embedding",
  "inputTextTokenCount"}``.
* Cohere Embed (``cohere.embed-english-v3``, ``-multilingual-v3``,
  ``embed-v4``): up to 96 texts per call, ``{"texts", "input_type",
  "embedding_types": ["float"]}`` → ``{"embeddings": {"float": [...]}}``; the
  token count comes in the ``x-amzn-bedrock-input-token-count`` header.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass
from typing import Any

from portway.errors import PortwayError
from portway.formats import MalformedAnswer
from portway_bedrock.models import base_name, family

#: Cohere Embed takes at most this many texts in one call.
COHERE_BATCH = 96
#: Keys a client may add to an embeddings request for these models, passed as they are.
TITAN_OPTIONS = ("normalize",)
COHERE_OPTIONS = ("truncate", "input_type", "max_tokens")


def bad_request(message: str, param: str | None = None) -> PortwayError:
    return PortwayError(message, kind="bad_request", param=param)


@dataclass(frozen=True)
class Plan:
    """The InvokeModel bodies that answer one embeddings request, in order."""

    kind: str  # "titan" or "cohere"
    bodies: list[dict[str, Any]]


def _texts(body: dict[str, Any]) -> list[str]:
    value = body.get("input")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return list(value)
    raise bad_request("Bedrock embeddings models take text: input must be a string or a list of strings", "input")


def plan(body: dict[str, Any], model: str, default_input_type: str) -> Plan:
    texts = _texts(body)
    name, publisher = base_name(model), family(model)
    dimensions = body.get("dimensions")
    if publisher == "amazon" and name.startswith("titan-embed-text-v2"):
        options = {key: body[key] for key in TITAN_OPTIONS if key in body}
        if dimensions is not None:
            options["dimensions"] = dimensions
        return Plan("titan", [{"inputText": text, **options} for text in texts])
    if publisher == "amazon" and name.startswith(("titan-embed-text-v1", "titan-embed-g1-text")):
        if dimensions is not None:
            raise bad_request(f"{model} has a fixed size: dimensions is not supported", "dimensions")
        return Plan("titan", [{"inputText": text} for text in texts])
    if publisher == "cohere" and name.startswith("embed-"):
        options = {key: body[key] for key in COHERE_OPTIONS if key in body}
        options.setdefault("input_type", default_input_type)
        if dimensions is not None:
            if not name.startswith("embed-v4"):
                raise bad_request(f"{model} has a fixed size: dimensions is not supported", "dimensions")
            options["output_dimension"] = dimensions
        return Plan("cohere", [{"texts": texts[i:i + COHERE_BATCH], **options, "embedding_types": ["float"]}
                               for i in range(0, len(texts), COHERE_BATCH)])
    raise bad_request(f"embeddings are supported for Amazon Titan Text Embeddings and Cohere Embed models, "
                      f"not {model!r}", "model")


def _vector(value: Any, where: str) -> list[float]:
    if type(value) is not list or not all(type(x) in (float, int) for x in value):
        raise MalformedAnswer(f"{where} is not a list of numbers")
    return value


def vectors(kind: str, answer: Any, expected: int) -> tuple[list[list[float]], int | None]:
    """The vectors of one answer and its token count (None when the body has none)."""
    if type(answer) is not dict:
        raise MalformedAnswer("the answer is not a JSON object")
    if kind == "titan":
        tokens = answer.get("inputTextTokenCount")
        if tokens is not None and type(tokens) is not int:
            raise MalformedAnswer("inputTextTokenCount is not an integer")
        return [_vector(answer.get("embedding"), "embedding")], tokens
    embeddings = answer.get("embeddings")
    if type(embeddings) is dict:  # the shape embedding_types asks for
        embeddings = embeddings.get("float")
    if type(embeddings) is not list or len(embeddings) != expected:
        raise MalformedAnswer(f"embeddings is not a list of {expected} vectors")
    return [_vector(v, f"embeddings[{i}]") for i, v in enumerate(embeddings)], None


def encode(vector: list[float], encoding_format: Any) -> list[float] | str:
    """A vector as the client asked: floats, or base64 of little-endian
    float32 (what OpenAI's ``encoding_format: base64`` returns)."""
    if encoding_format != "base64":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()

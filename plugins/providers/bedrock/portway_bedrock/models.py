"""Bedrock model ids: where they go in the path, and which family one names.

A model id is a base model id (``anthropic.claude-3-haiku-20240307-v1:0``),
a cross-region inference profile id (``us.anthropic.claude-…``,
``global.…``), or an ARN (``arn:aws:bedrock:us-east-1:123456789012:
inference-profile/us.anthropic.claude-…``, a provisioned model, an
application inference profile…).  It is one path segment, escaped whole as
botocore does (``:`` as ``%3A``, ``/`` as ``%2F``).
"""

from __future__ import annotations

from urllib.parse import quote

from portway.errors import PortwayError

#: The prefixes of cross-region inference profile ids.
GEO_PREFIXES = frozenset({"us", "eu", "apac", "global", "us-gov", "jp", "au", "ca"})


def model_path(model: str, operation: str) -> str:
    """``/model/{modelId}/{operation}``, the id escaped as one segment.  An id
    that is empty or a dot segment (``.``/``..``, which would move the path
    to another resource) is refused."""
    if model in ("", ".", ".."):
        raise PortwayError(f"{model!r} is not a Bedrock model id", kind="bad_request", param="model")
    return f"/model/{quote(model, safe='')}/{operation}"


def family(model: str) -> str:
    """The publisher part of a model id (``anthropic``, ``amazon``, ``meta``,
    ``cohere``, …), looked up in an ARN's resource name too; ``""`` when the
    id does not say (an application inference profile or a provisioned
    model's ARN)."""
    name = model.rpartition("/")[2] if model.startswith("arn:") else model
    parts = name.split(".")
    if len(parts) > 2 and parts[0] in GEO_PREFIXES:
        parts = parts[1:]
    return parts[0] if len(parts) > 1 else ""


def base_name(model: str) -> str:
    """The model name without ARN, geo prefix and publisher:
    ``us.amazon.nova-pro-v1:0`` → ``nova-pro-v1:0``."""
    name = model.rpartition("/")[2] if model.startswith("arn:") else model
    parts = name.split(".")
    if len(parts) > 2 and parts[0] in GEO_PREFIXES:
        parts = parts[1:]
    return ".".join(parts[1:]) if len(parts) > 1 else name

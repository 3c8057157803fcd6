"""Pydantic models of the request bodies the gateway accepts.

They validate; the gateway then keeps working on the plain dict (fields the
models do not know pass through untouched to providers that accept them).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from portway.errors import ValidationFailed


def real_path(loc: tuple[Any, ...], body: Any) -> tuple[str, int]:
    """Turn pydantic's location into the path of the offending field in the
    body, e.g. ``messages[0].content``.  Union branches and discriminator
    tags appear in ``loc`` but not in the body, so walk the body and keep
    only the parts that exist there (a missing field is the last part)."""
    out, depth, node = "", 0, body
    for i, part in enumerate(loc):
        if isinstance(node, list) and isinstance(part, int) and part < len(node):
            out, node = out + f"[{part}]", node[part]
        elif isinstance(node, dict) and isinstance(part, str) and (part in node or i == len(loc) - 1):
            out, node = (f"{out}.{part}" if out else part), node.get(part)
        else:
            continue
        depth += 1
    return out, depth


def validate(model: type[BaseModel], body: Any) -> None:
    """Validate ``body``; raise a 400 naming the first bad field."""
    if not isinstance(body, dict):
        raise ValidationFailed("the request body must be a JSON object")
    try:
        model.model_validate(body)
    except ValidationError as exc:
        # With unions pydantic reports every branch; the error that reaches
        # deepest into the body is the one that names the real mistake.
        scored = [(real_path(err["loc"], body), err) for err in exc.errors()]
        (param, _), first = max(scored, key=lambda item: item[0][1])
        msg = first["msg"].removeprefix("Value error, ")
        raise ValidationFailed(f"invalid request: {param or 'body'}: {msg}", param=param or None) from None

"""The condition language of the ``conditional`` strategy: small, safe, no eval.

A condition is read once, at start-up, into a Python closure; a request
only runs the closure.  The language::

    metadata.tier == "free"                  # the client's x-portway-metadata tags
    has_images or has_tools                  # what the request carries
    body.temperature >= 0.7 and not stream   # any field of the (OpenAI-shaped) request body
    metadata.team in ["search", "ads"]
    input_tokens > 50000                     # an estimate of the prompt's tokens

- values: strings in double or single quotes, numbers, ``true``, ``false``,
  ``null``, lists ``[a, b]``;
- names: ``metadata.<tag>``, ``body.<field>[.<field>...]``, ``has_images``,
  ``has_tools``, ``stream``, ``model``, ``input_tokens``, ``endpoint``,
  ``client_format``; a name that is absent is ``null``;
- operators: ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``in``, ``not in``,
  ``and``, ``or``, ``not``, parentheses.  Comparing values of different
  kinds (a string with a number) is false, never an error.

Anything else is a config error that says where.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from portway import tokens

Condition = Callable[[Any], Any]

_TOKEN = re.compile(r"""\s*(?:
    (?P<number>-?\d+(?:\.\d+)?)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,)
  | (?P<name>[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*)
)""", re.VERBOSE)

_WORDS = {"and", "or", "not", "in", "true", "false", "null"}


class ConditionError(ValueError):
    pass


def _tokens(text: str) -> list[tuple[str, str, int]]:
    found = []
    at = 0
    while at < len(text):
        if text[at:].strip() == "":
            break
        match = _TOKEN.match(text, at)
        if match is None or match.end() == at:
            rest = text[at:].lstrip()
            raise ConditionError(f"cannot read {rest[:20]!r} at character {len(text) - len(rest) + 1}")
        kind = match.lastgroup or ""
        value, where = match.group(kind), match.start(kind) + 1
        if kind == "name" and value in _WORDS:
            kind = "word"
        found.append((kind, value, where))
        at = match.end()
    return found


def _has_images(ctx: Any) -> bool:
    for message in ctx.body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list) and any(
                isinstance(part, dict) and part.get("type") in ("image_url", "input_image", "image")
                for part in content):
            return True
    return False


def _name(path: str) -> Condition:
    head, _, rest = path.partition(".")
    if head == "metadata" and rest:
        return lambda ctx: ctx.tags.get(rest)
    if head == "body" and rest:
        keys = rest.split(".")

        def field(ctx: Any) -> Any:
            value: Any = ctx.body
            for key in keys:
                if not isinstance(value, dict):
                    return None
                value = value.get(key)
            return value
        return field
    simple: dict[str, Condition] = {
        "has_images": _has_images,
        "has_tools": lambda ctx: bool(ctx.body.get("tools") or ctx.body.get("functions")),
        "stream": lambda ctx: ctx.stream,
        "model": lambda ctx: ctx.model,
        "input_tokens": lambda ctx: tokens.estimate(ctx.body),
        "endpoint": lambda ctx: ctx.endpoint,
        "client_format": lambda ctx: ctx.client_format,
    }
    if path in simple:
        return simple[path]
    raise ConditionError(f"unknown name {path!r}: use metadata.<tag>, body.<field>, or one of "
                         f"{', '.join(sorted(simple))}")


def _compare(op: str, left: Any, right: Any) -> bool:
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    if op in ("in", "not in"):
        inside = isinstance(right, (list, str)) and (isinstance(left, str) or not isinstance(right, str)) \
            and left in right
        return inside if op == "in" else not inside
    numbers = (int, float)
    if not ((isinstance(left, numbers) and isinstance(right, numbers) and not isinstance(left, bool)
             and not isinstance(right, bool)) or (isinstance(left, str) and isinstance(right, str))):
        return False
    return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]


class _Parser:
    def __init__(self, text: str) -> None:
        self.items = _tokens(text)
        self.at = 0

    def peek(self) -> tuple[str, str, int] | None:
        return self.items[self.at] if self.at < len(self.items) else None

    def take(self, value: str | None = None) -> tuple[str, str, int]:
        item = self.peek()
        if item is None:
            raise ConditionError(f"the condition ends where {value or 'a value'!r} was expected")
        if value is not None and item[1] != value:
            raise ConditionError(f"expected {value!r} at character {item[2]}, found {item[1]!r}")
        self.at += 1
        return item

    def parse(self) -> Condition:
        if not self.items:
            raise ConditionError("the condition is empty")
        condition = self.disjunction()
        item = self.peek()
        if item is not None:
            raise ConditionError(f"unexpected {item[1]!r} at character {item[2]}")
        return condition

    def disjunction(self) -> Condition:
        parts = [self.conjunction()]
        while (item := self.peek()) is not None and item[1] == "or":
            self.take()
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else (lambda ctx: any(part(ctx) for part in parts))

    def conjunction(self) -> Condition:
        parts = [self.negation()]
        while (item := self.peek()) is not None and item[1] == "and":
            self.take()
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else (lambda ctx: all(part(ctx) for part in parts))

    def negation(self) -> Condition:
        item = self.peek()
        if item is not None and item[1] == "not":
            self.take()
            inner = self.negation()
            return lambda ctx: not inner(ctx)
        return self.comparison()

    def comparison(self) -> Condition:
        left = self.value()
        item = self.peek()
        if item is None or item[1] not in ("==", "!=", "<", "<=", ">", ">=", "in", "not"):
            return left
        op = self.take()[1]
        if op == "not":
            self.take("in")
            op = "not in"
        right = self.value()
        return lambda ctx: _compare(op, left(ctx), right(ctx))

    def value(self) -> Condition:
        kind, text, where = self.take()
        if kind == "number":
            number = float(text) if "." in text else int(text)
            return lambda ctx: number
        if kind == "string":
            string = re.sub(r"\\(.)", r"\1", text[1:-1])
            return lambda ctx: string
        if kind == "word" and text in ("true", "false", "null"):
            constant = {"true": True, "false": False, "null": None}[text]
            return lambda ctx: constant
        if kind == "name":
            try:
                return _name(text)
            except ConditionError as exc:
                raise ConditionError(f"{exc} (character {where})") from None
        if text == "(":
            inner = self.disjunction()
            self.take(")")
            return inner
        if text == "[":
            items: list[Condition] = []
            while (item := self.peek()) is not None and item[1] != "]":
                items.append(self.value())
                if (item := self.peek()) is not None and item[1] == ",":
                    self.take()
            self.take("]")
            return lambda ctx: [item(ctx) for item in items]
        raise ConditionError(f"unexpected {text!r} at character {where}")


def compile_condition(text: str) -> Condition:
    """``text`` as a function of a request context; :class:`ConditionError`
    (a ``ValueError``) saying what is wrong and where."""
    return _Parser(text).parse()


__all__ = ["Condition", "ConditionError", "compile_condition"]

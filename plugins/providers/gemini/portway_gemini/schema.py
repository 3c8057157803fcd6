"""A JSON Schema as the schema subset Gemini accepts (``responseSchema``,
``functionDeclarations[].parameters``): an OpenAPI 3.0 ``Schema`` object
(python-genai ``types.Schema``).

What changes (the plugin README has the same list):

* ``$ref`` into ``$defs`` / ``definitions`` is inlined; a schema that refers
  to itself (recursion) cannot be written without references: a 400;
* ``"type": [X, "null"]``, ``anyOf: [X, {"type": "null"}]`` and
  ``"type": "null"`` become ``nullable: true``; several non-null types
  become an ``anyOf`` of one schema each;
* ``oneOf`` becomes ``anyOf`` (Gemini has no "exactly one"); ``allOf`` of one
  schema is that schema, of several a 400;
* ``const`` becomes a one-value ``enum``; enum values are sent as strings
  (Gemini's enum is a list of strings), so only string enums are kept as
  they are: an enum of numbers or booleans is a 400;
* type names are upper case (``STRING``, ``OBJECT``, …);
* every keyword Gemini's ``Schema`` lacks is dropped: ``$schema``, ``$id``,
  ``$comment``, ``additionalProperties``, ``patternProperties``,
  ``unevaluatedProperties``, ``exclusiveMinimum``/``exclusiveMaximum``,
  ``multipleOf``, ``uniqueItems``, ``contains``, ``prefixItems``, ``not``,
  ``if``/``then``/``else``, ``dependentRequired``/``dependentSchemas``,
  ``examples`` (the first becomes ``example``), ``readOnly``/``writeOnly``,
  ``deprecated``, ``contentEncoding``/``contentMediaType``, and the
  ``strict`` flag of a JSON-schema response format.
"""

from __future__ import annotations

from typing import Any

from portway.errors import PortwayError

#: Keywords of Gemini's Schema whose values are copied as they are.
_PLAIN = ("format", "title", "description", "nullable", "default", "example", "pattern", "minimum", "maximum",
          "minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties")
_TYPES = {"string": "STRING", "number": "NUMBER", "integer": "INTEGER", "boolean": "BOOLEAN", "array": "ARRAY",
          "object": "OBJECT"}


def bad_schema(message: str, param: str) -> PortwayError:
    return PortwayError(f"{message}: Gemini's schema subset cannot express it", kind="bad_request", param=param)


def to_gemini_schema(schema: Any, param: str) -> dict[str, Any]:
    """``schema`` (a JSON Schema object) in Gemini's subset; ``param`` names
    it in a 400 for what cannot be expressed."""
    if not isinstance(schema, dict):
        raise bad_schema("a schema is not an object", param)
    defs = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    return _convert(schema, defs, param, ())


def _resolve(ref: Any, defs: dict[str, Any], param: str, seen: tuple[str, ...]) -> tuple[dict[str, Any], tuple[str, ...]]:
    if not isinstance(ref, str) or not ref.startswith(("#/$defs/", "#/definitions/")):
        raise bad_schema(f"the reference {ref!r} does not point into $defs", param)
    name = ref.rsplit("/", 1)[1]
    if name in seen:
        raise bad_schema(f"the schema {name!r} refers to itself", param)
    target = defs.get(name)
    if not isinstance(target, dict):
        raise bad_schema(f"the reference {ref!r} names no definition", param)
    return target, (*seen, name)


def _convert(schema: dict[str, Any], defs: dict[str, Any], param: str, seen: tuple[str, ...]) -> dict[str, Any]:
    if "$ref" in schema:
        target, seen = _resolve(schema["$ref"], defs, param, seen)
        # Keywords beside a $ref (a description, a default) refine the definition.
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    if "allOf" in schema:
        parts = schema["allOf"]
        if not isinstance(parts, list) or len(parts) != 1:
            raise bad_schema("allOf of several schemas", param)
        schema = {**parts[0], **{k: v for k, v in schema.items() if k != "allOf"}}
        return _convert(schema, defs, param, seen)

    out: dict[str, Any] = {k: schema[k] for k in _PLAIN if k in schema}
    if "example" not in out and isinstance(schema.get("examples"), list) and schema["examples"]:
        out["example"] = schema["examples"][0]

    alternatives = schema.get("anyOf", schema.get("oneOf"))
    types = schema.get("type")
    types = [types] if isinstance(types, str) else list(types or [])
    if "null" in types:
        out["nullable"] = True
        types = [t for t in types if t != "null"]
    if alternatives is not None:
        if not isinstance(alternatives, list):
            raise bad_schema("anyOf is not a list", param)
        kept = [a for a in alternatives if not (isinstance(a, dict) and a.get("type") == "null" and len(a) == 1)]
        if len(kept) < len(alternatives):
            out["nullable"] = True
        converted = [_convert(a, defs, param, seen) if isinstance(a, dict) else _fail(param) for a in kept]
        if len(converted) == 1:
            return {**out, **converted[0], **({"nullable": True} if out.get("nullable") else {})}
        out["anyOf"] = converted
        return out
    if len(types) > 1:
        out["anyOf"] = [_convert({**schema, "type": t}, defs, param, seen) for t in types]
        for key in ("type", "properties", "required", "items", "enum"):
            out.pop(key, None)
        return out

    kind = types[0] if types else None
    if kind is not None:
        if kind not in _TYPES:
            raise bad_schema(f"the type {kind!r}", param)
        out["type"] = _TYPES[kind]
    enum = [schema["const"]] if "const" in schema else schema.get("enum")
    if enum is not None:
        if not isinstance(enum, list) or not all(isinstance(v, str) for v in enum):
            raise bad_schema("an enum (or const) whose values are not all strings", param)
        out["enum"] = list(enum)
        out.setdefault("type", "STRING")

    properties = schema.get("properties")
    if isinstance(properties, dict) and properties:  # Gemini refuses an empty properties object
        out["properties"] = {name: _convert(sub, defs, f"{param}.properties.{name}", seen)
                             if isinstance(sub, dict) else _fail(f"{param}.properties.{name}")
                             for name, sub in properties.items()}
        out.setdefault("type", "OBJECT")
        if isinstance(schema.get("required"), list):
            out["required"] = [name for name in schema["required"] if name in properties]
        if len(properties) > 1:
            # JSON Schema keeps the order the properties were written in; Gemini needs it said.
            out["propertyOrdering"] = list(properties)
    items = schema.get("items")
    if isinstance(items, dict):
        out["items"] = _convert(items, defs, f"{param}.items", seen)
        out.setdefault("type", "ARRAY")
    return out


def _fail(param: str) -> dict[str, Any]:
    raise bad_schema("a sub-schema is not an object", param)

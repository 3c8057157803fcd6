"""Checks that judge a whole text (its length, whether it is JSON, its
language) or the request itself (its model, its metadata).  They deny or
flag; there is no part of the text to redact."""

from __future__ import annotations

import json
import re
from fnmatch import fnmatchcase
from typing import Any

from pydantic import Field, field_validator, model_validator

from portway.guardrails import Check, CheckConfig, Match, Stage


def _whole(text: str, category: str, reason: str) -> list[Match]:
    return [Match(0, len(text), category, reason)]


class LengthConfig(CheckConfig):
    max_chars: int | None = Field(default=None, ge=0)
    max_words: int | None = Field(default=None, ge=0)
    #: Tokens as the gateway estimates them (UTF-8 bytes / 4, rounded up: see portway.tokens).
    max_tokens: int | None = Field(default=None, ge=0)
    min_chars: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _some_limit(self) -> LengthConfig:
        if all(v is None for v in (self.max_chars, self.max_words, self.max_tokens, self.min_chars)):
            raise ValueError("set at least one of max_chars, max_words, max_tokens, min_chars")
        return self


class LengthCheck(Check):
    """A text longer (or shorter) than its limits: characters, words, tokens.
    On input, the texts of the request together."""

    type = "length"
    config_model = LengthConfig
    scope = "text"

    def scan(self, text: str) -> list[Match]:
        config: LengthConfig = self.config  # type: ignore[assignment]
        if config.max_chars is not None and len(text) > config.max_chars:
            return _whole(text, "length", f"{len(text)} characters, more than {config.max_chars}")
        if config.min_chars is not None and len(text) < config.min_chars:
            return _whole(text, "length", f"{len(text)} characters, fewer than {config.min_chars}")
        if config.max_words is not None:
            words = len(text.split())
            if words > config.max_words:
                return _whole(text, "length", f"{words} words, more than {config.max_words}")
        if config.max_tokens is not None:
            tokens = -(-len(text.encode("utf-8")) // 4)
            if tokens > config.max_tokens:
                return _whole(text, "length", f"about {tokens} tokens, more than {config.max_tokens}")
        return []


_FENCED = re.compile(r"\A\s*```[\w-]*\s*\n(.*?)\n\s*```\s*\Z", re.DOTALL)


def json_text(text: str, fences: bool) -> str:
    """``text`` without a Markdown fence around it (when ``fences``)."""
    if fences:
        m = _FENCED.match(text)
        if m:
            return m.group(1)
    return text


class JSONConfig(CheckConfig):
    #: Accept JSON inside one Markdown code fence (```json ... ```).
    allow_fences: bool = True
    #: Only a JSON object (or array) counts, not a bare string or number.
    require_container: bool = True


class JSONCheck(Check):
    """A text that is not valid JSON."""

    type = "json"
    config_model = JSONConfig
    scope = "text"

    def parse(self, text: str) -> tuple[Any, str | None]:
        config: JSONConfig = self.config  # type: ignore[assignment]
        try:
            value = json.loads(json_text(text, config.allow_fences))
        except ValueError as exc:
            return None, f"not valid JSON ({type(exc).__name__} at line {getattr(exc, 'lineno', '?')})"
        if config.require_container and not isinstance(value, (dict, list)):
            return None, "JSON, but not an object or array"
        return value, None

    def scan(self, text: str) -> list[Match]:
        _, problem = self.parse(text)
        return _whole(text, "invalid_json", problem) if problem else []


class JSONSchemaConfig(JSONConfig):
    #: The JSON Schema the text must conform to (its ``$schema`` picks the draft; default 2020-12).
    json_schema: dict[str, Any] = Field(alias="schema")
    #: Non-streamed output only: when the answer does not conform, ask the model once more
    #: (the errors appended to the conversation); the second answer is checked again.
    reask: bool = False

    @field_validator("json_schema")
    @classmethod
    def _valid(cls, value: dict[str, Any]) -> dict[str, Any]:
        import jsonschema

        validator = jsonschema.validators.validator_for(value, default=jsonschema.Draft202012Validator)
        try:
            validator.check_schema(value)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"not a valid JSON Schema: {exc.message}") from None
        return value


class JSONSchemaCheck(JSONCheck):
    """A text that is not JSON conforming to a schema."""

    type = "json-schema"
    config_model = JSONSchemaConfig

    def __init__(self, name: str, config: JSONSchemaConfig) -> None:
        super().__init__(name, config)
        import jsonschema

        cls = jsonschema.validators.validator_for(config.json_schema, default=jsonschema.Draft202012Validator)
        self.validator = cls(config.json_schema)

    def problems(self, text: str) -> list[str]:
        """Why ``text`` does not conform (at most 5 reasons), by path and
        schema keyword: never quoting the text."""
        value, problem = self.parse(text)
        if problem:
            return [problem]
        out = []
        for error in sorted(self.validator.iter_errors(value), key=lambda e: list(e.absolute_path))[:5]:
            where = "/" + "/".join(str(p) for p in error.absolute_path)
            out.append(f"at {where}: fails {error.validator!r} ({json.dumps(error.validator_value)[:80]})")
        return out

    def scan(self, text: str) -> list[Match]:
        problems = self.problems(text)
        return _whole(text, "schema", "does not match the schema: " + "; ".join(problems)) if problems else []


class LanguageConfig(CheckConfig):
    #: ISO 639-1 codes the text may be in (``en``, ``fr``, ...).
    allow: list[str] = Field(min_length=1)
    #: Texts shorter than this are not judged (too short to tell).
    min_chars: int = Field(default=20, ge=1)


class LanguageCheck(Check):
    """A text in a language that is not on the allow-list (py3langid)."""

    type = "language"
    config_model = LanguageConfig
    scope = "text"
    _identifier: Any = None

    def __init__(self, name: str, config: LanguageConfig) -> None:
        super().__init__(name, config)
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        if LanguageCheck._identifier is None:  # the model loads once per process (about 0.2 s)
            LanguageCheck._identifier = LanguageIdentifier.from_model_file(MODEL_FILE)
        self.allow = {code.lower() for code in config.allow}

    def scan(self, text: str) -> list[Match]:
        config: LanguageConfig = self.config  # type: ignore[assignment]
        if len(text.strip()) < config.min_chars:
            return []
        language, _ = self._identifier.classify(text)
        if language in self.allow:
            return []
        return _whole(text, f"language:{language}", f"written in {language!r}, not in {', '.join(sorted(self.allow))}")


class ModelsConfig(CheckConfig):
    on: list[Stage] = Field(default_factory=lambda: ["input"], min_length=1)
    #: Model names a request may ask for (shell patterns: ``gpt-4o*``, ``claude/*``).  Empty: any.
    allow: list[str] = Field(default_factory=list)
    #: Model names a request may not ask for (checked first).
    deny: list[str] = Field(default_factory=list)


class ModelsCheck(Check):
    """The model a request asks for (as the client named it: an alias or
    ``<provider>/<model>``), against allowed and denied patterns."""

    type = "models"
    config_model = ModelsConfig
    scope = "request"
    stages = ("input",)

    async def check(self, text: str, ctx: Any, stage: Stage) -> list[Match]:
        config: ModelsConfig = self.config  # type: ignore[assignment]
        model = ctx.model
        if any(fnmatchcase(model, p) for p in config.deny) or (
                config.allow and not any(fnmatchcase(model, p) for p in config.allow)):
            return [Match(0, 0, "model", f"model {model!r} is not allowed")]
        return []


class MetadataConfig(CheckConfig):
    on: list[Stage] = Field(default_factory=lambda: ["input"], min_length=1)
    #: Keys the request body's ``metadata`` object must have, non-empty.
    keys: list[str] = Field(default_factory=list)
    #: Request headers that must be present, non-empty.
    headers: list[str] = Field(default_factory=list)
    #: Keys the client's ``x-portway-metadata`` tags must have, non-empty.
    tags: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _something(self) -> MetadataConfig:
        if not self.keys and not self.headers and not self.tags:
            raise ValueError("set keys, headers or tags")
        return self


class MetadataCheck(Check):
    """Required metadata: keys of the request's ``metadata`` object (OpenAI's;
    an Anthropic request's ``metadata.user_id`` arrives as ``user``), request
    headers (``x-team``) and the client's ``x-portway-metadata`` tags."""

    type = "metadata"
    config_model = MetadataConfig
    scope = "request"
    stages = ("input",)

    async def check(self, text: str, ctx: Any, stage: Stage) -> list[Match]:
        config: MetadataConfig = self.config  # type: ignore[assignment]
        metadata = ctx.body.get("metadata")
        metadata = metadata if isinstance(metadata, dict) else {}
        if ctx.body.get("user") and "user" not in metadata:
            metadata = {**metadata, "user": ctx.body["user"]}
        missing = [k for k in config.keys if metadata.get(k) in (None, "")]
        missing += [f"header {h}" for h in config.headers if not ctx.headers.get(h.lower())]
        tags = getattr(ctx, "tags", None) or {}
        missing += [f"tag {t}" for t in config.tags if not tags.get(t)]
        if missing:
            return [Match(0, 0, "metadata", f"missing required metadata: {', '.join(missing)}")]
        return []

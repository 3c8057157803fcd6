"""The condition language of the conditional strategy, table-driven: what
holds, what does not, and what is refused (and where)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from portway_routing.conditions import ConditionError, compile_condition


@dataclass
class Ctx:
    body: dict[str, Any]
    tags: dict[str, str] = field(default_factory=dict)
    endpoint: str = "chat.completions"
    client_format: str = "openai"

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True

    @property
    def model(self) -> str:
        return self.body.get("model", "")


TEXT = [{"role": "user", "content": "hi"}]
IMAGE = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]
TOOL = [{"type": "function", "function": {"name": "f"}}]
FREE = Ctx({"model": "smart", "messages": TEXT, "temperature": 0.9, "response_format": {"type": "json_object"}},
           {"tier": "free", "team": "search"})
PRO = Ctx({"model": "smart", "messages": IMAGE, "tools": TOOL, "stream": True, "max_tokens": 10}, {"tier": "pro"})


@pytest.mark.parametrize(("text", "free", "pro"), [
    ('metadata.tier == "free"', True, False),
    ("metadata.tier == 'free'", True, False),
    ('metadata.tier != "free"', False, True),
    ('metadata.team in ["search", "ads"]', True, False),
    ('metadata.team not in ["search", "ads"]', False, True),
    ("metadata.missing == null", True, True),
    ("has_images", False, True),
    ("has_tools", False, True),
    ("stream", False, True),
    ("not stream", True, False),
    ("body.temperature >= 0.7", True, False),
    ("body.temperature < 0.7", False, False),  # absent is null: no ordering with a number
    ('body.response_format.type == "json_object"', True, False),
    ("body.max_tokens > 5 and has_images", False, True),
    ("body.max_tokens < 10", False, False),
    ("body.max_tokens <= 10", False, True),
    ("body.max_tokens >= 11", False, False),
    ('metadata.tier == "free" or has_tools', True, True),
    ('not (metadata.tier == "free" or has_tools)', False, False),
    ('model == "smart" and endpoint == "chat.completions"', True, True),
    ("input_tokens < 100000", True, True),
    ('metadata.tier > 3', False, False),  # a string and a number: false, not an error
    ("true", True, True),
    ("false or null", False, False),
    ('"free" in metadata.tier', True, False),  # a substring
    ("body.messages.__class__ == null", True, True),  # a key looked up in a dict, never an attribute
])
def test_conditions(text: str, free: bool, pro: bool) -> None:
    condition = compile_condition(text)
    assert (bool(condition(FREE)), bool(condition(PRO))) == (free, pro)


@pytest.mark.parametrize(("text", "problem"), [
    ("", "the condition is empty"),
    ("tier == 1", "unknown name 'tier'"),
    ("metadata.tier = 1", "cannot read '= 1' at character 15"),
    ("metadata.tier ==", "the condition ends where 'a value' was expected"),
    ("(stream", "the condition ends where ')' was expected"),
    ("stream stream", "unexpected 'stream' at character 8"),
    ("__import__('os')", "unknown name '__import__'"),
    ("metadata.a not metadata.b", "expected 'in' at character 16"),
])
def test_bad_conditions_say_what_and_where(text: str, problem: str) -> None:
    with pytest.raises(ConditionError) as info:
        compile_condition(text)
    assert problem in str(info.value)

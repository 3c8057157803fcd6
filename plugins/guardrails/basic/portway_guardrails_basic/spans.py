"""Checks that find parts of a text: each match can be redacted, and on a
stream is found through the window."""

from __future__ import annotations

import ipaddress
import re
from fnmatch import fnmatchcase
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from portway.guardrails import Check, CheckConfig, Match


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None


class RegexConfig(CheckConfig):
    #: A Python regular expression (flags inline: ``(?i)``).
    pattern: str
    #: The category verdicts show (never the matched text).
    category: str = "regex"
    #: With ``action: redact``, what replaces a match (``\\1`` and ``\\g<name>`` refer to its
    #: groups); default ``[REDACTED:<category>]``.
    replacement: str | None = None

    @field_validator("pattern")
    @classmethod
    def _valid(cls, value: str) -> str:
        _compile(value)
        return value


class RegexCheck(Check):
    """A regular expression: match (deny or flag), or match-and-replace (redact)."""

    type = "regex"
    config_model = RegexConfig

    def __init__(self, name: str, config: RegexConfig) -> None:
        super().__init__(name, config)
        self.pattern = _compile(config.pattern)
        self.category = config.category
        self.replacement = config.replacement

    def scan(self, text: str) -> list[Match]:
        out = []
        for m in self.pattern.finditer(text):
            if m.end() == m.start():
                continue  # an empty match finds nothing
            out.append(Match(m.start(), m.end(), self.category, f"matched the {self.category} pattern",
                             m.expand(self.replacement) if self.replacement is not None else None))
        return out


class DenyListConfig(CheckConfig):
    #: Words and phrases; a phrase matches across any run of white space.
    terms: list[str] = Field(min_length=1)
    case_sensitive: bool = False
    #: Only whole words (``class`` does not match ``classic``).
    whole_words: bool = True
    category: str = "denied_term"


class DenyListCheck(Check):
    """Words and phrases, found as whole words in any case (by default)."""

    type = "deny-list"
    config_model = DenyListConfig

    def __init__(self, name: str, config: DenyListConfig) -> None:
        super().__init__(name, config)
        terms = sorted({t.strip() for t in config.terms if t.strip()}, key=len, reverse=True)
        alternatives = "|".join(r"\s+".join(re.escape(word) for word in term.split()) for term in terms)
        edge_start, edge_end = (r"(?<!\w)", r"(?!\w)") if config.whole_words else ("", "")
        self.pattern = re.compile(f"{edge_start}(?:{alternatives}){edge_end}",
                                  0 if config.case_sensitive else re.IGNORECASE)
        self.category = config.category

    def scan(self, text: str) -> list[Match]:
        return [Match(m.start(), m.end(), self.category, "used a denied term") for m in self.pattern.finditer(text)]


#: Phrases of prompt-injection attempts (English), each a category of its own.
INJECTION_PATTERNS: dict[str, str] = {
    "ignore_instructions": r"\b(?:ignore|disregard|forget|override|bypass)\b(?:\s+\w+){0,3}?\s+"
                           r"(?:previous|prior|above|earlier|preceding|all|your|the|system)\b(?:\s+\w+){0,2}?\s+"
                           r"(?:instructions?|prompts?|rules|directions|guidelines|context)\b",
    "reveal_prompt": r"\b(?:reveal|show|print|repeat|output|tell\s+me|what\s+(?:is|are|was))\b(?:\s+\w+){0,3}?\s+"
                     r"(?:system|initial|hidden|original|secret)\s+(?:prompt|instructions?|message)\b",
    "role_override": r"\b(?:you\s+are\s+now|from\s+now\s+on,?\s+you\s+(?:are|will)|pretend\s+(?:to\s+be|you\s+are)|"
                     r"act\s+as\s+(?:if\s+you\s+(?:are|were)\s+)?(?:an?\s+)?(?:unrestricted|unfiltered|jailbroken|evil|DAN)\b)",
    "jailbreak_mode": r"\b(?:developer|god|DAN|jailbreak|unrestricted)\s+mode\b|\bdo\s+anything\s+now\b",
    "no_restrictions": r"\bwithout\s+(?:any\s+)?(?:restrictions|limitations|filters|censorship|guidelines|rules)\b",
    "chat_markup": r"<\|(?:im_start|im_end|system|endoftext)\|>|\[/?INST\]|<</?SYS>>|^\s*#{2,}\s*system\s*:|"
                   r"\bBEGIN\s+SYSTEM\s+PROMPT\b",
}


class PromptInjectionConfig(CheckConfig):
    #: The built-in heuristics to use (default all: ignore_instructions, reveal_prompt,
    #: role_override, jailbreak_mode, no_restrictions, chat_markup).
    heuristics: list[Literal["ignore_instructions", "reveal_prompt", "role_override", "jailbreak_mode",
                             "no_restrictions", "chat_markup"]] | None = None
    #: More patterns of your own (regular expressions, matched case-insensitively).
    patterns: list[str] = Field(default_factory=list)

    @field_validator("patterns")
    @classmethod
    def _valid(cls, value: list[str]) -> list[str]:
        for pattern in value:
            _compile(pattern)
        return value


class PromptInjectionCheck(Check):
    """Heuristics for prompt-injection attempts: phrases that try to override
    the instructions, reveal the system prompt, switch the model into an
    unrestricted role, or smuggle chat-template markup."""

    type = "prompt-injection"
    config_model = PromptInjectionConfig

    def __init__(self, name: str, config: PromptInjectionConfig) -> None:
        super().__init__(name, config)
        chosen = config.heuristics or list(INJECTION_PATTERNS)
        self.patterns = [(re.compile(INJECTION_PATTERNS[h], re.IGNORECASE | re.MULTILINE), h) for h in chosen]
        self.patterns += [(re.compile(p, re.IGNORECASE), "custom") for p in config.patterns]

    def scan(self, text: str) -> list[Match]:
        out = []
        for pattern, heuristic in self.patterns:
            out += [Match(m.start(), m.end(), "prompt_injection", f"looks like a prompt injection ({heuristic})")
                    for m in pattern.finditer(text) if m.end() > m.start()]
        return out


# RFC 3986's unreserved, reserved and percent characters; a URL ends at white space, quotes or brackets.
_URL = re.compile(r"\b(?:https?|ftp)://[^\s<>\"'`()\[\]{}]+|\bwww\.[^\s<>\"'`()\[\]{}]+", re.IGNORECASE)
_HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)\Z", re.IGNORECASE)


def url_problem(url: str) -> str | None:
    """Why ``url`` is not a valid URL (None when it is)."""
    try:
        parts = urlsplit(url if "://" in url else "http://" + url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return "malformed"
    if not host:
        return "no host"
    if host.startswith("[") or ":" in host:
        try:
            ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return "bad host"
        return None
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return "bad host"
    labels = ascii_host.rstrip(".").split(".")
    if not all(_HOST_LABEL.match(label) for label in labels):
        return "bad host"
    if len(labels) < 2 and ascii_host != "localhost":
        return "no domain"
    return None


class URLConfig(CheckConfig):
    #: Hosts a URL may point to (``example.com`` also allows its subdomains; shell patterns such as
    #: ``*.corp.example`` work too).  Empty: any host.
    allow: list[str] = Field(default_factory=list)
    #: Hosts a URL may not point to (same forms); checked before ``allow``.
    deny: list[str] = Field(default_factory=list)
    #: Also match URLs that are not valid (no host, a bad host name or port).
    invalid: bool = True


def _host_in(host: str, patterns: list[str]) -> bool:
    for pattern in patterns:
        pattern = pattern.lower().rstrip(".")
        if fnmatchcase(host, pattern) or host == pattern or host.endswith("." + pattern):
            return True
    return False


class URLCheck(Check):
    """URLs: invalid ones, and those whose host is denied or not allowed."""

    type = "url"
    config_model = URLConfig

    def scan(self, text: str) -> list[Match]:
        config: URLConfig = self.config  # type: ignore[assignment]
        out = []
        for m in _URL.finditer(text):
            url = m.group(0).rstrip(".,;:!?")
            end = m.start() + len(url)
            problem = url_problem(url)
            if problem is not None:
                if config.invalid:
                    out.append(Match(m.start(), end, "url_invalid", f"contains an invalid URL ({problem})"))
                continue
            host = (urlsplit(url if "://" in url else "http://" + url).hostname or "").lower().rstrip(".")
            if _host_in(host, config.deny) or (config.allow and not _host_in(host, config.allow)):
                out.append(Match(m.start(), end, "url_not_allowed", "contains a URL to a host that is not allowed"))
        return out


# A fenced block (to its closing fence, or to the end of the text: on a stream the window holds it
# until it closes), and lines that are code in the common languages, two or more in a row.
_FENCE = re.compile(r"^[ \t]*(```|~~~)[^\n]*\n(?:.*?^[ \t]*\1[ \t]*$|.*\Z)", re.MULTILINE | re.DOTALL)
_CODE_LINE = (
    r"[ \t]*(?:(?:def|class)\s+\w+\s*[(:]|(?:from\s+[\w.]+\s+)?import\s+[\w.]+(?:\s+as\s+\w+)?\s*;?$|"
    r"#include\s*[<\"]|(?:public|private|protected|static)\s+[\w<>\[\]]+\s+\w+\s*\(|"
    r"(?:function|func|fn)\s+\w+\s*\(|(?:const|let|var)\s+\w+\s*=|"
    r"(?:SELECT|INSERT\s+INTO|UPDATE|DELETE\s+FROM|CREATE\s+TABLE)\b.*\b(?:FROM|VALUES|SET|WHERE|\()|"
    r"(?:return|raise|yield|throw)\b[^.!?]*$|print\(|echo\s|<\s*(?:script|html|div|\?php)\b|.*[;{}]\s*$|(?:if|for|while)\s*\(.*\)\s*\{?\s*$|"
    r"(?:sudo\s+)?(?:rm|curl|wget|chmod|pip|npm)\s+-{1,2}\w)"
)
_CODE_LINES = re.compile(rf"(?:^{_CODE_LINE}[^\n]*(?:\n|\Z)){{2,}}", re.MULTILINE)


class CodeConfig(CheckConfig):
    #: Fenced blocks (```) count.
    fenced: bool = True
    #: Runs of two or more lines that look like code count.
    lines: bool = True


class CodeCheck(Check):
    """Source code: fenced blocks, and runs of lines that look like code
    (definitions, imports, statements ending in ``;`` or braces, SQL, HTML,
    shell commands)."""

    type = "code"
    config_model = CodeConfig

    def scan(self, text: str) -> list[Match]:
        config: CodeConfig = self.config  # type: ignore[assignment]
        out = []
        if config.fenced:
            out += [Match(m.start(), m.end(), "code", "contains code") for m in _FENCE.finditer(text)]
        if config.lines:
            out += [Match(m.start(), m.end(), "code", "contains code") for m in _CODE_LINES.finditer(text)
                    if not any(f.start <= m.start() < f.end for f in out)]
        return out

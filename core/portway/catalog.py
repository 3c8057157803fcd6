"""The model catalog: for each ``provider/model``, its context window, its
maximum output, its prices and what it can do; and the cost of a response.

What is known of a model comes in layers, merged field by field (the first
layer that knows a field wins):

1. the ``catalog:`` section of the config, keyed ``<provider instance>/<model>``;
2. the provider's own limits table (:attr:`Provider.limits`: context
   window and maximum output of the models it documents);
3. the ``catalog_entry`` hook's answers, in hook order: provider plugins and
   others may know their models' limits; the built-in
   :mod:`portway.builtins.catalog` answers last, from the ``genai-prices``
   package (prices and context windows for some fifty providers);
4. the provider's own capability table (:attr:`Provider.capabilities`).

A lookup is made once per provider instance and model and kept (a bounded
memo: model names come from clients), so the request path pays a dict
lookup and a few multiplications for a response's cost.

Prices are USD per million tokens.  The cost of a response follows the
canonical (OpenAI) usage: ``prompt_tokens`` includes cached reads
(``prompt_tokens_details.cached_tokens``) and cache writes
(``prompt_tokens_details.cache_write_tokens``), ``completion_tokens``
includes reasoning (``completion_tokens_details.reasoning_tokens``).  Each
part is priced at its own rate, and at the input (output) rate when the
model has none of its own.  A model without a price, or a usage that is not
a plain count, has no cost: ``None``, never zero.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from portway.hooks import Hooks
    from portway.providers import Provider

log = logging.getLogger("portway.catalog")

#: What the catalog may say a model can do.
CAPABILITIES = frozenset({"tools", "vision", "json", "json_schema", "reasoning", "embeddings", "rerank"})
#: The prices a model may have, USD per million tokens.
PRICE_KEYS = ("input", "output", "cache_read", "cache_write", "reasoning")
#: How many (provider, model) lookups are kept before the memo starts again.
MEMO_SIZE = 4096


@dataclass(frozen=True, slots=True)
class Price:
    """A model's prices in USD per million tokens (None: not priced apart)."""

    input: float | None = None
    output: float | None = None
    cache_read: float | None = None
    cache_write: float | None = None
    reasoning: float | None = None
    #: (threshold, prices) in ascending order: when a request's prompt has
    #: more than ``threshold`` tokens, that tier's prices apply to all its
    #: tokens (the "cliff" tiers of long-context pricing).
    tiers: tuple[tuple[int, Price], ...] = ()

    def for_prompt(self, prompt_tokens: int) -> Price:
        chosen = self
        for threshold, tier in self.tiers:
            if prompt_tokens > threshold:
                chosen = tier
        return chosen

    def over(self, other: Price) -> Price:
        """These prices, with what they lack taken from ``other``."""
        return Price(*(_first(getattr(self, key), getattr(other, key)) for key in PRICE_KEYS),
                     tiers=self.tiers or other.tiers)

    def as_dict(self) -> dict[str, float]:
        return {key: value for key in PRICE_KEYS if (value := getattr(self, key)) is not None}


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What is known of one model at one provider.  Every field may be
    unknown (None)."""

    context_window: int | None = None
    max_output_tokens: int | None = None
    price: Price | None = None
    capabilities: frozenset[str] | None = None
    #: Where the fields came from, first layer first (``config``, a plugin's name, ``genai-prices``).
    sources: tuple[str, ...] = field(default=(), compare=False)

    def over(self, other: ModelInfo) -> ModelInfo:
        """This entry, with what it does not know taken from ``other``."""
        price = self.price.over(other.price) if self.price and other.price else self.price or other.price
        return ModelInfo(
            context_window=_first(self.context_window, other.context_window),
            max_output_tokens=_first(self.max_output_tokens, other.max_output_tokens),
            price=price,
            capabilities=_first(self.capabilities, other.capabilities),
            sources=self.sources + tuple(s for s in other.sources if s not in self.sources),
        )

    @property
    def empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self) if f.name != "sources")

    def public(self) -> dict[str, Any]:
        """The entry as ``GET /v1/models`` shows it (known fields only)."""
        out: dict[str, Any] = {}
        if self.context_window is not None:
            out["context_window"] = self.context_window
        if self.max_output_tokens is not None:
            out["max_output_tokens"] = self.max_output_tokens
        if self.price is not None and self.price.as_dict():
            out["pricing"] = self.price.as_dict()
        if self.capabilities is not None:
            out["capabilities"] = sorted(self.capabilities)
        return out


def _first(a: Any, b: Any) -> Any:
    return a if a is not None else b


def _count(value: Any) -> int | None:
    """A token count from an upstream's usage (untrusted): a non-negative int, or None."""
    if value is None:
        return 0
    if type(value) is int and value >= 0:
        return value
    return None


def cost_of(price: Price, usage: Mapping[str, Any]) -> float | None:
    """The cost in USD of ``usage`` (canonical usage) at ``price``; None when
    a part that was used has no price, or the usage is not plain counts."""
    prompt = _count(usage.get("prompt_tokens"))
    completion = _count(usage.get("completion_tokens"))
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    for details in (prompt_details, completion_details):
        if type(details) is not dict and not isinstance(details, Mapping):  # (dict first: the ABC check is slow)
            return None
    cached = _count(prompt_details.get("cached_tokens"))
    written = _count(prompt_details.get("cache_write_tokens"))
    reasoning = _count(completion_details.get("reasoning_tokens"))
    if prompt is None or completion is None or cached is None or written is None or reasoning is None:
        return None
    fresh = prompt - cached - written
    if fresh < 0 or reasoning > completion:
        return None  # parts larger than the whole: not a usage to bill by
    rates = price.for_prompt(prompt)
    total = 0.0
    for tokens, rate in (
        (fresh, rates.input),
        (cached, _first(rates.cache_read, rates.input)),
        (written, _first(rates.cache_write, rates.input)),
        (completion - reasoning, rates.output),
        (reasoning, _first(rates.reasoning, rates.output)),
    ):
        if tokens:
            if rate is None:
                return None
            total += tokens * rate
    return total / 1_000_000


class Catalog:
    """The catalog of one gateway: config overrides over the
    ``catalog_entry`` hook's answers over providers' capability tables."""

    def __init__(self, hooks: Hooks | None, overrides: Mapping[str, ModelInfo] | None = None) -> None:
        self.hooks = hooks
        self.overrides = dict(overrides or {})
        self._memo: dict[tuple[str, str], ModelInfo | None] = {}

    def lookup(self, provider: Provider, model: str) -> ModelInfo | None:
        """What is known of ``model`` at ``provider`` (None: nothing)."""
        key = (provider.name, model)
        try:
            return self._memo[key]
        except KeyError:
            pass
        info = self._build(provider, model)
        if len(self._memo) >= MEMO_SIZE:
            self._memo.clear()
        self._memo[key] = info
        return info

    def _build(self, provider: Provider, model: str) -> ModelInfo | None:
        layers: list[ModelInfo] = []
        override = self.overrides.get(f"{provider.name}/{model}")
        if override is not None:
            layers.append(override)
        limits = lookup_pattern(provider.limits, model)
        if limits is not None:
            layers.append(ModelInfo(context_window=limits[0], max_output_tokens=limits[1],
                                    sources=(f"provider:{provider.type}",)))
        if self.hooks is not None:
            layers += self.hooks.collect_sync("catalog_entry", provider=provider, model=model)
        table = provider.model_capabilities(model)
        if table is not None:
            layers.append(ModelInfo(capabilities=frozenset(table), sources=(f"provider:{provider.type}",)))
        merged = ModelInfo()
        for layer in layers:
            if isinstance(layer, ModelInfo):
                merged = merged.over(layer)
        return None if merged.empty else merged

    def cost(self, provider: Provider, model: str, usage: Any) -> float | None:
        """The cost of a response's ``usage`` served by ``model`` at ``provider``."""
        if not isinstance(usage, Mapping):
            return None
        info = self.lookup(provider, model)
        if info is None or info.price is None:
            return None
        return cost_of(info.price, usage)

    def clear(self) -> None:
        self._memo.clear()


def lookup_pattern(table: Mapping[str, Any], model: str) -> Any:
    """The value of the first shell-style pattern in ``table`` (case-insensitive) that ``model`` matches."""
    lowered = model.lower()
    for pattern, value in table.items():
        if fnmatch.fnmatchcase(lowered, pattern.lower()):
            return value
    return None


def info_from_config(entry: Any, source: str = "config") -> ModelInfo:
    """A :class:`ModelInfo` from a validated ``catalog:`` entry."""
    price = None
    if entry.price is not None:
        price = Price(**{key: getattr(entry.price, key) for key in PRICE_KEYS})
    capabilities = frozenset(entry.capabilities) if entry.capabilities is not None else None
    return ModelInfo(context_window=entry.context_window, max_output_tokens=entry.max_output_tokens,
                     price=price, capabilities=capabilities, sources=(source,))


def format_cost(cost: float) -> str:
    """A cost as a plain decimal (no exponent), for the ``x-portway-cost`` header."""
    text = f"{cost:.12f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


__all__ = ["CAPABILITIES", "PRICE_KEYS", "Catalog", "ModelInfo", "Price", "cost_of", "format_cost"]

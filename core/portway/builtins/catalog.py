"""The catalog's default source: prices and context windows from the
``genai-prices`` package (pydantic/genai-prices).

A default plugin like the router: it answers ``catalog_entry`` last, so a
provider plugin's own data and the config's ``catalog:`` entries win over
it.  The package's data (some fifty providers, two thousand models, with
prices that change by date and long-context tiers) is loaded once at
start-up, in a thread so the event loop stays free; a lookup is made once
per provider instance and model (the catalog keeps the answer).  Upgrading
``genai-prices`` updates the prices without a release of Portway.

A provider is looked up by :attr:`Provider.catalog_id` (its ``type`` when
unset), and a model only under that provider: a self-hosted Llama is not
priced at a cloud's rate.  A model the data does not have gets no entry.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import Any

from portway.catalog import ModelInfo, Price
from portway.hookspecs import hookimpl

PORTWAY_PLUGIN_KIND = "hook"

log = logging.getLogger("portway.catalog")

SOURCE = "genai-prices"

#: genai-prices' price keys for ours.
_KEYS = {"input": "input_mtok", "output": "output_mtok", "cache_read": "cache_read_mtok",
         "cache_write": "cache_write_mtok", "reasoning": "output_reasoning_mtok"}


@cache
def snapshot() -> Any:
    """genai-prices' data, loaded on first use (a second or so: it is big);
    None when the package cannot be loaded."""
    try:
        from genai_prices import data_snapshot
        return data_snapshot.get_snapshot()
    except Exception as exc:  # a broken install must not stop the gateway: no prices then
        log.warning("genai-prices could not be loaded (%s): models have no catalogued prices", exc)
        return None


@hookimpl
async def startup(gateway: Any) -> None:
    await asyncio.to_thread(snapshot)


@hookimpl(trylast=True)
def catalog_entry(provider: Any, model: str) -> ModelInfo | None:
    data = snapshot()
    if data is None:
        return None
    try:
        _, found = data.find_provider_model(model, None, provider.catalog_id or provider.type, None)
    except LookupError:
        return None
    try:
        price = to_price(found.get_prices(datetime.now(UTC)))
    except Exception:  # a shape this code does not know: the window is still worth having
        log.warning("genai-prices: prices of %s/%s not understood", provider.type, model, exc_info=True)
        price = None
    return ModelInfo(context_window=found.context_window, price=price, sources=(SOURCE,))


def to_price(model_price: Any) -> Price | None:
    """genai-prices' ``ModelPrice`` as a :class:`Price` (tiers included),
    or None when it has no token price at all."""
    values: dict[str, Any] = {key: getattr(model_price, theirs, None) for key, theirs in _KEYS.items()}
    if all(value is None for value in values.values()):
        return None
    thresholds = sorted({tier.start for value in values.values() if _tiered(value) for tier in value.tiers})
    base = Price(**{key: _number(value, None) for key, value in values.items()})
    tiers = tuple((start, Price(**{key: _number(value, start) for key, value in values.items()}))
                  for start in thresholds)
    return Price(base.input, base.output, base.cache_read, base.cache_write, base.reasoning, tiers=tiers)


def _tiered(value: Any) -> bool:
    return hasattr(value, "base") and hasattr(value, "tiers")


def _number(value: Any, threshold: int | None) -> float | None:
    """One price: plain, or a tiered one's rate above ``threshold`` (the base rate when None)."""
    if value is None:
        return None
    if isinstance(value, (Decimal, int, float)):
        return float(value)
    rate = value.base
    if threshold is not None:
        for tier in value.tiers:
            if tier.start <= threshold:
                rate = tier.price
    return float(rate)

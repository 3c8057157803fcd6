"""Driving one provider adapter directly, without a gateway in front."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

P = TypeVar("P")
T = TypeVar("T")


def run_provider(provider: P, action: Callable[[P], Awaitable[T]]) -> T:
    """Start ``provider`` (opening its connection pool), await
    ``action(provider)`` in a fresh event loop, and close it again."""

    async def main() -> T:
        await provider.start()  # type: ignore[attr-defined]
        try:
            return await action(provider)
        finally:
            await provider.close()  # type: ignore[attr-defined]

    return asyncio.run(main())


async def collect_stream(provider: Any, body: dict[str, Any], ctx: Any = None) -> list[dict[str, Any]]:
    """Every chunk of ``provider.chat_stream(body)``, in a list."""
    return [chunk async for chunk in provider.chat_stream(body, ctx)]

"""The request log's tests: a PostgreSQL schema of each test's own."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest

PG_BASE = os.environ.get("PORTWAY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose tables live in a schema of this test's own, dropped after."""
    import asyncpg

    schema = "test_log_" + os.urandom(6).hex()

    async def drop() -> None:
        conn = await asyncpg.connect(PG_BASE)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    yield f"{PG_BASE}?schema={schema}"
    asyncio.run(drop())

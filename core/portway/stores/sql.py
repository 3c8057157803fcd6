"""SQL stores: one URL names the database, SQLite or PostgreSQL, for every
feature that keeps rows (the request log first; keys, budgets and prompts
later).

- :func:`open_database` connects by URL: ``sqlite:///relative.db``,
  ``sqlite:////absolute/path.db`` or ``postgresql://user@host:5432/db``
  (``postgres://`` too; ``?schema=NAME`` puts every table in that schema,
  created when missing).
- :class:`Database` is the few calls a store needs, the same on both:
  ``execute``, ``executemany``, ``fetch``, ``insert_tables`` and
  ``transaction()``.  SQL is
  written once with ``?`` placeholders; PostgreSQL gets them numbered
  (``$1``).  Types that mean the same on both are used (``TEXT``,
  ``BIGINT``, ``DOUBLE PRECISION``); a migration step can still give one
  text per dialect.
- :meth:`Database.migrate` applies numbered :class:`Migration` steps once,
  recorded in ``schema_migrations`` (component, version), under a lock so
  several workers starting together apply each step exactly once.

SQLite runs in WAL mode with a busy timeout, one connection per process and
write transactions opened with ``BEGIN IMMEDIATE``, so several worker
processes can write one file.  The drivers: the standard ``sqlite3`` on a
thread of its own (so no query blocks the event loop; a batch of inserts is
one trip to it), and ``asyncpg`` (a binary-protocol driver with its own
pool; the fastest asyncio PostgreSQL driver), imported only when a
PostgreSQL database is opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import os
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

# Python's sqlite3 binds None by first looking for an adapter for it the slow
# way: two failed attribute lookups, each raising and formatting an
# AttributeError, for every None parameter.  A log row has a dozen Nones, and
# that was a third of the SQLite writer's CPU per row (measured:
# 17 -> 11 us a row).  Registered for NoneType, the lookup finds this one
# (a C callable: ``{}.get(None)`` is None), and None is still bound as NULL.
sqlite3.register_adapter(type(None), {}.get)

#: Overrides where the default SQLite database lives (``portway serve --data-dir`` sets it).
DATA_DIR_ENV = "PORTWAY_DATA_DIR"
DEFAULT_DB_NAME = "portway.db"

_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class StoreUnavailable(Exception):
    """The database cannot be reached or refused the work."""


def data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where Portway keeps its data: ``$PORTWAY_DATA_DIR``, else
    ``$XDG_DATA_HOME/portway``, else ``~/.local/share/portway``."""
    env = os.environ if environ is None else environ
    if env.get(DATA_DIR_ENV):
        return Path(env[DATA_DIR_ENV]).expanduser()
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser() / "portway"


def default_url(environ: Mapping[str, str] | None = None) -> str:
    return f"sqlite:///{data_dir(environ) / DEFAULT_DB_NAME}"


def check_url(url: str) -> str:
    """``url`` if this module can open it, else a ValueError saying what can be."""
    scheme = url.partition(":")[0].lower()
    if scheme == "sqlite":
        if not url.startswith("sqlite:///") or len(url) == len("sqlite:///"):
            raise ValueError(f"{redact_url(url)!r}: write sqlite:///relative/path.db or sqlite:////absolute/path.db")
        return url
    if scheme in ("postgresql", "postgres"):
        schema = dict(parse_qsl(urlsplit(url).query)).get("schema")
        if schema is not None and not _SCHEMA_NAME.fullmatch(schema):
            raise ValueError(f"schema {schema!r} is not a plain SQL name (letters, digits, _)")
        return url
    raise ValueError(f"{redact_url(url)!r} is not a store URL: use sqlite:///path.db or postgresql://…")


def redact_url(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))


class StoreConfig(BaseModel):
    """The ``store:`` section: ``{url: …}``, a bare URL, or ``false`` (no
    store: what needs one is off).  No section: SQLite in the data directory."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = None
    enabled: bool = True

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if value is False:
            return {"enabled": False}
        if value is None or value is True:
            return {}
        if isinstance(value, str):
            return {"url": value}
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        return None if url is None else check_url(url)

    def resolved_url(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The URL to open; None when the store is off."""
        if not self.enabled:
            return None
        return self.url or default_url(environ)


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered step of a component's schema.  ``sql`` is one or more
    statements separated by ``;`` (no ``;`` inside them), or a mapping from
    dialect (``sqlite``, ``postgresql``) to such a text."""

    version: int
    sql: str | Mapping[str, str]

    def statements(self, dialect: str) -> list[str]:
        text = self.sql if isinstance(self.sql, str) else self.sql[dialect]
        return [part.strip() for part in text.split(";") if part.strip()]


_MIGRATIONS_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    component TEXT NOT NULL,
    version BIGINT NOT NULL,
    applied_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (component, version))"""


class Connection:
    """What a transaction runs its statements on (see :meth:`Database.transaction`)."""

    async def execute(self, sql: str, *args: Any) -> int:
        """Run one statement; the number of rows it changed."""
        raise NotImplementedError

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        raise NotImplementedError

    async def insert_many(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Insert ``rows`` (values in ``columns``' order) into ``table``."""
        await self.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", rows)

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        raise NotImplementedError


class Database(Connection):
    """One database, opened by :func:`open_database`.  Each call outside a
    transaction is its own transaction."""

    dialect: str
    url: str  # without the password

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        raise NotImplementedError
        yield  # pragma: no cover

    async def close(self) -> None:
        raise NotImplementedError

    async def insert_tables(self, tables: Sequence[tuple[str, Sequence[str], Sequence[Sequence[Any]]]]) -> None:
        """Insert rows into several tables in one transaction: each item is
        ``(table, columns, rows)`` as for :meth:`Connection.insert_many`; a
        table with no rows is skipped.  The request log writes a batch so."""
        async with self.transaction() as conn:
            for table, columns, rows in tables:
                if rows:
                    await conn.insert_many(table, columns, rows)

    async def migrate(self, component: str, migrations: Sequence[Migration]) -> list[int]:
        """Apply the steps of ``component`` not applied yet, in version
        order, each recorded in ``schema_migrations``; the versions applied
        now.  Safe when several processes start at once."""
        applied: list[int] = []
        async with self.transaction() as conn:
            await self._lock_migrations(conn)
            await conn.execute(_MIGRATIONS_TABLE)
            done = {row["version"] for row in await conn.fetch(
                "SELECT version FROM schema_migrations WHERE component = ?", component)}
            for migration in sorted(migrations, key=lambda m: m.version):
                if migration.version in done:
                    continue
                for statement in migration.statements(self.dialect):
                    await conn.execute(statement)
                await conn.execute("INSERT INTO schema_migrations (component, version, applied_at) VALUES (?, ?, ?)",
                                   component, migration.version, time.time())
                applied.append(migration.version)
        return applied

    async def _lock_migrations(self, conn: Connection) -> None:
        """Hold the migration lock until the transaction ends."""


async def open_database(url: str) -> Database:
    """Connect to the database ``url`` names (see the module's docstring).
    Raises :class:`StoreUnavailable` when it cannot be reached."""
    check_url(url)
    if url.startswith("sqlite:"):
        return await SQLiteDatabase.open(url)
    return await PostgresDatabase.open(url)


# -- SQLite --------------------------------------------------------------------------


#: SQLite's limit on the parameters of one statement (32,766 since 3.32; 999 before).
SQLITE_MAX_VARIABLES = 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999
#: Rows one multi-row INSERT carries at most (a power of two).
SQLITE_ROWS_PER_INSERT = 256


@functools.lru_cache(maxsize=32)
def _multi_insert(table: str, columns: tuple[str, ...], count: int) -> str:
    row = f"({', '.join('?' * len(columns))})"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([row] * count)}"


def _sqlite_execute(conn: sqlite3.Connection, sql: str, args: Sequence[Any]) -> int:
    cursor = conn.execute(sql, args)
    try:
        return max(cursor.rowcount, 0)
    finally:
        cursor.close()


def _sqlite_executemany(conn: sqlite3.Connection, sql: str, rows: list[Sequence[Any]]) -> None:
    conn.executemany(sql, rows).close()


def _sqlite_fetch(conn: sqlite3.Connection, sql: str, args: Sequence[Any]) -> list[dict[str, Any]]:
    cursor = conn.execute(sql, args)
    try:
        names = [column[0] for column in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        cursor.close()


def _sqlite_insert_many(conn: sqlite3.Connection, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    # Many rows per statement (VALUES (...), (...), ...), not executemany: sqlite3 lets go
    # of the GIL around every statement step, so executemany handed the GIL back and forth
    # with the event loop once per row; on a gateway pinned to one core each handover is a
    # thread switch, and the request log's rows cost the serving thread about 20 % of a
    # stream's CPU that way (measured).  One statement of many rows steps once.
    # Statements of power-of-two sizes only (500 rows: 256 + 128 + 64 + 32 + 16 + 4), so at
    # most nine different ones are ever prepared and cached: one per batch size held every
    # size's compiled statement (tens of MiB, measured as RSS growth).
    largest = max(1, min(SQLITE_ROWS_PER_INSERT, SQLITE_MAX_VARIABLES // max(len(columns), 1)))
    largest = 1 << (largest.bit_length() - 1)
    start = 0
    while start < len(rows):
        left = len(rows) - start
        size = min(largest, 1 << (left.bit_length() - 1))
        part = rows[start:start + size]
        conn.execute(_multi_insert(table, tuple(columns), size), list(itertools.chain.from_iterable(part))).close()
        start += size


def _sqlite_insert_tables(conn: sqlite3.Connection, tables: Sequence[tuple[str, Sequence[str], Sequence[Sequence[Any]]]]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table, columns, rows in tables:
            if rows:
                _sqlite_insert_many(conn, table, columns, rows)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _sqlite_connect(path: str) -> sqlite3.Connection:
    # isolation_level=None: autocommit; transactions are begun explicitly.
    # check_same_thread=False: made here, used only on the database's own thread.
    conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL").close()
        conn.execute("PRAGMA synchronous=NORMAL").close()  # durable at checkpoints; safe from corruption in WAL
        conn.execute("PRAGMA busy_timeout=30000").close()  # other workers' writes: wait, do not fail
    except BaseException:
        # A file that is no database (or another process holding the lock that
        # journal_mode=WAL needs) fails here, not at connect.
        conn.close()
        raise
    return conn


class _SQLiteThread:
    """A ``sqlite3`` connection and the one thread that uses it: each call is
    a function run there, so the event loop never waits on the disk, and a
    piece of work of many statements (:meth:`SQLiteDatabase.insert_tables`)
    is one trip to the thread and back, not one a statement.  (aiosqlite, used
    before, made a trip of every statement and every cursor's close: a busy
    event loop gives a waiting task one turn in a crowd, and the request log's
    writer fell behind a loaded gateway that way.)"""

    def __init__(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="portway-sqlite")
        self.conn: sqlite3.Connection | None = None

    async def run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def call(self, fn: Any, *args: Any) -> Any:
        """``fn(connection, *args)`` on the thread."""
        conn = self.conn
        if conn is None:
            raise StoreUnavailable("the SQLite database is closed")
        return await self.run(fn, conn, *args)

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        try:
            if conn is not None:
                await self.run(conn.close)
        finally:
            self._executor.shutdown(wait=False)


class _SQLiteConnection(Connection):
    def __init__(self, thread: _SQLiteThread) -> None:
        self._thread = thread

    async def execute(self, sql: str, *args: Any) -> int:
        return await self._thread.call(_sqlite_execute, sql, args)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._thread.call(_sqlite_executemany, sql, list(rows))

    async def insert_many(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        await self._thread.call(_sqlite_insert_many, table, columns, rows)

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        return await self._thread.call(_sqlite_fetch, sql, args)


class SQLiteDatabase(Database):
    """One connection per process on a thread of its own (:class:`_SQLiteThread`),
    every use serialised by a lock so a transaction's statements never
    interleave with another coroutine's."""

    dialect = "sqlite"

    def __init__(self, thread: _SQLiteThread, url: str, path: str) -> None:
        self._thread = thread
        self._inner = _SQLiteConnection(thread)
        self._lock = asyncio.Lock()
        self.url = url
        self.path = path

    @classmethod
    async def open(cls, url: str) -> SQLiteDatabase:
        path = url[len("sqlite:///"):]
        thread = _SQLiteThread()
        try:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            thread.conn = await thread.run(_sqlite_connect, path)
        except BaseException as exc:
            # Nothing may outlive a failed open: the thread would keep the process from exiting.
            await thread.close()
            if isinstance(exc, (OSError, sqlite3.Error)):
                raise StoreUnavailable(f"cannot open {url}: {exc}") from exc
            raise
        return cls(thread, url, path)

    async def execute(self, sql: str, *args: Any) -> int:
        async with self._lock:
            return await self._wrap(self._inner.execute(sql, *args))

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        async with self.transaction() as conn:
            await conn.executemany(sql, rows)

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        async with self._lock:
            return await self._wrap(self._inner.fetch(sql, *args))

    async def insert_tables(self, tables: Sequence[tuple[str, Sequence[str], Sequence[Sequence[Any]]]]) -> None:
        async with self._lock:
            await self._wrap(self._thread.call(_sqlite_insert_tables, tables))

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self._lock:
            try:
                # IMMEDIATE takes the write lock now: two workers that both read
                # then write would otherwise deadlock on the upgrade.
                await self._inner.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreUnavailable(str(exc)) from exc
            try:
                yield self._inner
            except BaseException:
                await self._inner.execute("ROLLBACK")
                raise
            try:
                await self._inner.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreUnavailable(str(exc)) from exc

    async def close(self) -> None:
        await self._thread.close()

    @staticmethod
    async def _wrap(work: Any) -> Any:
        try:
            return await work
        except sqlite3.Error as exc:
            raise StoreUnavailable(str(exc)) from exc


# -- PostgreSQL -----------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\?")


def numbered(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1, $2, …`` (the SQL of the
    stores has no ``?`` inside string literals)."""
    count = 0

    def next_number(_: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return f"${count}"

    return _PLACEHOLDER.sub(next_number, sql)


class _PostgresConnection(Connection):
    def __init__(self, conn: Any, cache: dict[str, str]) -> None:
        self._conn = conn
        self._cache = cache

    def _sql(self, sql: str) -> str:
        text = self._cache.get(sql)
        if text is None:
            text = self._cache[sql] = numbered(sql)
        return text

    async def execute(self, sql: str, *args: Any) -> int:
        status = await self._conn.execute(self._sql(sql), *args)
        last = status.rpartition(" ")[2]  # "DELETE 3", "INSERT 0 1"
        return int(last) if last.isdigit() else 0

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._conn.executemany(self._sql(sql), list(rows))

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        return [dict(row) for row in await self._conn.fetch(self._sql(sql), *args)]


class PostgresDatabase(Database):
    """An asyncpg pool.  ``?schema=NAME`` in the URL sets every
    connection's ``search_path`` to that schema (created when missing)."""

    dialect = "postgresql"
    #: Seconds to connect before the store counts as down.
    connect_timeout = 5.0

    def __init__(self, pool: Any, url: str, schema: str | None) -> None:
        self._pool = pool
        self._cache: dict[str, str] = {}
        self.url = url
        self.schema = schema

    @classmethod
    async def open(cls, url: str, *, max_size: int = 4) -> PostgresDatabase:
        import asyncpg

        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        schema = query.pop("schema", None)
        dsn = urlunsplit(parts._replace(scheme="postgresql", query=urlencode(query)))
        settings = {"search_path": schema} if schema else None
        try:
            if schema:
                conn = await asyncpg.connect(dsn, timeout=cls.connect_timeout)
                try:
                    await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                except asyncpg.UniqueViolationError:
                    pass  # another worker created it at the same moment
                finally:
                    await conn.close()
            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=max_size, timeout=cls.connect_timeout,
                                             command_timeout=30, server_settings=settings)
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreUnavailable(f"cannot connect to {redact_url(url)}: {type(exc).__name__}: {exc}") from exc
        return cls(pool, redact_url(url), schema)

    async def execute(self, sql: str, *args: Any) -> int:
        async with self._acquire() as conn:
            return await conn.execute(sql, *args)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        async with self.transaction() as conn:
            await conn.executemany(sql, rows)

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        async with self._acquire() as conn:
            return await conn.fetch(sql, *args)

    @contextlib.asynccontextmanager
    async def _acquire(self) -> AsyncIterator[Connection]:
        import asyncpg

        try:
            async with self._pool.acquire() as conn:
                yield _PostgresConnection(conn, self._cache)
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self._acquire() as wrapped:
            raw = wrapped._conn  # type: ignore[attr-defined]
            async with raw.transaction():
                yield wrapped

    async def _lock_migrations(self, conn: Connection) -> None:
        await conn.fetch("SELECT pg_advisory_xact_lock(hashtext(?))", f"portway.migrations.{self.schema or ''}")

    async def close(self) -> None:
        await self._pool.close()

"""The SQL store layer under the request log, on both dialects against real
databases: numbered migrations (applied once, an upgrade from version 1),
the sweep of retention, deletion, and several processes writing one SQLite
file at once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from portway_log.store import MIGRATIONS, Filters, LogStore

from portway.stores.sql import Migration, StoreConfig, check_url, open_database, redact_url


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("pg_url")


def run(work: Any) -> Any:
    return asyncio.run(work)


def record(row_id: str, request_id: str, when: float, key: str = "key_a", **columns: Any) -> tuple[Any, ...]:
    from portway_log.record import COLUMNS

    values = {"id": row_id, "request_id": request_id, "time": when, "logged_at": when, "endpoint": "chat.completions",
              "client_format": "openai", "stream": 0, "key_id": key, "attempts": 1, "status": 200,
              "body_truncated": 0, **columns}
    return tuple(values.get(column) for column in COLUMNS)


def test_insert_many_writes_every_row_across_statements(url: str) -> None:
    """More rows than one multi-row INSERT carries (SQLite), Nones as NULL, in order."""
    from portway.stores import sql

    async def main() -> None:
        db = await open_database(url)
        try:
            await db.execute("DROP TABLE IF EXISTS many_rows")
            await db.execute("CREATE TABLE many_rows (n BIGINT NOT NULL, label TEXT, x DOUBLE PRECISION)")
            rows = [(n, None if n % 3 else f"r{n}", n / 2) for n in range(2 * sql.SQLITE_ROWS_PER_INSERT + 7)]
            async with db.transaction() as conn:
                await conn.insert_many("many_rows", ("n", "label", "x"), rows)
            back = await db.fetch("SELECT n, label, x FROM many_rows ORDER BY n")
            assert [(r["n"], r["label"], r["x"]) for r in back] == rows
            await db.execute("DROP TABLE many_rows")
        finally:
            await db.close()

    run(main())


def test_insert_tables_writes_every_table_in_one_transaction(url: str) -> None:
    """The log's batch write: rows into two tables at once (more than one
    statement's worth), a table with no rows skipped, and a failure in the
    second table leaves the first one without the batch's rows."""
    from portway.stores import sql

    async def main() -> None:
        db = await open_database(url)
        try:
            for table in ("batch_a", "batch_b"):
                await db.execute(f"DROP TABLE IF EXISTS {table}")
                await db.execute(f"CREATE TABLE {table} (n BIGINT NOT NULL, label TEXT)")
            a = [(n, None if n % 2 else f"a{n}") for n in range(sql.SQLITE_ROWS_PER_INSERT + 3)]
            b = [(n, f"b{n}") for n in range(5)]
            await db.insert_tables([("batch_a", ("n", "label"), a), ("batch_b", ("n", "label"), b),
                                    ("no_such_table", ("n",), [])])
            assert [(r["n"], r["label"]) for r in await db.fetch("SELECT n, label FROM batch_a ORDER BY n")] == a
            assert [(r["n"], r["label"]) for r in await db.fetch("SELECT n, label FROM batch_b ORDER BY n")] == b
            with pytest.raises(Exception):  # noqa: B017 - each driver raises its own error class
                await db.insert_tables([("batch_a", ("n", "label"), [(1000, "kept?")]),
                                        ("batch_b", ("n", "label"), [(None, "breaks NOT NULL")])])
            assert await db.fetch("SELECT n FROM batch_a WHERE n = ?", 1000) == []
            # The database is still usable after the rollback.
            await db.insert_tables([("batch_b", ("n", "label"), [(6, "b6")])])
            assert len(await db.fetch("SELECT n FROM batch_b")) == 6
            for table in ("batch_a", "batch_b"):
                await db.execute(f"DROP TABLE {table}")
        finally:
            await db.close()

    run(main())


def test_a_sqlite_batch_write_is_one_trip_to_its_thread(tmp_path: Path) -> None:
    """Every trip to the SQLite thread costs the waiting task a turn of a busy
    event loop: the request log's writer once made one per statement and
    cursor and fell behind a loaded gateway (its queue grew by thousands of
    records a minute).  A batch of several statements is one trip."""
    from portway.stores import sql

    async def main() -> None:
        db = await open_database(f"sqlite:///{tmp_path / 'trips.db'}")
        try:
            await db.execute("CREATE TABLE t1 (n BIGINT)")
            await db.execute("CREATE TABLE t2 (n BIGINT)")
            thread = db._thread  # type: ignore[attr-defined]
            trips = []
            real_run = thread.run

            async def counted(fn: Any, *args: Any) -> Any:
                trips.append(fn)
                return await real_run(fn, *args)

            thread.run = counted
            rows = [(n,) for n in range(3 * sql.SQLITE_ROWS_PER_INSERT + 1)]
            await db.insert_tables([("t1", ("n",), rows), ("t2", ("n",), rows[:9])])
            assert len(trips) == 1
            thread.run = real_run
            assert (await db.fetch("SELECT count(*) AS c FROM t1"))[0]["c"] == len(rows)
            assert (await db.fetch("SELECT count(*) AS c FROM t2"))[0]["c"] == 9
        finally:
            await db.close()

    run(main())


def test_migrations_apply_once_and_upgrade_from_version_1(url: str) -> None:
    async def work() -> None:
        db = await open_database(url)
        try:
            assert await db.migrate("log", MIGRATIONS[:1]) == [1]
            store = LogStore(db)
            await store.write([record("r1", "req-old", 1000.0)], [("r1", "team", "red")])
            assert await db.migrate("log", MIGRATIONS) == [2]  # only the step not applied yet
            assert await db.migrate("log", MIGRATIONS) == []
            versions = await db.fetch("SELECT version FROM schema_migrations WHERE component = ? ORDER BY version",
                                      "log")
            assert [v["version"] for v in versions] == [1, 2]
            # The row written under version 1 is still there, and version 2's table works for it.
            await store.add_feedback("fb1", "req-old", 1001.0, None, 0.75, "ok", None)
            kept = await store.get("req-old")
            assert kept is not None and kept["tags"] is None
            assert [(f["score"], f["label"]) for f in kept["feedback"]] == [(0.75, "ok")]
        finally:
            await db.close()

    run(work())


def test_a_component_migrates_on_its_own(url: str) -> None:
    other = (Migration(1, "CREATE TABLE other_things (name TEXT)"),
             Migration(2, {"sqlite": "ALTER TABLE other_things ADD COLUMN n INTEGER",
                           "postgresql": "ALTER TABLE other_things ADD COLUMN n BIGINT"}))

    async def work() -> None:
        db = await open_database(url)
        try:
            assert await db.migrate("log", MIGRATIONS) == [1, 2]
            assert await db.migrate("other", other) == [1, 2]
            await db.execute("INSERT INTO other_things (name, n) VALUES (?, ?)", "x", 3)
            assert await db.fetch("SELECT name, n FROM other_things") == [{"name": "x", "n": 3}]
        finally:
            await db.close()

    run(work())


def test_a_failing_step_leaves_nothing_half_done(url: str) -> None:
    broken = (Migration(1, "CREATE TABLE half (name TEXT); CREATE TABLE half (name TEXT)"),)

    async def work() -> None:
        db = await open_database(url)
        try:
            with pytest.raises(Exception):  # noqa: B017 - each driver raises its own error class
                await db.migrate("broken", broken)
            assert await db.migrate("fine", (Migration(1, "CREATE TABLE half (name TEXT)"),)) == [1]
        finally:
            await db.close()

    run(work())


def test_sweep_and_delete_remove_records_with_their_tags_and_feedback(url: str) -> None:
    async def work() -> None:
        db = await open_database(url)
        store = LogStore(db)
        try:
            await store.migrate()
            await store.write(
                [record("a", "req-a", 100.0, "key_a"), record("b", "req-b", 200.0, "key_b"),
                 record("c", "req-c", 300.0, "key_a"), record("d", "req-d", 400.0, "key_b")],
                [("a", "team", "red"), ("b", "team", "blue"), ("c", "team", "red"), ("d", "team", "red")])
            for request_id in ("req-a", "req-b", "req-c"):
                await store.add_feedback("fb-" + request_id, request_id, 500.0, None, 1.0, None, None)

            assert await store.sweep(before=250.0, chunk=1) == 2  # a and b started before it, one at a time
            rows, _ = await store.page(Filters(), 10)
            assert [r["request_id"] for r in rows] == ["req-d", "req-c"]
            assert await db.fetch("SELECT row_id FROM log_tags ORDER BY row_id") == [{"row_id": "c"}, {"row_id": "d"}]
            assert [f["request_id"] for f in await db.fetch("SELECT request_id FROM log_feedback")] == ["req-c"]

            assert await store.delete(Filters(tags={"team": "red"}, key_id="key_b")) == 1  # d only
            assert await store.delete(Filters(key_id="key_a")) == 1  # c
            assert await store.page(Filters(), 10) == ([], None)
            assert await db.fetch("SELECT row_id FROM log_tags") == []
            assert await db.fetch("SELECT request_id FROM log_feedback") == []
        finally:
            await db.close()

    run(work())


WRITER = textwrap.dedent("""
    import asyncio, sys
    from types import SimpleNamespace
    from portway_log.config import LogConfig
    from portway_log.sink import LogSink

    class Ctx(SimpleNamespace):
        pass

    async def main(url, worker, count):
        sink = LogSink(url, LogConfig(batch_size=7))
        sink.start()
        for n in range(count):
            sink.add(Ctx(request_id=f"w{worker}-{n}", body_bytes=10, endpoint="chat.completions", client_format="openai",
                         stream=False, key_id=f"key_{worker}", model="fast", target=None, error=None, attempts=0,
                         failures=[], status=200, usage=None, cost=None, latency=0.01, time_to_first_token=None,
                         cached=False, metadata={}, canonical=None, native=None, route=None, trace_id=None,
                         tags={"worker": worker}, cache_status=None, verdicts=[]))
            if n % 10 == 0:
                await asyncio.sleep(0)  # let the writer take batches while more arrive
        assert await sink.flush(60)
        await sink.stop()
        print(sink.written, sink.dropped)

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
""")


def test_two_processes_write_one_sqlite_file(tmp_path: Path) -> None:
    """Two workers start together (both migrate) and write at once: every record lands, none twice."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    count = 400
    workers = [subprocess.Popen([sys.executable, str(script), url, str(w), str(count)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for w in (1, 2)]
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        assert out.split() == [str(count), "0"]

    async def check() -> None:
        db = await open_database(url)
        try:
            rows = await db.fetch("SELECT key_id, COUNT(*) AS n, COUNT(DISTINCT request_id) AS ids FROM log_requests "
                                  "GROUP BY key_id ORDER BY key_id")
            assert rows == [{"key_id": "key_1", "n": count, "ids": count}, {"key_id": "key_2", "n": count, "ids": count}]
            assert await db.fetch("SELECT value, COUNT(*) AS n FROM log_tags GROUP BY value ORDER BY value") == [
                {"value": "1", "n": count}, {"value": "2", "n": count}]
            assert [r["version"] for r in await db.fetch("SELECT version FROM schema_migrations ORDER BY version")] == [1, 2]
            assert (await db.fetch("PRAGMA journal_mode"))[0]["journal_mode"] == "wal"
        finally:
            await db.close()

    run(check())


@pytest.mark.parametrize(("given", "url", "enabled"), [
    (None, None, True),
    (False, None, False),
    ("sqlite:///x.db", "sqlite:///x.db", True),
    ({"url": "postgresql://u@h/db"}, "postgresql://u@h/db", True),
])
def test_store_section_forms(given: Any, url: str | None, enabled: bool) -> None:
    config = StoreConfig.model_validate(given)
    assert (config.url, config.enabled) == (url, enabled)


@pytest.mark.parametrize("bad", ["mysql://h/db", "sqlite://relative.db", "sqlite:///", "postgresql://h/db?schema=a;b"])
def test_urls_the_stores_cannot_open_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        check_url(bad)


def test_default_store_is_in_the_data_dir(tmp_path: Path) -> None:
    assert StoreConfig().resolved_url({"PORTWAY_DATA_DIR": str(tmp_path)}) == f"sqlite:///{tmp_path / 'portway.db'}"
    assert StoreConfig().resolved_url({"XDG_DATA_HOME": str(tmp_path)}) == f"sqlite:///{tmp_path / 'portway' / 'portway.db'}"
    assert StoreConfig.model_validate(False).resolved_url({"PORTWAY_DATA_DIR": str(tmp_path)}) is None


def test_passwords_never_leave_in_messages() -> None:
    assert redact_url("postgresql://app:s3cret@db:5432/log") == "postgresql://app:***@db:5432/log"
    assert "s3cret" not in redact_url("postgresql://app:s3cret@db/log?schema=x")
    assert os.environ["PORTWAY_DATA_DIR"]  # the suite's own, never the user's data dir


@pytest.mark.parametrize(("sections", "message"), [
    ({"store": {"url": "mysql://h/db"}}, "store.url: 'mysql://h/db' is not a store URL"),
    ({"store": {"path": "x.db"}}, "store.path: Extra inputs are not permitted"),
    ({"log": {"log_bodies": "some"}}, "log.log_bodies: Input should be 'off', 'full' or 'redacted'"),
    ({"log": {"retention": "0s"}}, "log.retention: must be longer than 0"),
    ({"log": {"retention": "a month"}}, "log.retention: 'a month' is not a duration"),
    ({"log": {"queue_size": 0}}, "log.queue_size: Input should be greater than or equal to 1"),
])
def test_config_mistakes_name_the_key(sections: dict[str, Any], message: str) -> None:
    from portway.config import ConfigError
    from portway.testing.gateway import GatewayServer

    with pytest.raises(ConfigError) as info:
        GatewayServer(sections)
    assert message in str(info.value)


def test_retention_takes_days() -> None:
    from portway_log.config import LogConfig

    assert LogConfig.model_validate({"retention": "30d"}).retention == 30 * 86400
    assert LogConfig.model_validate({"retention": "12h"}).retention == 12 * 3600
    assert LogConfig.model_validate({"retention": None}).retention is None


def test_a_sqlite_file_that_cannot_be_set_up_leaves_no_connection_behind(tmp_path: Path) -> None:
    """SQLite opens lazily, so a file that is no database fails only at
    the first PRAGMA: the store's thread must be ended then, or the
    process can never exit (it once hung a worker at shutdown)."""
    import threading

    from portway.stores.sql import StoreUnavailable

    bad = tmp_path / "not-a-database.db"
    bad.write_bytes(b"this is not a SQLite file at all, " * 100)
    before = set(threading.enumerate())

    async def attempt() -> str:
        with pytest.raises(StoreUnavailable) as info:
            await open_database(f"sqlite:///{bad}")
        return str(info.value)

    message = asyncio.run(attempt())
    assert "cannot open" in message and "not a database" in message
    left = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    for thread in left:
        thread.join(timeout=5)
    assert not [t for t in left if t.is_alive()]

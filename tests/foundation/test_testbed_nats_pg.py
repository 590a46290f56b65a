"""The real NATS (JetStream) and PostgreSQL servers of the test bed."""

from __future__ import annotations

import psycopg
import pytest

from kubetrade.localstack.servers import PostgresServer
from kubetrade.storage import migrate


async def test_jetstream_deduplicates_by_msg_id(nats_client) -> None:
    js = nats_client.jetstream()
    await js.add_stream(name="DEDUP_TEST", subjects=["dedup.test.>"], duplicate_window=120)
    first = await js.publish("dedup.test.a", b"one", headers={"Nats-Msg-Id": "order-1"})
    again = await js.publish("dedup.test.a", b"one again", headers={"Nats-Msg-Id": "order-1"})
    other = await js.publish("dedup.test.a", b"two", headers={"Nats-Msg-Id": "order-2"})
    assert not first.duplicate
    assert again.duplicate and again.seq == first.seq
    assert not other.duplicate and other.seq == first.seq + 1
    info = await js.stream_info("DEDUP_TEST")
    assert info.state.messages == 2
    await js.delete_stream("DEDUP_TEST")


async def test_jetstream_survives_server_restart(nats_server) -> None:
    import nats

    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await js.add_stream(name="RESTART_TEST", subjects=["restart.test"])
    await js.publish("restart.test", b"kept", headers={"Nats-Msg-Id": "r-1"})
    await nc.close()
    nats_server.restart()
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    msg = await js.get_msg("RESTART_TEST", 1)
    assert msg.data == b"kept"
    await js.delete_stream("RESTART_TEST")
    await nc.close()


def test_database_round_trip(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("CREATE TABLE round_trip (id bigint PRIMARY KEY, price numeric(20, 8), at timestamptz)")
        conn.execute("INSERT INTO round_trip VALUES (1, 64123.45678901, '2024-03-01T12:00:00Z')")
        row = conn.execute("SELECT price::text, extract(epoch FROM at)::bigint FROM round_trip").fetchone()
    assert row == ("64123.45678901", 1709294400)


def test_migrations_apply_once_and_refuse_edits(fresh_db: str, tmp_path) -> None:
    (tmp_path / "0001_a.sql").write_text("CREATE TABLE a (x int); CREATE TABLE a2 (y int);")
    (tmp_path / "0002_b.sql").write_text("INSERT INTO a VALUES (1);")
    assert migrate.apply(fresh_db, tmp_path) == ["0001_a.sql", "0002_b.sql"]
    assert migrate.apply(fresh_db, tmp_path) == []
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT count(*) FROM a").fetchone() == (1,)
    (tmp_path / "0002_b.sql").write_text("INSERT INTO a VALUES (2);")
    with pytest.raises(migrate.MigrationError, match="changed after it was applied"):
        migrate.apply(fresh_db, tmp_path)


def test_failed_migration_leaves_nothing_half_done(fresh_db: str, tmp_path) -> None:
    (tmp_path / "0001_ok.sql").write_text("CREATE TABLE ok (x int);")
    (tmp_path / "0002_bad.sql").write_text("CREATE TABLE half (x int); SELECT * FROM missing_table;")
    with pytest.raises(migrate.MigrationError, match=r"0002_bad\.sql failed"):
        migrate.apply(fresh_db, tmp_path)
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT to_regclass('half')").fetchone() == (None,)
        assert conn.execute("SELECT version FROM kubetrade_migrations").fetchall() == [(1,)]


def test_bad_migration_name(tmp_path) -> None:
    (tmp_path / "create stuff.sql").write_text("SELECT 1")
    with pytest.raises(migrate.MigrationError, match=r"NNNN_description\.sql"):
        migrate.discover(tmp_path)


def test_postgres_keeps_data_across_restart() -> None:
    server = PostgresServer()
    server.start()
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (v text)")
            conn.execute("INSERT INTO kept VALUES ('committed')")
        server.kill()  # crash, not a clean stop
        server.start()
        with psycopg.connect(server.dsn()) as conn:
            assert conn.execute("SELECT v FROM kept").fetchall() == [("committed",)]
    finally:
        server.cleanup()
    assert not server.root.exists()

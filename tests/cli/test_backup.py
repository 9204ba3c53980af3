"""`crmbot backup` and `crmbot restore` as an operator runs them, on SQLite and on PostgreSQL.

Each test backs up a store holding the demo company and a tracker store (Rasa's `events` table,
beside the CRM data as `crmbot up` lays it out: its own SQLite file, or inside the PostgreSQL
database), then changes or damages things and checks what the operator would see afterwards.
The PostgreSQL variant works in a scratch database of its own on `CRM_TEST_POSTGRES_URL`.
"""

import io
import json
import logging
import os
import shutil
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import URL, inspect, make_url, text

from crm_store.db import (
    alembic_config,
    create_engine_for,
    make_session_factory,
    migrate,
    run_outside_transaction,
)
from crm_store.importer import import_csv_dir
from crm_store.settings import DEMO_DIR, get_store_settings
from crmbot.cli import main

# Rasa's tracker table, reduced to what these tests look at.
EVENTS_TABLE = "CREATE TABLE events (id INTEGER PRIMARY KEY, sender_id VARCHAR(255), data TEXT)"
CUSTOMER = "C0001"


def _demo_store(url: str, demo_dir: Path) -> None:
    engine = create_engine_for(url)
    try:
        migrate(engine)
        report = import_csv_dir(make_session_factory(engine), demo_dir)
        assert report.ok
    finally:
        engine.dispose()


def _add_conversations(url: str) -> None:
    engine = create_engine_for(url)
    try:
        with engine.begin() as connection:
            connection.execute(text(EVENTS_TABLE))
            connection.execute(
                text("INSERT INTO events (id, sender_id, data) VALUES (1, 'w1', '查订单'), (2, 'w1', '谢谢')")
            )
    finally:
        engine.dispose()


@pytest.fixture(autouse=True)
def info_log(caplog: pytest.LogCaptureFixture) -> None:
    """The command's INFO lines (progress, what it did) are what the operator reads."""
    caplog.set_level(logging.INFO)


@pytest.fixture(scope="module")
def sqlite_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo company in a SQLite file, made once; each test copies it."""
    path = tmp_path_factory.mktemp("demo") / "crm.db"
    _demo_store(f"sqlite:///{path}", DEMO_DIR)
    return path


@dataclass(frozen=True)
class PostgresDemo:
    """The server, the demo database each test's copy is made from, and the worker that drops the
    copies (a drop waits for a checkpoint: seconds on a busy machine, which no test need wait for)."""

    server: URL
    template: str
    drops: ThreadPoolExecutor


@pytest.fixture(scope="module")
def postgres_demo() -> Iterator[PostgresDemo | None]:
    """The demo company in a scratch PostgreSQL database of this run, made once. None when
    `CRM_TEST_POSTGRES_URL` is unset."""
    server_url = get_store_settings().test_postgres_url
    if not server_url:
        yield None
        return
    server = make_url(server_url).set(drivername="postgresql+psycopg")
    template = f"crm_backup_test_{os.getpid()}"
    run_outside_transaction(server, f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
    run_outside_transaction(server, f'CREATE DATABASE "{template}"')
    drops = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drop-backup-test-database")
    try:
        url = server.set(database=template).render_as_string(hide_password=False)
        _demo_store(url, DEMO_DIR)
        _add_conversations(url)  # the tracker shares the store's database, as `crmbot up` sets it
        yield PostgresDemo(server, template, drops)
    finally:
        drops.shutdown(wait=True)
        run_outside_transaction(server, f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')


@pytest.fixture
def sqlite_store(tmp_path: Path, sqlite_demo: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """`CRM_DATABASE_URL` set to a demo store on SQLite, its tracker file beside it with two events."""
    path = tmp_path / "var" / "crm.db"
    path.parent.mkdir()
    shutil.copyfile(sqlite_demo, path)
    url = f"sqlite:///{path}"
    tracker = f"sqlite:///{path.with_name('tracker.db')}"
    _add_conversations(tracker)
    monkeypatch.setenv("CRM_DATABASE_URL", url)
    return url, tracker


@pytest.fixture
def postgres_store(
    postgres_demo: PostgresDemo | None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, str]]:
    """`CRM_DATABASE_URL` set to a scratch PostgreSQL copy of the demo store, tracker tables inside."""
    if postgres_demo is None:
        pytest.skip("CRM_TEST_POSTGRES_URL is unset: the PostgreSQL variant is not run")
    server = postgres_demo.server
    name = f"{postgres_demo.template}_{uuid.uuid4().hex[:8]}"
    run_outside_transaction(server, f'CREATE DATABASE "{name}" TEMPLATE "{postgres_demo.template}"')
    try:
        url = server.set(database=name).render_as_string(hide_password=False)
        monkeypatch.setenv("CRM_DATABASE_URL", url)
        yield url, url
    finally:
        postgres_demo.drops.submit(
            run_outside_transaction, server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        )


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> tuple[str, str]:
    """The demo store on each engine: (store URL, tracker URL)."""
    value: tuple[str, str] = request.getfixturevalue(f"{request.param}_store")
    return value


@dataclass(frozen=True)
class Snapshot:
    """What an operator would compare: every table's row count, a few values people look at, and
    the conversations."""

    counts: dict[str, int]
    customer: tuple[str, str | None, str | None]
    order_total: str
    events: list[str]


def _snapshot(store: tuple[str, str]) -> Snapshot:
    url, tracker = store
    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            tables = sorted(inspect(connection).get_table_names())
            counts = {
                name: connection.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one()
                for name in tables
            }
            name, phone, city = connection.execute(
                text("SELECT name, phone, city FROM customers WHERE customer_id = :id"), {"id": CUSTOMER}
            ).one()
            total = connection.execute(text("SELECT sum(amount) FROM orders")).scalar_one()
    finally:
        engine.dispose()
    tracker_engine = create_engine_for(tracker)
    try:
        with tracker_engine.connect() as connection:
            events = list(connection.execute(text("SELECT data FROM events ORDER BY id")).scalars())
    finally:
        tracker_engine.dispose()
    return Snapshot(counts, (name, phone, city), str(total), events)


def _change_everything(store: tuple[str, str]) -> None:
    """What a bad day does: deleted follow-ups, an edited customer, a lost order, lost conversations."""
    url, tracker = store
    engine = create_engine_for(url)
    try:
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM interactions"))
            connection.execute(
                text("UPDATE customers SET city = '火星', phone = NULL WHERE customer_id = :id"),
                {"id": CUSTOMER},
            )
            order = connection.execute(
                text("SELECT order_id FROM orders ORDER BY order_id LIMIT 1")
            ).scalar_one()
            connection.execute(text("DELETE FROM order_items WHERE order_id = :id"), {"id": order})
            connection.execute(text("DELETE FROM orders WHERE order_id = :id"), {"id": order})
    finally:
        engine.dispose()
    tracker_engine = create_engine_for(tracker)
    try:
        with tracker_engine.begin() as connection:
            connection.execute(text("DELETE FROM events"))
    finally:
        tracker_engine.dispose()


def _audit_actions(url: str) -> list[tuple[str, dict[str, object]]]:
    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT action, detail FROM audit_log ORDER BY id")).all()
    finally:
        engine.dispose()
    return [(action, detail if isinstance(detail, dict) else json.loads(detail)) for action, detail in rows]


def test_round_trip_brings_every_row_back(
    store: tuple[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url, _ = store
    before = _snapshot(store)
    path = tmp_path / "backups" / "nightly.zip"

    assert main(["backup", str(path)]) == 0
    assert path.stat().st_mode & 0o777 == 0o600  # personal data: the owner's only
    assert "备份完成" in caplog.text and "客户 60 位、订单 254 笔" in caplog.text
    _change_everything(store)
    assert _snapshot(store) != before

    assert main(["restore", str(path), "--yes"]) == 0

    after = _snapshot(store)
    # The restore's own audit row is the one row more: the backup's was written after the backup.
    assert after.counts == {**before.counts, "audit_log": before.counts["audit_log"] + 1}
    assert (after.customer, after.order_total) == (before.customer, before.order_total)
    assert after.events == before.events == ["查订单", "谢谢"]
    assert [action for action, _ in _audit_actions(url)] == ["restore_store"]
    assert "恢复完成" in caplog.text
    # Nothing personal reached the log: not the customer's name, nor her phone.
    name, phone, _ = before.customer
    assert name not in caplog.text and phone and phone not in caplog.text


def test_restore_asks_first_and_no_changes_nothing(
    sqlite_store: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / "before.zip"
    assert main(["backup", str(path)]) == 0
    _change_everything(sqlite_store)
    changed = _snapshot(sqlite_store)
    capsys.readouterr()
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))

    assert main(["restore", str(path)]) == 1

    shown = capsys.readouterr().out
    assert "备份内容：客户 60 位、订单 254 笔" in shown
    assert "确定要恢复吗？[y/N]" in shown
    assert "已取消，数据没有改动" in caplog.text
    assert _snapshot(sqlite_store) == changed


def test_a_sqlite_backup_is_one_moment_while_the_assistant_writes(
    sqlite_store: tuple[str, str], tmp_path: Path
) -> None:
    url, _ = sqlite_store
    engine = create_engine_for(url)
    with engine.begin() as connection:
        # Big enough for several steps of the backup API (16 MiB each), written between by the writer.
        connection.execute(text("CREATE TABLE padding (blob BLOB)"))
        connection.execute(
            text(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 6000)"
                " INSERT INTO padding SELECT zeroblob(4000) FROM n"
            )
        )
        connection.execute(text("CREATE TABLE ledger (id INTEGER PRIMARY KEY, side TEXT)"))
    stop = threading.Event()
    commits = 0

    def write_pairs() -> None:
        nonlocal commits
        while not stop.is_set():
            # Each transaction writes a debit and its credit: a torn copy would show one without the other.
            with engine.begin() as connection:
                connection.execute(text("INSERT INTO ledger (side) VALUES ('debit'), ('credit')"))
            commits += 1

    writer = threading.Thread(target=write_pairs)
    writer.start()
    started = time.monotonic()
    try:
        assert main(["backup", str(tmp_path / "busy.zip")]) == 0
        # Page by page without one read around all steps, SQLite restarts the copy at every write
        # of another connection: over a minute here, instead of under a second.
        assert time.monotonic() - started < 20
    finally:
        stop.set()
        writer.join()
        engine.dispose()
    assert commits > 0

    assert main(["restore", str(tmp_path / "busy.zip"), "--yes"]) == 0

    restored = create_engine_for(url)
    try:
        with restored.connect() as connection:
            rows = connection.execute(text("SELECT side, count(*) FROM ledger GROUP BY side")).all()
            sides: dict[str, int] = {str(side): int(count) for side, count in rows}
            assert connection.execute(text("PRAGMA integrity_check")).scalar_one() == "ok"
    finally:
        restored.dispose()
    assert sides.get("debit", 0) == sides.get("credit", 0)


def _rewrite_manifest(source: Path, target: Path, **changes: object) -> None:
    """A copy of a real backup whose manifest says something else (a newer schema, another kind …)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.infolist():
            data = old.read(item)
            if item.filename == "manifest.json":
                manifest = json.loads(data)
                for key, value in changes.items():
                    if key.startswith("crm_"):
                        manifest["parts"][0][key.removeprefix("crm_")] = value
                    else:
                        manifest[key] = value
                data = json.dumps(manifest).encode()
            new.writestr(item, data)


def _damage(source: Path, target: Path) -> None:
    """A copy of a backup with one byte flipped in the middle of the CRM database's data."""
    shutil.copyfile(source, target)
    with zipfile.ZipFile(source) as archive:
        info = next(item for item in archive.infolist() if item.filename.startswith("crm."))
    with target.open("r+b") as raw:
        raw.seek(info.header_offset + 26)
        name_length = int.from_bytes(raw.read(2), "little")
        extra_length = int.from_bytes(raw.read(2), "little")
        middle = info.header_offset + 30 + name_length + extra_length + info.compress_size // 2
        raw.seek(middle)
        byte = raw.read(1)
        raw.seek(middle)
        raw.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("text", "不是小助手的备份文件"),
        ("zip_without_manifest", "不是小助手的备份文件"),
        ("another_kind", "不是小助手的备份文件"),
        ("newer_format", "由更新版本的小助手生成"),
        ("newer_schema", "备份的数据库结构（版本 9999）比当前程序"),
        ("missing", "找不到备份文件"),
    ],
)
def test_a_file_that_is_not_a_backup_is_refused(
    sqlite_store: tuple[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture, kind: str, words: str
) -> None:
    _refused(sqlite_store, tmp_path, caplog, kind, words)


def test_a_damaged_backup_is_refused_and_nothing_changes(
    store: tuple[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _refused(store, tmp_path, caplog, "damaged", "备份文件已损坏")


def test_a_dump_of_a_newer_postgresql_is_refused_with_what_to_install(
    postgres_store: tuple[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = tmp_path / "good.zip"
    assert main(["backup", str(good)]) == 0
    _change_everything(postgres_store)
    changed = _snapshot(postgres_store)
    newer_tools, newer_server = tmp_path / "newer-tools.zip", tmp_path / "newer-server.zip"
    _rewrite_manifest(good, newer_tools, crm_dump_major=99)
    _rewrite_manifest(good, newer_server, crm_server_major=99)

    assert main(["restore", str(newer_tools), "--yes"]) == 1
    assert main(["restore", str(newer_server), "--yes"]) == 1

    assert "找不到 99 版或更新的 PostgreSQL 客户端工具 pg_restore，本机只找到" in caplog.text
    assert "postgresql-client-99" in caplog.text
    assert "备份来自 PostgreSQL 99，不能恢复到更旧的 PostgreSQL" in caplog.text
    assert _snapshot(postgres_store) == changed


def test_a_postgresql_restore_blocked_by_the_running_assistant_changes_nothing(
    postgres_store: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, _ = postgres_store
    path = tmp_path / "b.zip"
    assert main(["backup", str(path)]) == 0
    _change_everything(postgres_store)
    changed = _snapshot(postgres_store)
    # A second instead of a minute: how long the restore waits for the assistant's locks.
    monkeypatch.setattr("crm_store.backup.RESTORE_LOCK_TIMEOUT", "1s")
    engine = create_engine_for(url)
    try:
        with engine.connect() as busy:
            busy.execute(text("SELECT count(*) FROM customers"))  # a transaction left open

            assert main(["restore", str(path), "--yes"]) == 1

            busy.rollback()
    finally:
        engine.dispose()
    assert "CRM 数据库正被其他连接占用（锁住），请稍后再试，或先停止小助手。" in caplog.text
    assert _snapshot(postgres_store) == changed


def _refused(
    store: tuple[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture, kind: str, words: str
) -> None:
    good = tmp_path / "good.zip"
    assert main(["backup", str(good)]) == 0
    _change_everything(store)
    changed = _snapshot(store)
    bad = tmp_path / "bad.zip"
    if kind == "text":
        bad.write_text("客户,电话\n", encoding="utf-8")
    elif kind == "zip_without_manifest":
        with zipfile.ZipFile(bad, "w") as archive:
            archive.writestr("crm.sqlite3", b"SQLite format 3\x00")
    elif kind == "another_kind":
        _rewrite_manifest(good, bad, format="someone-elses-backup")
    elif kind == "newer_format":
        _rewrite_manifest(good, bad, format_version=99)
    elif kind == "newer_schema":
        _rewrite_manifest(good, bad, crm_revision="9999")
    elif kind == "damaged":
        _damage(good, bad)

    assert main(["restore", str(bad), "--yes"]) == 1

    assert words in caplog.text
    assert _snapshot(store) == changed


def test_an_older_schema_is_restored_then_migrated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    scripts = ScriptDirectory.from_config(alembic_config())
    head = scripts.get_current_head()
    assert head is not None
    current = scripts.get_revision(head)
    assert current is not None
    previous = current.down_revision
    assert isinstance(previous, str)
    old = create_engine_for(f"sqlite:///{tmp_path / 'old' / 'crm.db'}")
    try:
        config = alembic_config(old)
        with old.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, previous)
    finally:
        old.dispose()
    monkeypatch.setenv("CRM_DATABASE_URL", f"sqlite:///{tmp_path / 'old' / 'crm.db'}")
    path = tmp_path / "old.zip"
    assert main(["backup", str(path)]) == 0
    monkeypatch.setenv("CRM_DATABASE_URL", f"sqlite:///{tmp_path / 'new' / 'crm.db'}")
    assert main(["migrate"]) == 0

    assert main(["restore", str(path), "--yes"]) == 0

    assert f"备份的数据库结构（版本 {previous}）较旧，已升级到当前版本" in caplog.text
    url = f"sqlite:///{tmp_path / 'new' / 'crm.db'}"
    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head
    finally:
        engine.dispose()
    assert _audit_actions(url) == [
        (
            "restore_store",
            {
                "file": "old.zip",
                "backup_created_at": _audit_actions(url)[0][1]["backup_created_at"],
                "parts": ["crm"],
                "revision": previous,
                "migrated": True,
            },
        )
    ]


def test_long_steps_report_how_far_they_are(
    store: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Every report instead of one per 20 s, so that a store this small shows the lines at all.
    monkeypatch.setattr("crmbot.backup_cli.REPORT_EVERY_S", 0.0)
    path = tmp_path / "b.zip"

    assert main(["backup", str(path)]) == 0
    assert main(["restore", str(path), "--yes"]) == 0

    lines = caplog.messages
    for verb in ("备份", "恢复"):
        assert f"{verb} CRM 数据库：开始" in lines
        assert any(line.startswith(f"{verb} CRM 数据库：已完成 ") for line in lines)
        assert any(line.startswith(f"{verb} CRM 数据库：完成，用时 ") for line in lines)


def test_backup_never_overwrites_a_file(
    sqlite_store: tuple[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "taken.zip"
    path.write_bytes(b"keep me")

    assert main(["backup", str(path)]) == 1

    assert "已存在" in caplog.text and path.read_bytes() == b"keep me"
    assert main(["backup", str(tmp_path)]) == 0  # a directory: a new file named by the time
    assert len(list(tmp_path.glob("xiaozhushou-*.zip"))) == 1

"""Backup and restore of the CRM store and, when it is a database of its own, Rasa's tracker store.

A backup is one zip file: `manifest.json` says what it holds (each part's engine, schema revision
and row counts, the PostgreSQL versions; never a URL, which may carry a password), and each part
is one member:

- SQLite: a copy of the database file made with SQLite's online backup API, page by page, all
  inside one read transaction of the source. WAL lets the assistant go on writing beside that
  read, and the open read pins one moment, so the copy is consistent and never restarts.
- PostgreSQL: `pg_dump` in custom format, streamed into the zip, taken in a snapshot that a
  repeatable-read transaction exports after reading the revision and the row counts in it: the
  manifest describes exactly the dump.

Restore refuses what it cannot put back whole before it changes anything: a file that is not a
backup, a part whose engine differs from the one configured now, a schema newer than this code's
migrations, PostgreSQL tools older than the dump. Then each part is replaced at once:

- SQLite: the backup API again, from the backup's copy into the live file, in one write
  transaction: the running assistant reads the old content or the new, never a mix.
- PostgreSQL: `pg_restore`'s SQL, after a drop of everything in the dumped schemas, streamed into
  one `psql` transaction that is committed only when `pg_restore` has read the whole dump: the
  database is the backup's or is left as it was; the assistant's queries wait for the commit.

An older schema is restored as it is; the caller migrates it afterwards. Nothing here logs or
raises a row's content: `psql` reports a failed statement with its data (a `DETAIL` holding a
key's value, a `CONTEXT` holding a COPY line), so only its `ERROR` line is kept, masked.
"""

import contextlib
import glob
import json
import logging
import re
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Final

from sqlalchemy import Connection, text
from sqlalchemy.engine import URL

from crm_store.clock import TZ
from crm_store.db import SQLITE_BUSY_TIMEOUT_MS, alembic_config, create_engine_for
from crm_store.errors import Conflict, Invalid, NotFound, Unavailable
from crm_store.privacy import mask_text
from crm_store.settings import StoreSettings, child_environment, get_store_settings

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Manifest",
    "PartInfo",
    "Progress",
    "RestorePlan",
    "Target",
    "back_up",
    "plan_restore",
    "read_manifest",
    "restore",
    "targets",
]

logger = logging.getLogger(__name__)

FORMAT: Final = "xiaozhushou-backup"
FORMAT_VERSION: Final = 1
MANIFEST: Final = "manifest.json"
CRM: Final = "crm"
TRACKER: Final = "tracker"

# Pages per step of SQLite's backup API: 16 MiB at the default page size, a progress call each.
SQLITE_PAGES_PER_STEP: Final = 4096
CHUNK_BYTES: Final = 1 << 20
# How long a PostgreSQL restore waits for the running assistant's locks before it gives up whole.
RESTORE_LOCK_TIMEOUT: Final = "60s"
# Where PostgreSQL's client tools live when they are not on PATH (Debian/Ubuntu, RHEL, Homebrew,
# Postgres.app); each version in its own directory.
PG_BIN_GLOBS: Final = (
    "/usr/lib/postgresql/*/bin",
    "/usr/pgsql-*/bin",
    "/usr/local/pgsql/bin",
    "/opt/homebrew/opt/postgresql@*/bin",
    "/usr/local/opt/postgresql@*/bin",
    "/Applications/Postgres.app/Contents/Versions/*/bin",
)
_PG_VERSION: Final = re.compile(r"\(PostgreSQL\)\s+(\d+)")
_DUMPING_TABLE: Final = re.compile(r'dumping contents of table "(?P<name>.+)"')
_SQLITE_HEADER: Final = b"SQLite format 3\x00"

Progress = Callable[[str, float], None]
"""Called with a part (`crm`, `tracker`) and the share of it done, 0–1: 0 when it starts, 1 when done."""


@dataclass(frozen=True)
class Target:
    """A database that a backup holds or a restore replaces: the CRM store or the tracker store."""

    part: str
    url: URL

    @property
    def engine(self) -> str:
        return self.url.get_backend_name()

    @property
    def sqlite_file(self) -> Path:
        """The file of a SQLite target (`Invalid` for an in-memory database: nothing to back up)."""
        database = self.url.database
        if not database or database == ":memory:" or database.startswith("file:"):
            raise Invalid("backup_memory_database", part=self.part)
        return Path(database)


@dataclass(frozen=True)
class PartInfo:
    """One part of a backup as its manifest describes it."""

    part: str
    engine: str
    member: str
    tables: dict[str, int]
    revision: str | None = None
    schemas: list[str] = field(default_factory=list)
    server_major: int | None = None
    dump_major: int | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "part": self.part,
            "engine": self.engine,
            "member": self.member,
            "revision": self.revision,
            "tables": self.tables,
        }
        if self.engine == "postgresql":
            body |= {
                "schemas": self.schemas,
                "server_major": self.server_major,
                "dump_major": self.dump_major,
            }
        return body

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> "PartInfo":
        return cls(
            part=str(body["part"]),
            engine=str(body["engine"]),
            member=str(body["member"]),
            tables={str(name): int(count) for name, count in dict(body["tables"]).items()},
            revision=body.get("revision"),
            schemas=[str(name) for name in body.get("schemas", [])],
            server_major=body.get("server_major"),
            dump_major=body.get("dump_major"),
        )


@dataclass(frozen=True)
class Manifest:
    """What a backup holds. `tracker` is where the conversations were: `separate` (a part of its
    own), `in_crm` (Rasa's tables inside the CRM database) or `none` (no tracker database yet)."""

    created_at: datetime
    tracker: str
    parts: list[PartInfo]

    def part(self, name: str) -> PartInfo | None:
        return next((info for info in self.parts if info.part == name), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": self.created_at.isoformat(),
            "tracker": self.tracker,
            "parts": [info.to_json() for info in self.parts],
        }


@dataclass(frozen=True)
class RestorePlan:
    """A backup checked against the databases configured now; `restore` carries it out."""

    path: Path
    manifest: Manifest
    targets: list[Target]
    needs_migration: bool
    """The backup's schema is older than this code's: migrate after the restore."""
    kept_tracker: bool
    """The backup holds no conversations while a tracker database is configured: it stays as it is."""


def targets(settings: StoreSettings | None = None) -> list[Target]:
    """The databases a backup covers now: the CRM store, and the tracker store when it is another database."""
    settings = settings or get_store_settings()
    crm = Target(CRM, create_engine_for(settings.database_url).url)
    tracker = Target(TRACKER, create_engine_for(settings.tracker_database_url()).url)
    return [crm] if _same_database(crm, tracker) else [crm, tracker]


def _same_database(one: Target, other: Target) -> bool:
    if one.engine != other.engine:
        return False
    if one.engine == "sqlite":
        return one.sqlite_file.resolve() == other.sqlite_file.resolve()
    return (one.url.host, one.url.port, one.url.database) == (
        other.url.host,
        other.url.port,
        other.url.database,
    )


# --- backup ---------------------------------------------------------------------------------------


def back_up(path: Path, to_save: Sequence[Target], *, progress: Progress | None = None) -> Manifest:
    """Write a backup of `to_save` to `path` (a new file; written beside it first, then renamed).

    Raises:
        Conflict: `path` exists already ("backup_file_exists").
        NotFound: The CRM store has no schema yet ("backup_store_not_created"), or its SQLite
            file does not exist ("backup_database_missing").
        Unavailable: PostgreSQL's `pg_dump` is missing or older than the server, or it failed.
    """
    report = progress or _no_progress
    if path.exists():
        raise Conflict("backup_file_exists", file=path.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    parts: list[PartInfo] = []
    tracker = "in_crm" if len(to_save) == 1 else "separate"
    # Readable by its owner only, like the database: it holds every customer's personal data.
    partial.touch(mode=0o600)
    partial.chmod(0o600)
    try:
        with (
            zipfile.ZipFile(partial, "w", allowZip64=True) as archive,
            tempfile.TemporaryDirectory(prefix="crm-backup-", dir=path.parent) as scratch,
        ):
            for target in to_save:
                if target.engine == "sqlite" and target.part == TRACKER and not target.sqlite_file.exists():
                    tracker = "none"  # Rasa has not written a conversation yet
                    continue
                report(target.part, 0.0)
                if target.engine == "sqlite":
                    info = _sqlite_back_up(target, archive, Path(scratch), report)
                else:
                    info = _postgres_back_up(target, archive, report)
                if target.part == CRM and info.revision is None:
                    raise NotFound("backup_store_not_created")
                parts.append(info)
                report(target.part, 1.0)
            manifest = Manifest(created_at=datetime.now(TZ), tracker=tracker, parts=parts)
            archive.writestr(MANIFEST, json.dumps(manifest.to_json(), ensure_ascii=False, indent=2))
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return manifest


def _no_progress(_part: str, _done: float) -> None:
    pass


def _sqlite_back_up(target: Target, archive: zipfile.ZipFile, scratch: Path, report: Progress) -> PartInfo:
    source_file = target.sqlite_file
    if not source_file.exists():
        raise NotFound("backup_database_missing", part=target.part)
    copy = scratch / f"{target.part}.sqlite3"
    source = sqlite3.connect(
        f"{source_file.resolve().as_uri()}?mode=ro",
        uri=True,
        isolation_level=None,
        timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
    )
    destination = sqlite3.connect(copy)
    try:
        # One read transaction around every step: the copy is this moment's, whatever is written meanwhile.
        source.execute("BEGIN")
        source.execute("SELECT count(*) FROM sqlite_master").fetchone()
        source.backup(
            destination,
            pages=SQLITE_PAGES_PER_STEP,
            progress=lambda _status, remaining, total: report(
                target.part, 0.9 * (1 - remaining / max(total, 1))
            ),
        )
        source.execute("COMMIT")
        tables, revision = _sqlite_contents(destination)
    except sqlite3.Error as exc:
        raise _sqlite_unavailable(target, exc) from exc
    finally:
        destination.close()
        source.close()
    member = f"{target.part}.sqlite3"
    # SQLite pages compress well; the fastest level, as the copy can be gigabytes.
    archive.write(copy, member, compress_type=zipfile.ZIP_DEFLATED, compresslevel=1)
    copy.unlink()
    return PartInfo(part=target.part, engine="sqlite", member=member, tables=tables, revision=revision)


def _sqlite_unavailable(target: Target, exc: sqlite3.Error) -> Unavailable:
    """SQLite's own message names no row, only the failure ("database is locked", "disk I/O error")."""
    busy = isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)
    return Unavailable("database_busy" if busy else "database_failed", part=target.part, reason=str(exc))


def _sqlite_contents(connection: sqlite3.Connection) -> tuple[dict[str, int], str | None]:
    """Row counts of every table, and the Alembic revision when the database has one."""
    names = [
        row[0]
        for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    tables = {name: int(connection.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]) for name in names}
    revision = None
    if "alembic_version" in tables:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        revision = row[0] if row else None
    return tables, revision


def _postgres_back_up(target: Target, archive: zipfile.ZipFile, report: Progress) -> PartInfo:
    engine = create_engine_for(target.url.render_as_string(hide_password=False))
    member = f"{target.part}.pgdump"
    try:
        with engine.connect() as plain:
            connection = plain.execution_options(isolation_level="REPEATABLE READ")
            with connection.begin():
                # The snapshot first: the counts and the revision below are read in it, like the dump.
                snapshot = str(connection.execute(text("SELECT pg_export_snapshot()")).scalar_one())
                server_major = _server_major(connection)
                pg_dump, dump_major = _pg_tool("pg_dump", at_least=server_major)
                sizes, tables, revision, schemas = _postgres_contents(connection)
                if target.part == CRM and revision is None:
                    raise NotFound("backup_store_not_created")
                # pg_dump imports the snapshot, so this transaction stays open until it ends.
                entry = zipfile.ZipInfo(member, date_time=datetime.now(TZ).timetuple()[:6])
                with archive.open(entry, "w", force_zip64=True) as out:
                    _run_pg_dump(pg_dump, target, snapshot, out, sizes, report)
    finally:
        engine.dispose()
    return PartInfo(
        part=target.part,
        engine="postgresql",
        member=member,
        tables=tables,
        revision=revision,
        schemas=schemas,
        server_major=server_major,
        dump_major=dump_major,
    )


def _server_major(connection: Connection) -> int:
    return int(connection.execute(text("SHOW server_version_num")).scalar_one()) // 10000


def _postgres_contents(
    connection: Connection,
) -> tuple[dict[str, int], dict[str, int], str | None, list[str]]:
    """Each user table's size in bytes and row count (by `schema.name`), the revision, the schemas."""
    rows = connection.execute(
        text(
            "SELECT n.nspname, c.relname, pg_table_size(c.oid) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
            " AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1, 2"
        )
    ).all()
    sizes: dict[str, int] = {}
    tables: dict[str, int] = {}
    for schema, name, size in rows:
        # pg_dump's verbose lines name a table `schema.name`; the counts name it as SQLite's do
        # when it is in `public`, so that both engines' manifests read alike.
        sizes[f"{schema}.{name}"] = int(size)
        shown = name if schema == "public" else f"{schema}.{name}"
        tables[shown] = int(
            connection.execute(text(f'SELECT count(*) FROM "{schema}"."{name}"')).scalar_one()
        )
    revision = None
    if connection.execute(text("SELECT to_regclass('alembic_version')")).scalar_one() is not None:
        revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    schemas = sorted({qualified.split(".", 1)[0] for qualified in sizes})
    return sizes, tables, revision, schemas


def _run_pg_dump(
    pg_dump: Path, target: Target, snapshot: str, out: IO[bytes], sizes: dict[str, int], report: Progress
) -> None:
    conninfo, env = _libpq(target.url)
    total = max(sum(sizes.values()), 1)
    done = {"bytes": 0, "current": 0}

    def on_line(line: str) -> None:
        # Verbose pg_dump names each table as it starts on it: the tables before it are done.
        if match := _DUMPING_TABLE.search(line):
            done["bytes"] += done["current"]
            done["current"] = sizes.get(match["name"], 0)
            report(target.part, 0.95 * done["bytes"] / total)

    process = subprocess.Popen(
        [str(pg_dump), "--format=custom", "--verbose", f"--snapshot={snapshot}", f"--dbname={conninfo}"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    errors = _drain(process.stderr, on_line)
    assert process.stdout is not None
    while chunk := process.stdout.read(CHUNK_BYTES):
        out.write(chunk)
    returncode = process.wait()
    errors.join()
    if returncode != 0:
        raise Unavailable("backup_tool_failed", part=target.part, tool="pg_dump", reason=errors.reason())


# --- reading and checking a backup -------------------------------------------------------------------


def read_manifest(path: Path) -> Manifest:
    """The manifest of the backup at `path`.

    Raises:
        NotFound: No such file ("backup_file_missing").
        Invalid: Not a backup of this assistant ("not_a_backup"), or one written by a newer
            version of it ("backup_format_too_new").
    """
    if not path.is_file():
        raise NotFound("backup_file_missing", file=path.name)
    try:
        with zipfile.ZipFile(path) as archive:
            body = json.loads(archive.read(MANIFEST).decode("utf-8"))
            members = set(archive.namelist())
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError, json.JSONDecodeError, OSError) as exc:
        raise Invalid("not_a_backup", file=path.name) from exc
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise Invalid("not_a_backup", file=path.name)
    if not isinstance(body.get("format_version"), int) or body["format_version"] > FORMAT_VERSION:
        raise Invalid("backup_format_too_new", file=path.name, format_version=body.get("format_version"))
    try:
        manifest = Manifest(
            created_at=datetime.fromisoformat(body["created_at"]),
            tracker=str(body["tracker"]),
            parts=[PartInfo.from_json(part) for part in body["parts"]],
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise Invalid("not_a_backup", file=path.name) from exc
    crm = manifest.part(CRM)
    if crm is None or any(info.member not in members for info in manifest.parts):
        raise Invalid("not_a_backup", file=path.name)
    return manifest


def plan_restore(path: Path, current: Sequence[Target]) -> RestorePlan:
    """Check the backup at `path` against the databases configured now, before anything changes.

    Raises:
        NotFound, Invalid: As `read_manifest`; and a part whose engine differs from the one
            configured ("backup_engine_mismatch"), a tracker kept elsewhere than now
            ("backup_tracker_layout"), a schema newer than this code's migrations
            ("backup_schema_too_new"), a damaged member ("backup_damaged"), a dump from a
            newer PostgreSQL than the server ("backup_server_too_old").
        Unavailable: `pg_restore` or `psql` missing, or older than the dump ("pg_tool_missing").
    """
    manifest = read_manifest(path)
    by_part = {target.part: target for target in current}
    chosen: list[Target] = []
    for info in manifest.parts:
        target = by_part.get(info.part)
        if target is None:
            # The backup's conversations were a database of their own; now they are in the CRM's.
            raise Invalid("backup_tracker_layout", backup=manifest.tracker, current="in_crm")
        if target.engine != info.engine:
            raise Invalid("backup_engine_mismatch", part=info.part, backup=info.engine, current=target.engine)
        chosen.append(target)
    if manifest.tracker == "in_crm" and TRACKER in by_part:
        raise Invalid("backup_tracker_layout", backup="in_crm", current="separate")
    needs_migration = _check_revision(manifest)
    _check_whole(path, manifest)
    for info, target in zip(manifest.parts, chosen, strict=True):
        if info.engine == "postgresql":
            _check_postgres_versions(info, target)
    return RestorePlan(
        path=path,
        manifest=manifest,
        targets=chosen,
        needs_migration=needs_migration,
        kept_tracker=manifest.tracker == "none" and TRACKER in by_part and _exists(by_part[TRACKER]),
    )


def _check_whole(path: Path, manifest: Manifest) -> None:
    """Read every member through its CRC before anything changes: one pass over the file."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
        raise Invalid("backup_damaged", part=CRM) from exc
    if bad is not None:
        info = next((part for part in manifest.parts if part.member == bad), None)
        raise Invalid("backup_damaged", part=info.part if info is not None else CRM)


def _exists(target: Target) -> bool:
    """Whether there is a database to keep: a SQLite file appears only once Rasa wrote to it."""
    return target.engine != "sqlite" or target.sqlite_file.exists()


def _check_revision(manifest: Manifest) -> bool:
    """True when the backup's schema is older than the code's; `Invalid` when it is newer or unknown."""
    from alembic.script import ScriptDirectory

    crm = manifest.part(CRM)
    assert crm is not None  # read_manifest refuses a backup without it; programming error otherwise
    scripts = ScriptDirectory.from_config(alembic_config())
    known = {script.revision for script in scripts.walk_revisions()}
    if crm.revision not in known:
        # Not one of this code's migrations: written by a newer version of the assistant.
        raise Invalid("backup_schema_too_new", revision=crm.revision, head=scripts.get_current_head())
    return crm.revision != scripts.get_current_head()


def _check_postgres_versions(info: PartInfo, target: Target) -> None:
    engine = create_engine_for(target.url.render_as_string(hide_password=False))
    try:
        with engine.connect() as connection:
            server_major = _server_major(connection)
    finally:
        engine.dispose()
    if info.server_major is not None and info.server_major > server_major:
        raise Invalid("backup_server_too_old", backup_major=info.server_major, server_major=server_major)
    _restore_tools(info)


def _restore_tools(info: PartInfo) -> tuple[Path, Path]:
    """`pg_restore` able to read the dump, and the `psql` beside it (it knows the dump's meta-commands)."""
    pg_restore, _ = _pg_tool("pg_restore", at_least=info.dump_major or 0)
    psql = pg_restore.with_name("psql")
    if not psql.is_file():
        psql, _ = _pg_tool("psql", at_least=info.dump_major or 0)
    return pg_restore, psql


# --- restore --------------------------------------------------------------------------------------------


def restore(plan: RestorePlan, *, progress: Progress | None = None) -> None:
    """Replace each database of `plan` with the backup's content (see the module's docstring).

    The conversations go first and the CRM store last, so that when the store was restored the
    whole backup was; the caller then migrates it when `plan.needs_migration`. A failure leaves
    the part that failed as it was (and the store with it).

    Raises:
        Invalid: A part of the file is damaged ("backup_damaged").
        Unavailable: A PostgreSQL tool failed ("backup_tool_failed"), or the database stayed in
            use past the lock timeout ("database_busy").
    """
    report = progress or _no_progress
    pairs = sorted(zip(plan.manifest.parts, plan.targets, strict=True), key=lambda pair: pair[0].part == CRM)
    with zipfile.ZipFile(plan.path) as archive:
        for info, target in pairs:
            report(info.part, 0.0)
            if info.engine == "sqlite":
                _sqlite_restore(info, target, archive, report)
            else:
                _postgres_restore(info, target, archive, report)
            report(info.part, 1.0)


def _sqlite_restore(info: PartInfo, target: Target, archive: zipfile.ZipFile, report: Progress) -> None:
    live = target.sqlite_file
    live.parent.mkdir(parents=True, exist_ok=True)
    # The copy beside the live file: the space it needs is the store's, wherever the backup lies.
    with tempfile.TemporaryDirectory(prefix="crm-restore-", dir=live.parent) as scratch:
        copy = Path(scratch) / info.member
        try:
            # Reading the member whole checks its CRC: a damaged file fails here, before the store changes.
            with archive.open(info.member) as member, copy.open("wb") as out:
                shutil.copyfileobj(member, out, CHUNK_BYTES)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
            raise Invalid("backup_damaged", part=info.part) from exc
        with copy.open("rb") as head:
            if head.read(len(_SQLITE_HEADER)) != _SQLITE_HEADER:
                raise Invalid("backup_damaged", part=info.part)
        report(info.part, 0.3)
        source = sqlite3.connect(copy)
        destination = sqlite3.connect(live, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            # The destination stays write-locked from the first step to the last: readers see the
            # old content or the new.
            source.backup(
                destination,
                pages=SQLITE_PAGES_PER_STEP,
                progress=lambda _s, remaining, total: report(
                    info.part, 0.3 + 0.7 * (1 - remaining / max(total, 1))
                ),
            )
        except sqlite3.Error as exc:
            raise _sqlite_unavailable(target, exc) from exc
        finally:
            destination.close()
            source.close()


def _postgres_restore(info: PartInfo, target: Target, archive: zipfile.ZipFile, report: Progress) -> None:
    pg_restore, psql = _restore_tools(info)
    conninfo, env = _libpq(target.url)
    size = max(archive.getinfo(info.member).file_size, 1)
    reader = subprocess.Popen(
        [str(pg_restore), "--no-owner", "--no-privileges", "--file=-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    writer = subprocess.Popen(
        [str(psql), "--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1", f"--dbname={conninfo}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    reader_errors = _drain(reader.stderr)
    writer_errors = _drain(writer.stderr)
    damaged: list[BaseException] = []
    feeder = threading.Thread(
        target=_feed, args=(archive, info, reader, size, report, damaged), name="restore-feed", daemon=True
    )
    assert writer.stdin is not None and reader.stdout is not None
    feeder.start()
    psql_stopped = False
    try:
        writer.stdin.write(_cleanup_sql(info.schemas).encode())
        while chunk := reader.stdout.read(CHUNK_BYTES):
            writer.stdin.write(chunk)
        feeder.join()
        if reader.wait() == 0 and not damaged:
            # Only now: psql reaching the end of its input without COMMIT rolls everything back.
            writer.stdin.write(b"COMMIT;\n")
    except BrokenPipeError:
        psql_stopped = True  # psql stopped at an error: its own message says which
    finally:
        try:
            writer.stdin.close()
        except BrokenPipeError:
            psql_stopped = True
        if reader.poll() is None:
            reader.kill()
        reader_code = reader.wait()
        writer_code = writer.wait()
        feeder.join()
        reader_errors.join()
        writer_errors.join()
    if damaged:
        raise Invalid("backup_damaged", part=info.part) from damaged[0]
    if reader_code != 0 and not psql_stopped:
        raise Unavailable(
            "backup_tool_failed", part=info.part, tool="pg_restore", reason=reader_errors.reason()
        )
    if "lock timeout" in writer_errors.reason():
        # The running assistant held a table longer than RESTORE_LOCK_TIMEOUT: rolled back, try later.
        raise Unavailable("database_busy", part=info.part, reason=writer_errors.reason())
    if writer_code != 0 or reader_code != 0:
        raise Unavailable("backup_tool_failed", part=info.part, tool="psql", reason=writer_errors.reason())


def _feed(
    archive: zipfile.ZipFile,
    info: PartInfo,
    reader: "subprocess.Popen[bytes]",
    size: int,
    report: Progress,
    damaged: list[BaseException],
) -> None:
    """Stream the dump into pg_restore, reporting how much of it went in."""
    assert reader.stdin is not None
    sent = 0
    try:
        with archive.open(info.member) as member:
            while chunk := member.read(CHUNK_BYTES):
                reader.stdin.write(chunk)
                sent += len(chunk)
                report(info.part, 0.98 * sent / size)
    except BrokenPipeError:
        pass  # pg_restore or psql stopped; their messages say why
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
        damaged.append(exc)
    finally:
        with contextlib.suppress(BrokenPipeError):
            reader.stdin.close()


def _cleanup_sql(schemas: Sequence[str]) -> str:
    """The start of the restore's transaction: drop what the dumped schemas hold now.

    Everything, not only what the dump holds: a table added by a later migration would otherwise
    survive and stop that migration from running again. `public` itself stays (its owner and
    rights are the server's); other schemas are dropped whole, as the dump creates them. Objects
    of extensions stay with their extension.
    """
    other = [name for name in schemas if name != "public"]
    drop_schemas = "".join(f'DROP SCHEMA IF EXISTS "{name}" CASCADE;\n' for name in other)
    return (
        "BEGIN;\n"
        f"SET LOCAL lock_timeout = '{RESTORE_LOCK_TIMEOUT}';\n"
        f"{drop_schemas}"
        "DO $$\nDECLARE item record;\nBEGIN\n"
        "  FOR item IN SELECT c.relname, c.relkind FROM pg_class c\n"
        "      JOIN pg_namespace n ON n.oid = c.relnamespace\n"
        "      WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')\n"
        "        AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass\n"
        "                        AND d.objid = c.oid AND d.deptype = 'e')\n"
        "  LOOP\n"
        "    EXECUTE format('DROP %s IF EXISTS public.%I CASCADE', CASE item.relkind\n"
        "      WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'\n"
        "      WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, item.relname);\n"
        "  END LOOP;\n"
        "  FOR item IN SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace\n"
        "      WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd', 'r', 'm')\n"
        "        AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass\n"
        "                        AND d.objid = t.oid AND d.deptype = 'e')\n"
        "  LOOP\n"
        "    EXECUTE format('DROP TYPE IF EXISTS public.%I CASCADE', item.typname);\n"
        "  END LOOP;\n"
        "END $$;\n"
    )


# --- PostgreSQL's client tools ----------------------------------------------------------------------


def _pg_tool(name: str, *, at_least: int) -> tuple[Path, int]:
    """The client tool `name` of the oldest PostgreSQL version not older than `at_least`.

    The closest version is the safest: pg_dump refuses an older server's than its own only in
    the other direction, and a newer pg_restore may write SQL an older server does not know.

    Raises:
        Unavailable: No such tool ("pg_tool_missing", with the newest version found, if any).
    """
    found: dict[Path, int] = {}
    for candidate in _pg_candidates(name):
        major = _tool_major(candidate)
        if major is not None:
            # Not resolved: Debian's /usr/bin/pg_dump is a wrapper that acts on the name it is called by.
            found.setdefault(candidate, major)
    fitting = sorted(
        (major, index, path) for index, (path, major) in enumerate(found.items()) if major >= at_least
    )
    if not fitting:
        newest = max(found.values(), default=None)
        raise Unavailable("pg_tool_missing", tool=name, need_major=at_least, found_major=newest)
    major, _, path = fitting[0]
    return path, major


def _pg_candidates(name: str) -> Iterator[Path]:
    on_path = shutil.which(name)
    if on_path:
        yield Path(on_path)
    for pattern in PG_BIN_GLOBS:
        for directory in sorted(glob.glob(pattern)):
            tool = Path(directory) / name
            if tool.is_file():
                yield tool


def _tool_major(tool: Path) -> int | None:
    try:
        shown = subprocess.run(
            [str(tool), "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _PG_VERSION.search(shown)
    return int(match[1]) if match else None


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq connection URI for the tools, and their environment: the password only in the latter,
    never on a command line that `ps` shows."""
    conninfo = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    password = url.password
    extra = {"PGPASSWORD": str(password)} if password else {}
    return conninfo, child_environment({**extra, "PGAPPNAME": "crmbot-backup"})


# --- a child's stderr -------------------------------------------------------------------------------


class _Drained(threading.Thread):
    """Reads a child's stderr to its end, keeping its error lines masked (they may quote data)."""

    def __init__(self, stream: IO[bytes] | None, on_line: Callable[[str], None] | None) -> None:
        super().__init__(name="backup-stderr", daemon=True)
        self._stream = stream
        self._on_line = on_line
        self.errors: list[str] = []

    def run(self) -> None:
        if self._stream is None:
            return
        for raw in self._stream:
            line = raw.decode("utf-8", errors="replace").rstrip()
            if self._on_line is not None:
                self._on_line(line)
            if re.search(r"\b(ERROR|FATAL|error|fatal):", line):
                self.errors.append(mask_text(line))

    def reason(self) -> str:
        return self.errors[-1] if self.errors else ""


def _drain(stream: IO[bytes] | None, on_line: Callable[[str], None] | None = None) -> _Drained:
    thread = _Drained(stream, on_line)
    thread.start()
    return thread

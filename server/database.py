"""The database under the state store: a SQLite file by default, or PostgreSQL shared by replicas.

    database = Database.open(folder_or_url)   # a Path: SQLite; "postgresql://...": PostgreSQL
    with database.transaction() as db:        # one write transaction, committed at the end
        db.execute(text("INSERT ..."), {...})
    with database.query() as db:              # reads
        rows = db.execute(text("SELECT ..."), {...}).all()

The stores write one SQL text for both (SQLAlchemy Core: named parameters, `ON CONFLICT`,
`RETURNING`, partial indexes); the tables are declared once with SQLAlchemy's `MetaData`, which
writes each dialect's DDL. SQLite: WAL, `synchronous=NORMAL`, write transactions begin with
`BEGIN IMMEDIATE` (so two writers never deadlock on an upgrade). PostgreSQL: psycopg 3, a small
connection pool that checks a connection before lending it (a restarted server costs one failed
call at most), READ COMMITTED.

Calls are blocking and thread-safe (one lock per process: the server's store traffic is a few
writes a second); async code calls them through `asyncio.to_thread`. Every database error is
raised as `StoreError`, naming where the store is (a PostgreSQL URL without its password).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection, Engine, MetaData, create_engine, event, make_url, text
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

SQLITE_FILE = "server.sqlite"
SCHEMA_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"taktline schema").digest()[:8], "big", signed=True
)
"""The advisory lock held while tables are made (per database, released at commit)."""
POSTGRES_SCHEMES = ("postgresql", "postgres")

Dialect = Literal["sqlite", "postgresql"]


class StoreError(RuntimeError):
    """The state store cannot be opened, read or written."""


class Database:
    """One store's connection(s); use `Database.open`."""

    def __init__(self, engine: Engine, where: str, dialect: Dialect):
        self.engine = engine
        self.where = where
        """Where the store is, for messages: the SQLite path, or the URL without password."""
        self.dialect: Dialect = dialect
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def open(cls, location: Path | str) -> Database:
        """A folder (the SQLite file `server.sqlite` in it, made when missing) or a PostgreSQL
        URL (`postgresql://user:password@host:port/database`). Raises StoreError."""
        if isinstance(location, Path):
            return _sqlite(location)
        return _postgres(location)

    def create(self, metadata: MetaData) -> None:
        """Create the tables and indexes of `metadata` that do not exist yet. On PostgreSQL one
        replica at a time (replicas starting together would both see no table and collide)."""
        with self.transaction() as db:
            if self.dialect == "postgresql":
                db.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
            metadata.create_all(db, checkfirst=True)

    def conninfo(self) -> str:
        """The libpq URL (password included) for a connection of one's own to PostgreSQL."""
        return self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)

    def close(self) -> None:
        """Close every connection; later calls raise StoreError."""
        with self._lock:
            self._closed = True
            self.engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One write transaction: committed when the block ends, rolled back when it raises."""
        with self._lock:
            self._check_open("write")
            try:
                with self.engine.begin() as db:
                    yield db
            except SQLAlchemyError as exc:
                raise StoreError(
                    f"cannot write the state store {self.where}: {_reason(exc)}"
                ) from None

    @contextmanager
    def query(self) -> Iterator[Connection]:
        """A connection for reads (in a transaction of its own, rolled back at the end)."""
        with self._lock:
            self._check_open("read")
            try:
                with self.engine.connect() as db:
                    yield db
            except SQLAlchemyError as exc:
                raise StoreError(
                    f"cannot read the state store {self.where}: {_reason(exc)}"
                ) from None

    def _check_open(self, what: str) -> None:
        if self._closed:
            raise StoreError(f"cannot {what} the state store {self.where}: it is closed")


def _sqlite(folder: Path) -> Database:
    path = folder / SQLITE_FILE
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot open the state store {path}: {exc}") from None
    engine = create_engine(
        f"sqlite:///{path}",
        poolclass=StaticPool,
        connect_args={"check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _connected(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # transactions are begun below, not by sqlite3
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    database = Database(engine, str(path), "sqlite")
    _check(database)
    return database


def _postgres(url: str) -> Database:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError("the state store URL is not a URL (postgresql://...)") from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend not in POSTGRES_SCHEMES or driver not in ("", "psycopg"):
        raise StoreError(
            f"the state store URL must start with postgresql:// (not {parsed.drivername}://)"
        )
    where = parsed.set(drivername="postgresql").render_as_string(hide_password=True)
    parsed = parsed.set(drivername="postgresql+psycopg")
    engine = create_engine(
        parsed,
        pool_size=2,
        max_overflow=2,
        pool_pre_ping=True,
        connect_args={"connect_timeout": 10, "application_name": "taktline-server"},
    )
    database = Database(engine, where, "postgresql")
    _check(database)
    return database


def _check(database: Database) -> None:
    try:
        with database.engine.connect():
            pass
    except SQLAlchemyError as exc:
        database.engine.dispose()
        raise StoreError(f"cannot open the state store {database.where}: {_reason(exc)}") from None


def _reason(exc: SQLAlchemyError) -> str:
    """The driver's message, without SQLAlchemy's statement and parameters (they may hold
    personal data) and its background link."""
    original = getattr(exc, "orig", None)
    text = str(original if original is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

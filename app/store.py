"""Persistence for users, sessions and turns behind one small repository (SQLAlchemy Core, no ORM).

One URL picks the backend: the embedded default is SQLite under the data directory (WAL mode,
`synchronous=FULL`, foreign keys on), and `MOCKML_DATABASE_URL` (e.g. `postgresql+psycopg://...`)
points several app processes at one shared PostgreSQL server. Every operation borrows its own
connection from the engine inside one transaction, so one `Store` is safe to share between threads.
`add_turn` commits before it returns: a turn the caller has seen saved survives `kill -9` and, with
`synchronous=FULL`, power loss.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    and_,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from app.bank import Track
from app.config import Settings
from app.errors import BadInput, ConfigError, MockmlError
from app.sessions import Phase, Session, SessionConfig, Speaker, Turn, TurnKind

__all__ = ["Store", "StorageError", "SessionSummary", "DB_FILE", "NAME_RULE", "clean_user_name", "redact_url"]

DB_FILE = "mockml.db"
EXPORT_FORMATS = ("json", "md")
BUSY_TIMEOUT_S = 5.0  # long enough to ride out another writer's commit, short enough to fail visibly
PG_CONNECT_TIMEOUT_S = 5
NAME_RULE = "1-40 characters: letters, digits, spaces and . _ - , starting with a letter or digit"
_NAME_RE = re.compile(r"[^\W_][\w .-]{0,39}")  # [^\W_] = a letter or digit (Unicode), \w adds _
_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
_SURROGATE = re.compile("[\ud800-\udfff]")


class StorageError(MockmlError):
    """The database failed; the message says what to check (never the URL's password)."""


class SessionSummary(BaseModel):
    """One line of a user's session history."""

    id: str
    user: str
    started_at: datetime
    finished_at: datetime | None = None
    phase: Phase
    questions_planned: int
    answers: int = Field(description="candidate answer turns")
    mean_score: float | None = Field(default=None, description="mean 0-5 score of graded answers; None if none")
    tracks: list[Track] = Field(default_factory=list)


# --------------------------------------------------------------------------------------------------
# Schema


class _UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps naive UTC text, PostgreSQL timestamptz)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        # A naive datetime is taken to be UTC already (the contracts' `now()` is UTC-aware).
        value = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
        # SQLite stores text without an offset; normalising to UTC first keeps ORDER BY correct.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("created_at", _UTCDateTime(), nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(), primary_key=True),
    Column("user", String(40), ForeignKey("users.name"), nullable=False),
    Column("config", JSON(), nullable=False),
    Column("plan", JSON(), nullable=False),
    Column("phase", String(32), nullable=False),
    Column("current", Integer, nullable=False),
    Column("follow_ups_asked", Integer, nullable=False),
    Column("started_at", _UTCDateTime(), nullable=False),
    Column("finished_at", _UTCDateTime(), nullable=True),
    Column("report_path", Text, nullable=True),
    Index("ix_sessions_user_started", "user", "started_at"),
)

turns = Table(
    "turns",
    metadata,
    Column("session_id", String(), primary_key=True),
    Column("index", Integer, primary_key=True, autoincrement=False),
    Column("speaker", String(32), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("text", Text, nullable=False),
    Column("question_id", String(), nullable=True),
    Column("follow_up_of", Integer, nullable=True),
    Column("target_point", String(), nullable=True),
    Column("scorecard", JSON(none_as_null=True), nullable=True),
    Column("at", _UTCDateTime(), nullable=False),
    ForeignKeyConstraint(["session_id"], ["sessions.id"], ondelete="CASCADE"),
)


# --------------------------------------------------------------------------------------------------
# Helpers


def clean_user_name(name: str) -> str:
    """The stripped profile name, or BadInput saying what a name may contain."""
    if not isinstance(name, str):
        raise BadInput(f"profile name must be text ({NAME_RULE})")
    stripped = name.strip()
    if not stripped:
        raise BadInput(f"profile name is empty: use {NAME_RULE}")
    if len(stripped) > 40:
        raise BadInput(f"profile name is {len(stripped)} characters long: use {NAME_RULE}")
    if not _NAME_RE.fullmatch(stripped):
        bad = sorted({c for c in stripped if not (c.isalnum() or c in " ._-")})
        detail = f"it contains {' '.join(repr(c) for c in bad)}" if bad else "it must start with a letter or digit"
        raise BadInput(f"profile name {stripped!r} is not allowed ({detail}): use {NAME_RULE}")
    return stripped


def redact_url(url: str | URL) -> str:
    """The URL with its password replaced by ***, safe to show or log."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparseable URL is shown only by its scheme
        text = str(url)
        return (text.split("://", 1)[0] + "://***") if "://" in text else "<unparseable URL>"


def safe_export_name(session_id: str, fmt: str) -> str:
    """A file name made only of [A-Za-z0-9_-] plus the extension, unique per session id."""
    stem = _UNSAFE_FILE_CHARS.sub("_", session_id).strip("_-")[:80] or "session"
    if stem != session_id:
        # Two ids that sanitise alike (a/b and a_b) still get different files.
        stem = f"{stem}-{hashlib.sha256(session_id.encode('utf-8')).hexdigest()[:10]}"
    return f"{stem}.{fmt}"


def _check_id(session_id: str) -> str:
    """Session ids are machine-made; NUL is refused because PostgreSQL text cannot hold it, lone surrogates because
    no driver can encode them."""
    if not isinstance(session_id, str) or not session_id or "\x00" in session_id or _SURROGATE.search(session_id):
        raise BadInput(f"session id {session_id!r} is not usable: ids are non-empty text without NUL characters")
    return session_id


def _no_nul(text: str | None) -> str | None:
    # PostgreSQL text cannot hold NUL; SQLite could, but both backends must store the same thing. A lone surrogate
    # (undecodable bytes from a terminal or a browser) cannot be encoded as UTF-8 by either driver.
    return _SURROGATE.sub("\ufffd", text.replace("\x00", "\ufffd")) if text else text


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _pragma_listener(dbapi_conn: Any, _record: Any) -> None:
    """Per-connection SQLite settings: WAL, fsync on every commit, foreign keys, busy wait."""
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA journal_mode=WAL")
        # FULL, not NORMAL: in WAL mode NORMAL may lose the last commits on power loss.
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    finally:
        cur.close()


# --------------------------------------------------------------------------------------------------
# The repository


class Store:
    """Users, sessions and their turns in one SQL database (SQLite by default, PostgreSQL when configured)."""

    def __init__(self, url: str | URL, *, data_dir: Path | None = None) -> None:
        """An engine for `url` (no connection is opened yet); exports go to `data_dir`/exports."""
        try:
            self._url = make_url(url)
        except ArgumentError as exc:
            raise ConfigError(
                f"MOCKML_DATABASE_URL ({redact_url(url)}) is not a database URL: use e.g. "
                "postgresql+psycopg://USER:PASSWORD@HOST:5432/mockml, or unset it for the embedded SQLite file"
            ) from exc
        self._password = self._url.password or ""
        self.url = redact_url(self._url)  # public, safe to print
        self._is_sqlite = self._url.get_backend_name() == "sqlite"
        self._sqlite_path = self._sqlite_file(self._url) if self._is_sqlite else None
        if data_dir is None and self._sqlite_path is not None:
            data_dir = self._sqlite_path.parent
        self.data_dir = data_dir
        self._engine = self._make_engine()
        self._ready = False
        self._ready_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        """The store the settings describe: `database_url`, else SQLite at data_dir/mockml.db."""
        data_dir = settings.ensure_data_dir()  # ConfigError naming MOCKML_DATA_DIR if unwritable
        if settings.database_url:
            return cls(settings.database_url, data_dir=data_dir)
        url = URL.create("sqlite", database=str(data_dir / DB_FILE))
        return cls(url, data_dir=data_dir)  # a URL object: no re-parsing of odd folder names

    # ---------------------------------------------------------------- engine and errors

    @staticmethod
    def _sqlite_file(url: URL) -> Path | None:
        db = url.database or ""
        if db in ("", ":memory:") or db.startswith("file:"):
            return None
        return Path(db).expanduser()

    def _make_engine(self) -> Engine:
        try:
            if self._is_sqlite:
                kwargs: dict[str, Any] = {
                    "connect_args": {"check_same_thread": False, "timeout": BUSY_TIMEOUT_S},
                }
                if self._sqlite_path is None:
                    # An in-memory database exists once per connection: share one.
                    kwargs["poolclass"] = StaticPool
                engine = create_engine(self._url, **kwargs)
                event.listen(engine, "connect", _pragma_listener)
                return engine
            connect_args: dict[str, Any] = {}
            if self._url.get_backend_name() == "postgresql":
                connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
            return create_engine(self._url, pool_pre_ping=True, connect_args=connect_args)
        except (ModuleNotFoundError, ImportError, NoSuchModuleError) as exc:
            hint = (
                "install the PostgreSQL driver with: pip install 'mockml[postgres]'"
                if self._url.get_backend_name() == "postgresql"
                else "install that database's SQLAlchemy driver, or unset MOCKML_DATABASE_URL for the embedded SQLite file"
            )
            raise ConfigError(f"no driver for database URL {self.url}: {hint}") from exc
        except ArgumentError as exc:
            raise ConfigError(
                f"database URL {self.url} is not usable ({self._scrub(str(exc).splitlines()[0])}): fix MOCKML_DATABASE_URL"
            ) from exc

    def _scrub(self, text: str) -> str:
        """Remove the URL's password from any text that may have quoted it."""
        if self._password:
            text = text.replace(self._password, "***")
        return text

    def _explain(self, action: str, exc: SQLAlchemyError) -> str:
        orig = getattr(exc, "orig", None)
        reason = str(orig if orig is not None else exc).strip().splitlines()
        reason_text = self._scrub(reason[0] if reason else type(exc).__name__)
        low = reason_text.lower()
        if self._is_sqlite:
            if "locked" in low or "busy" in low:
                hint = "another mockml process is writing to it; try again in a moment"
            elif "unable to open" in low or "readonly" in low or "read-only" in low:
                hint = "check that the folder is writable, or set MOCKML_DATA_DIR to one that is"
            elif "not a database" in low or "malformed" in low:
                hint = "the file is damaged: move it aside (a new one is created) or restore a backup"
            else:
                hint = "check MOCKML_DATA_DIR, or set MOCKML_DATABASE_URL to another database"
        else:
            hint = (
                "check that the database server is running and that MOCKML_DATABASE_URL has the right "
                "host, port, database name, user and password"
            )
        return f"could not {action} (database {self.url}): {reason_text} — {hint}"

    @contextmanager
    def _tx(self, action: str) -> Iterator[Connection]:
        """One connection and one transaction from the pool; database errors become StorageError."""
        self._ensure_schema()
        try:
            with self._engine.begin() as conn:
                yield conn
        except (MockmlError, IntegrityError):
            raise  # IntegrityError is turned into BadInput by the caller that expects it
        except SQLAlchemyError as exc:
            raise StorageError(self._explain(action, exc)) from exc

    def _ensure_schema(self) -> None:
        """Create the tables on first use (idempotent; tolerates another process racing to do the same)."""
        if self._ready:
            return
        with self._ready_lock:
            if self._ready:
                return
            if self._sqlite_path is not None:
                try:
                    self._sqlite_path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise ConfigError(
                        f"cannot create the folder for {self._sqlite_path} ({exc.strerror or exc}): "
                        "set MOCKML_DATA_DIR to a folder you can write to"
                    ) from exc
            last: SQLAlchemyError | None = None
            for _attempt in range(3):
                try:
                    metadata.create_all(self._engine)
                    self._ready = True
                    return
                except IntegrityError as exc:  # another process created the same table meanwhile
                    last = exc
                except SQLAlchemyError as exc:
                    if "already exists" not in str(exc).lower():
                        raise StorageError(self._explain("open the database", exc)) from exc
                    last = exc
            assert last is not None
            raise StorageError(self._explain("create the tables", last)) from last

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for health checks and tests; prefer the methods above)."""
        return self._engine

    def close(self) -> None:
        """Close every pooled connection (the store can still be used; it reconnects)."""
        self._engine.dispose()

    # ---------------------------------------------------------------- users

    def ensure_user(self, name: str) -> str:
        """Create the local profile if new; returns the cleaned name (BadInput says what is allowed)."""
        clean = clean_user_name(name)
        with self._tx("save the profile") as conn:
            self._insert_user(conn, clean)
        return clean

    def _insert_user(self, conn: Connection, name: str) -> None:
        values = {"name": name, "created_at": datetime.now(timezone.utc)}
        dialect = conn.dialect.name
        if dialect == "sqlite":
            conn.execute(sqlite_dialect.insert(users).values(values).on_conflict_do_nothing(index_elements=["name"]))
        elif dialect == "postgresql":
            conn.execute(pg_dialect.insert(users).values(values).on_conflict_do_nothing(index_elements=["name"]))
        elif conn.execute(select(users.c.name).where(users.c.name == name)).first() is None:
            conn.execute(insert(users).values(values))

    # ---------------------------------------------------------------- sessions and turns

    def save_session(self, session: Session) -> None:
        """Insert or update the session header (configuration, plan, phase...); turns are saved by add_turn."""
        _check_id(session.id)
        if clean_user_name(session.user) != session.user:
            raise BadInput(f"session user {session.user!r} has surrounding spaces: pass it through Store.ensure_user first")
        values = {
            "id": session.id,
            "user": session.user,
            "config": session.config.model_dump(mode="json"),
            "plan": list(session.plan),
            "phase": session.phase.value,
            "current": session.current,
            "follow_ups_asked": session.follow_ups_asked,
            "started_at": session.started_at,
            "finished_at": session.finished_at,
            "report_path": session.report_path,
        }
        with self._tx("save the session") as conn:
            self._insert_user(conn, session.user)
            dialect = conn.dialect.name
            changes = {k: v for k, v in values.items() if k != "id"}
            if dialect in ("sqlite", "postgresql"):
                mod = sqlite_dialect if dialect == "sqlite" else pg_dialect
                stmt = mod.insert(sessions).values(values)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["id"], set_={k: stmt.excluded[k] for k in changes}
                )
                conn.execute(stmt)
            elif conn.execute(update(sessions).where(sessions.c.id == session.id).values(changes)).rowcount == 0:
                conn.execute(insert(sessions).values(values))

    def add_turn(self, session_id: str, turn: Turn) -> None:
        """Append one turn and commit before returning (durable); a duplicate index is BadInput."""
        _check_id(session_id)
        values = {
            "session_id": session_id,
            "index": turn.index,
            "speaker": turn.speaker.value,
            "kind": turn.kind.value,
            "text": _no_nul(turn.text),
            "question_id": _no_nul(turn.question_id),
            "follow_up_of": turn.follow_up_of,
            "target_point": _no_nul(turn.target_point),
            "scorecard": turn.scorecard.model_dump(mode="json") if turn.scorecard is not None else None,
            "at": turn.at,
        }
        try:
            with self._tx("save the turn") as conn:
                if conn.execute(select(sessions.c.id).where(sessions.c.id == session_id)).first() is None:
                    raise self._unknown(session_id)
                conn.execute(insert(turns).values(values))
        except IntegrityError as exc:
            next_index = self._next_index(session_id)
            raise BadInput(
                f"session {_short(session_id)!r} already has a turn {turn.index}: turns are append-only, "
                f"the next free index is {next_index}"
            ) from exc

    def _next_index(self, session_id: str) -> int:
        with self._tx("read the turns") as conn:
            top = conn.execute(select(func.max(turns.c["index"])).where(turns.c.session_id == session_id)).scalar()
        return 0 if top is None else int(top) + 1

    @staticmethod
    def _unknown(session_id: str) -> BadInput:
        return BadInput(f"no saved session with id {_short(session_id)!r}: check the id against the session history")

    def load_session(self, session_id: str) -> Session:
        """The session header and all its turns in order; an unknown id is BadInput."""
        _check_id(session_id)
        with self._tx("load the session") as conn:
            row = conn.execute(select(sessions).where(sessions.c.id == session_id)).mappings().first()
            if row is None:
                raise self._unknown(session_id)
            turn_rows = conn.execute(
                select(turns).where(turns.c.session_id == session_id).order_by(turns.c["index"])
            ).mappings().all()
        return self._build(row, turn_rows)

    def _build(self, row: Mapping[str, Any], turn_rows: Iterable[Mapping[str, Any]]) -> Session:
        """A Session from stored rows; rows that no longer fit the contracts become a StorageError."""
        try:
            return Session(
                id=row["id"],
                user=row["user"],
                config=SessionConfig.model_validate(row["config"]),
                plan=row["plan"] or [],
                phase=Phase(row["phase"]),
                current=row["current"],
                follow_ups_asked=row["follow_ups_asked"],
                started_at=row["started_at"],
                finished_at=row["finished_at"],
                report_path=row["report_path"],
                turns=[
                    Turn(
                        index=t["index"],
                        speaker=Speaker(t["speaker"]),
                        kind=TurnKind(t["kind"]),
                        text=t["text"],
                        question_id=t["question_id"],
                        follow_up_of=t["follow_up_of"],
                        target_point=t["target_point"],
                        scorecard=t["scorecard"],
                        at=t["at"],
                    )
                    for t in turn_rows
                ],
            )
        except (ValidationError, ValueError) as exc:
            raise StorageError(
                f"stored session {_short(str(row['id']))!r} no longer matches this version of mockml ({exc.__class__.__name__}): "
                "export it with an older version or delete it"
            ) from exc

    def _user_filter(self, user: str) -> str:
        return clean_user_name(user)

    def list_sessions(self, user: str) -> list[SessionSummary]:
        """The user's sessions, newest first, with answer counts and mean scores."""
        name = self._user_filter(user)
        with self._tx("list the sessions") as conn:
            rows = conn.execute(
                select(sessions)
                .where(sessions.c.user == name)
                .order_by(sessions.c.started_at.desc(), sessions.c.id.desc())
            ).mappings().all()
            answer_rows = conn.execute(
                select(turns.c.session_id, turns.c.scorecard)
                .join(sessions, sessions.c.id == turns.c.session_id)
                .where(and_(sessions.c.user == name, turns.c.kind == TurnKind.ANSWER.value))
            ).all()
        answers: dict[str, int] = defaultdict(int)
        scores: dict[str, list[float]] = defaultdict(list)
        for session_id, card in answer_rows:
            answers[session_id] += 1
            score = _card_score(card)
            if score is not None:
                scores[session_id].append(score)
        out = []
        for row in rows:
            got = scores.get(row["id"])
            config = row["config"] or {}
            out.append(
                SessionSummary(
                    id=row["id"],
                    user=row["user"],
                    started_at=row["started_at"],
                    finished_at=row["finished_at"],
                    phase=Phase(row["phase"]),
                    questions_planned=len(row["plan"] or []),
                    answers=answers.get(row["id"], 0),
                    mean_score=round(sum(got) / len(got), 2) if got else None,
                    tracks=config.get("tracks", []),
                )
            )
        return out

    def latest_unfinished(self, user: str) -> str | None:
        """The id of the user's newest session whose phase is not done, or None."""
        name = self._user_filter(user)
        with self._tx("look up the sessions") as conn:
            return conn.execute(
                select(sessions.c.id)
                .where(and_(sessions.c.user == name, sessions.c.phase != Phase.DONE.value))
                .order_by(sessions.c.started_at.desc(), sessions.c.id.desc())
                .limit(1)
            ).scalar()

    def answered_question_ids(self, user: str, *, exclude_session: str | None = None) -> set[str]:
        """Bank question ids of graded answers in ALL the user's sessions (minus `exclude_session` if given)."""
        name = self._user_filter(user)
        cond = and_(
            sessions.c.user == name,
            turns.c.kind == TurnKind.ANSWER.value,
            turns.c.scorecard.is_not(None),
        )
        if exclude_session is not None:
            _check_id(exclude_session)
            cond = and_(cond, sessions.c.id != exclude_session)
        with self._tx("look up answered questions") as conn:
            rows = conn.execute(
                select(turns.c.question_id, turns.c.scorecard).join(sessions, sessions.c.id == turns.c.session_id).where(cond)
            ).all()
        ids: set[str] = set()
        for question_id, card in rows:
            qid = question_id or (card.get("question_id") if isinstance(card, dict) else None)
            if qid:
                ids.add(qid)
        return ids

    def history(self, user: str) -> list[Session]:
        """The user's finished (phase done) sessions with their turns, oldest first."""
        name = self._user_filter(user)
        with self._tx("load the session history") as conn:
            rows = conn.execute(
                select(sessions)
                .where(and_(sessions.c.user == name, sessions.c.phase == Phase.DONE.value))
                .order_by(sessions.c.started_at, sessions.c.id)
            ).mappings().all()
            by_session: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
            if rows:
                turn_rows = conn.execute(
                    select(turns)
                    .join(sessions, sessions.c.id == turns.c.session_id)
                    .where(and_(sessions.c.user == name, sessions.c.phase == Phase.DONE.value))
                    .order_by(turns.c.session_id, turns.c["index"])
                ).mappings().all()
                for t in turn_rows:
                    by_session[t["session_id"]].append(t)
        return [self._build(row, by_session.get(row["id"], [])) for row in rows]

    # ---------------------------------------------------------------- export

    def export(self, session_id: str, fmt: str) -> Path:
        """Write the session as "json" or "md" into data_dir/exports and return the file's path."""
        fmt = (fmt or "").strip().lower().lstrip(".")
        if fmt == "markdown":
            fmt = "md"
        if fmt not in EXPORT_FORMATS:
            raise BadInput(f"export format {fmt!r} is not supported: use one of {', '.join(EXPORT_FORMATS)}")
        if self.data_dir is None:
            raise ConfigError("no data directory for exports: create the store with Store.from_settings or pass data_dir=")
        session = self.load_session(session_id)
        body = session.model_dump_json(indent=2) + "\n" if fmt == "json" else render_markdown(session)
        folder = self.data_dir / "exports"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create {folder} ({exc.strerror or exc}): set MOCKML_DATA_DIR to a folder you can write to"
            ) from exc
        target = folder / safe_export_name(session_id, fmt)
        # Belt and braces: the name has no separators or dots, but check where it resolves anyway.
        if target.resolve().parent != folder.resolve():
            raise BadInput(f"session id {_short(session_id)!r} cannot be used as an export file name")
        _atomic_write(target, body)
        return target


# --------------------------------------------------------------------------------------------------
# Export rendering


def _card_score(card: Any) -> float | None:
    if isinstance(card, str):  # some drivers hand JSON back as text
        try:
            card = json.loads(card)
        except ValueError:
            return None
    if isinstance(card, dict) and isinstance(card.get("score"), (int, float)):
        return float(card["score"])
    return None


def _when(value: datetime | None) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def _quote_block(text: str) -> str:
    return "\n".join("> " + line if line.strip() else ">" for line in text.strip().splitlines()) or ">"


def render_markdown(session: Session) -> str:
    """A readable transcript: each question, the answer, and its score and verdicts."""
    graded = [t.scorecard.score for t in session.turns if t.kind is TurnKind.ANSWER and t.scorecard is not None]
    tracks = ", ".join(t.value for t in session.config.tracks) or "all tracks"
    lines = [
        f"# mockml interview — {session.user}",
        "",
        f"- Session: `{session.id}`",
        f"- Started: {_when(session.started_at)} · Finished: {_when(session.finished_at)} · Phase: {session.phase.value}",
        f"- Tracks: {tracks} · Level: {session.config.level.value} · Mode: {session.config.mode.value} "
        f"· Engine: {session.config.engine}",
        f"- Questions planned: {len(session.plan)} · Answers graded: {len(graded)}"
        + (f" · Mean score: {sum(graded) / len(graded):.1f} / 5" if graded else ""),
        "",
        "## Transcript",
        "",
    ]
    question_no = 0
    for turn in session.turns:
        if turn.kind is TurnKind.QUESTION:
            question_no += 1
            qid = f" (`{turn.question_id}`)" if turn.question_id else ""
            lines += [f"### Question {question_no}{qid}", "", turn.text.strip(), ""]
        elif turn.kind is TurnKind.FOLLOW_UP:
            aim = f" — probing *{turn.target_point}*" if turn.target_point else ""
            lines += [f"#### Follow-up{aim}", "", turn.text.strip(), ""]
        elif turn.kind is TurnKind.ANSWER:
            lines += ["**Answer:**", "", _quote_block(turn.text), ""]
            if turn.scorecard is not None:
                lines += _scorecard_lines(turn.scorecard)
        else:
            who = "Interviewer" if turn.speaker is Speaker.INTERVIEWER else "Candidate"
            label = turn.kind.value.replace("_", " ")
            lines += [f"*{who} ({label}):* {turn.text.strip()}", ""]
    return "\n".join(lines).rstrip() + "\n"


def _scorecard_lines(card: Any) -> list[str]:
    lines = [f"**Score: {card.score:.1f} / 5** · graded by {card.engine}", ""]
    for v in card.verdicts:
        evidence = f' — "{_short(v.evidence, 160)}"' if v.evidence else ""
        lines.append(f"- {v.verdict.value}: {v.point}{evidence}")
    if card.verdicts:
        lines.append("")
    if card.improvement:
        lines += [f"*To improve:* {card.improvement}", ""]
    return lines


def _atomic_write(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a reader never sees half an export."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".export-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

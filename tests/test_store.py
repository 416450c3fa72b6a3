"""The store as the interview relies on it: every committed turn survives, sessions load back whole."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from app.config import REPO_ROOT, Settings
from app.errors import BadInput, ConfigError, MockmlError
from app.grading.models import CriterionVerdict, Scorecard, Verdict
from app.sessions import Phase, Session, SessionConfig, Speaker, Turn, TurnKind
from app.store import DB_FILE, NAME_RULE, SessionSummary, Store, safe_export_name

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


def card(score: float, qid: str | None = "bias-variance-tradeoff") -> Scorecard:
    return Scorecard(
        question_id=qid,
        question="Explain the bias-variance trade-off.",
        score=score,
        verdicts=[
            CriterionVerdict(point_id="bias", point="Bias is underfitting error", weight=2.0, verdict=Verdict.COVERED,
                             credit=1.0, evidence="too simple", confidence=0.9),
            CriterionVerdict(point_id="variance", point="Variance is sensitivity to the training set", weight=1.0,
                             verdict=Verdict.MISSING, credit=0.0),
        ],
        strengths=["Bias is underfitting error"],
        gaps=["Variance is sensitivity to the training set"],
        improvement="Say what variance is and how regularisation reduces it.",
        engine="offline",
        latency_ms=12.5,
        answer_chars=42,
    )


def make_session(sid: str = "s1", user: str = "alice", started: datetime = T0, **kw: object) -> Session:
    return Session(id=sid, user=user, config=SessionConfig(tracks=["ml-fundamentals", "deep-learning"], questions=3),
                   plan=["bias-variance-tradeoff", "dropout", "batch-norm"], started_at=started, **kw)


def qa_turns(qid: str = "bias-variance-tradeoff", score: float | None = 3.0, start: int = 0) -> list[Turn]:
    return [
        Turn(index=start, speaker=Speaker.INTERVIEWER, kind=TurnKind.QUESTION, text="Explain the trade-off.", question_id=qid),
        Turn(index=start + 1, speaker=Speaker.CANDIDATE, kind=TurnKind.ANSWER, text="A model that is too simple underfits.",
             question_id=qid, scorecard=card(score, qid) if score is not None else None),
    ]


HAVE_PSYCOPG = importlib.util.find_spec("psycopg") is not None
# Opt-in: point this at a throwaway PostgreSQL database to run the repository tests there too
# (its tables are dropped before each test), e.g. postgresql+psycopg://mockml@127.0.0.1:5432/mockml_test
PG_TEST_URL = os.environ.get("MOCKML_TEST_POSTGRES_URL", "")


@pytest.fixture(autouse=True)
def _no_developer_database(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings built in these tests must not pick up a developer's MOCKML_DATABASE_URL."""
    monkeypatch.delenv("MOCKML_DATABASE_URL", raising=False)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tiny_settings: Settings) -> Store:
    """The repository on the embedded SQLite file, and on PostgreSQL when MOCKML_TEST_POSTGRES_URL is set."""
    if request.param == "sqlite":
        return Store.from_settings(tiny_settings)
    if not PG_TEST_URL or not HAVE_PSYCOPG:
        pytest.skip("set MOCKML_TEST_POSTGRES_URL (and pip install 'mockml[postgres]') to test on PostgreSQL")
    from app.store import metadata

    pg = Store(PG_TEST_URL, data_dir=tiny_settings.ensure_data_dir())
    metadata.drop_all(pg.engine)
    return pg


def save_with_turns(store: Store, session: Session, turns: list[Turn]) -> None:
    store.save_session(session)
    for t in turns:
        store.add_turn(session.id, t)


# ------------------------------------------------------------------------------------------ basics


def test_round_trip_with_scorecard(store: Store, tiny_settings: Settings) -> None:
    session = make_session(current=1, follow_ups_asked=1, phase=Phase.FOLLOW_UP)
    turns = [
        Turn(index=0, speaker=Speaker.INTERVIEWER, kind=TurnKind.GREETING, text="Hi! Ready?"),
        *qa_turns(score=3.3, start=1),
        Turn(index=3, speaker=Speaker.INTERVIEWER, kind=TurnKind.FOLLOW_UP, text="And variance?",
             question_id="bias-variance-tradeoff", follow_up_of=1, target_point="variance"),
    ]
    save_with_turns(store, session, turns)

    loaded = store.load_session("s1")
    assert loaded == session.model_copy(update={"turns": turns})
    assert loaded.turns[2].scorecard is not None and loaded.turns[2].scorecard.verdicts[0].evidence == "too simple"
    assert loaded.started_at.tzinfo is not None
    if store.engine.dialect.name == "sqlite":
        assert (tiny_settings.data_dir / DB_FILE).is_file()


def test_save_session_upserts_header_and_keeps_turns(store: Store) -> None:
    session = make_session()
    save_with_turns(store, session, qa_turns())
    done = session.model_copy(update={"phase": Phase.DONE, "finished_at": T0 + timedelta(minutes=30),
                                      "report_path": "/tmp/r.html", "current": 3})
    store.save_session(done)
    loaded = store.load_session("s1")
    assert (loaded.phase, loaded.current, loaded.report_path) == (Phase.DONE, 3, "/tmp/r.html")
    assert loaded.finished_at == T0 + timedelta(minutes=30)
    assert len(loaded.turns) == 2


def test_naive_datetimes_are_taken_as_utc(store: Store) -> None:
    store.save_session(make_session(started=datetime(2026, 1, 2, 3, 4, 5)))
    assert store.load_session("s1").started_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def test_duplicate_turn_index_is_bad_input(store: Store) -> None:
    save_with_turns(store, make_session(), qa_turns())
    with pytest.raises(BadInput, match=r"already has a turn 1.*next free index is 2"):
        store.add_turn("s1", Turn(index=1, speaker=Speaker.CANDIDATE, kind=TurnKind.ANSWER, text="again"))
    assert [t.text for t in store.load_session("s1").turns][1] == "A model that is too simple underfits."


def test_unknown_session_is_bad_input(store: Store) -> None:
    with pytest.raises(BadInput, match="no saved session with id 'nope'"):
        store.load_session("nope")
    with pytest.raises(BadInput, match="no saved session"):
        store.add_turn("nope", qa_turns()[0])
    with pytest.raises(BadInput, match="no saved session"):
        store.export("nope", "md")


@pytest.mark.parametrize("good, expected", [
    ("  Alice Smith ", "Alice Smith"), ("j.doe_2-x", "j.doe_2-x"), ("Zoë", "Zoë"), ("a" * 40, "a" * 40), ("7", "7"),
])
def test_profile_names_accepted(store: Store, good: str, expected: str) -> None:
    assert store.ensure_user(good) == expected
    assert store.ensure_user(good) == expected  # idempotent


@pytest.mark.parametrize("bad, why", [
    ("", "empty"), ("   ", "empty"), ("a" * 41, "41 characters"), ("bob!", "contains '!'"),
    ("../etc", "contains '/'"), ("_hidden", "start with a letter or digit"), ("..", "start with a letter or digit"),
    ("a;b", "contains ';'"),
])
def test_profile_names_rejected_with_the_rule(store: Store, bad: str, why: str) -> None:
    with pytest.raises(BadInput) as info:
        store.ensure_user(bad)
    assert why in str(info.value)
    assert NAME_RULE in str(info.value)


def test_session_user_must_be_a_clean_name(store: Store) -> None:
    with pytest.raises(BadInput, match="not allowed"):
        store.save_session(make_session(user="bob/../x"))


# ------------------------------------------------------------------------------------------ SQLite setup


def test_sqlite_wal_full_sync_and_foreign_keys(tiny_settings: Settings) -> None:
    store = Store.from_settings(tiny_settings)
    store.ensure_user("alice")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() > 0
    raw = sqlite3.connect(tiny_settings.data_dir / DB_FILE)  # WAL is a property of the file, seen by any reader
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()


def test_from_settings_unwritable_data_dir_is_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")  # a file in the way defeats mkdir even for root
    with pytest.raises(ConfigError, match="MOCKML_DATA_DIR"):
        Store.from_settings(Settings(data_dir=blocker / "data"))


def test_from_settings_uses_database_url(tmp_path: Path) -> None:
    db = tmp_path / "elsewhere" / "other.db"
    store = Store.from_settings(Settings(data_dir=tmp_path / "d", database_url=f"sqlite:///{db}"))
    store.ensure_user("alice")
    assert db.is_file() and store.data_dir == tmp_path / "d"


def test_in_memory_sqlite_works(tmp_path: Path) -> None:
    store = Store("sqlite://", data_dir=tmp_path)
    save_with_turns(store, make_session(), qa_turns())
    assert len(store.load_session("s1").turns) == 2


def test_threads_share_one_store(store: Store) -> None:
    store.save_session(make_session())
    errors: list[BaseException] = []

    def writer(base: int) -> None:
        try:
            for i in range(10):
                store.add_turn("s1", Turn(index=base + i, speaker=Speaker.CANDIDATE, kind=TurnKind.ANSWER, text=f"t{base + i}"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k * 10,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert [t.index for t in store.load_session("s1").turns] == list(range(60))


# ------------------------------------------------------------------------------------------ durability

CHILD = r"""
import sys
from app.sessions import Session, SessionConfig, Speaker, Turn, TurnKind
from app.store import Store
from app.grading.models import CriterionVerdict, Scorecard, Verdict

store = Store(sys.argv[1])
store.save_session(Session(id="kill-me", user="alice", config=SessionConfig(), plan=["q1"]))
print("ready", flush=True)
for i in range(int(sys.argv[2])):
    card = Scorecard(question="q", score=2.5, engine="offline", verdicts=[
        CriterionVerdict(point_id="p", point="point", weight=1.0, verdict=Verdict.PARTIAL, credit=0.5, evidence="x" * 50)])
    store.add_turn("kill-me", Turn(index=i, speaker=Speaker.CANDIDATE, kind=TurnKind.ANSWER, text=f"answer {i} " * 20,
                                   question_id="q1", scorecard=card))
    print(f"committed {i}", flush=True)
"""


def test_committed_turns_survive_sigkill_and_the_session_resumes(tmp_path: Path) -> None:
    db = tmp_path / "data" / DB_FILE
    url = f"sqlite:///{db}"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    total, kill_after = 5000, 25
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    child = subprocess.Popen([sys.executable, str(script), url, str(total)], stdout=subprocess.PIPE, text=True,
                             env=env, cwd=tmp_path)
    assert child.stdout is not None
    seen: list[int] = []
    try:
        deadline = time.monotonic() + 30
        for line in child.stdout:
            if line.startswith("committed "):
                seen.append(int(line.split()[1]))
                if len(seen) == kill_after:
                    child.send_signal(signal.SIGKILL)  # mid-way: it is already writing the next turn
                    break
            assert time.monotonic() < deadline, "child too slow"
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=10)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert seen == list(range(kill_after))

    # A fresh process's view: every turn the child reported committed is there, in order, nothing torn.
    store = Store(url)
    loaded = store.load_session("kill-me")
    indexes = [t.index for t in loaded.turns]
    assert kill_after <= len(indexes) < total
    assert indexes == list(range(len(indexes)))
    assert all(t.text == f"answer {t.index} " * 20 and t.scorecard is not None for t in loaded.turns)

    # Resume: the next index is free and the session goes on.
    nxt = len(indexes)
    store.add_turn("kill-me", Turn(index=nxt, speaker=Speaker.INTERVIEWER, kind=TurnKind.TRANSITION, text="Where were we?"))
    assert store.load_session("kill-me").turns[-1].index == nxt
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# ------------------------------------------------------------------------------------------ queries


def test_list_sessions_newest_first_with_mean_score(store: Store) -> None:
    save_with_turns(store, make_session("old", started=T0), qa_turns(score=2.0) + qa_turns(qid="dropout", score=4.0, start=2))
    save_with_turns(store, make_session("new", started=T0 + timedelta(days=2)), qa_turns(score=None))
    save_with_turns(store, make_session("mid", started=T0 + timedelta(days=1)), [])
    save_with_turns(store, make_session("other", user="bob", started=T0 + timedelta(days=5)), qa_turns())

    got = store.list_sessions("alice")
    assert [s.id for s in got] == ["new", "mid", "old"]
    by_id = {s.id: s for s in got}
    assert by_id["old"].mean_score == 3.0 and by_id["old"].answers == 2
    assert by_id["new"].mean_score is None and by_id["new"].answers == 1  # answered, not graded
    assert by_id["mid"].mean_score is None and by_id["mid"].answers == 0
    assert by_id["old"].questions_planned == 3
    assert [t.value for t in by_id["old"].tracks] == ["ml-fundamentals", "deep-learning"]
    assert isinstance(got[0], SessionSummary) and got[0].phase is Phase.GREETING
    assert store.list_sessions("nobody") == []


def test_latest_unfinished_and_history(store: Store) -> None:
    a = make_session("a", started=T0, phase=Phase.DONE, finished_at=T0 + timedelta(hours=1))
    b = make_session("b", started=T0 + timedelta(days=1), phase=Phase.ASK)
    c = make_session("c", started=T0 + timedelta(days=2), phase=Phase.DONE, finished_at=T0 + timedelta(days=2, hours=1))
    d = make_session("d", started=T0 + timedelta(days=3), phase=Phase.ANSWER)
    for s in (c, a, d, b):
        store.save_session(s)
    for t in qa_turns():
        store.add_turn("a", t)
    assert store.latest_unfinished("alice") == "d"
    store.save_session(d.model_copy(update={"phase": Phase.DONE}))
    assert store.latest_unfinished("alice") == "b"
    assert store.latest_unfinished("bob") is None

    hist = store.history("alice")
    assert [s.id for s in hist] == ["a", "c", "d"]  # finished only, oldest first
    assert len(hist[0].turns) == 2 and hist[0].turns[1].scorecard is not None


def test_answered_question_ids_covers_all_sessions_unless_one_is_excluded(store: Store) -> None:
    save_with_turns(store, make_session("s1", started=T0), qa_turns("bias-variance-tradeoff") + qa_turns("dropout", None, 2))
    save_with_turns(store, make_session("s2", started=T0 + timedelta(days=1)), qa_turns("batch-norm"))
    save_with_turns(store, make_session("b1", user="bob"), qa_turns("attention"))
    # Design: ALL of the user's sessions, including the one in progress; ungraded answers do not count.
    assert store.answered_question_ids("alice") == {"bias-variance-tradeoff", "batch-norm"}
    assert store.answered_question_ids("alice", exclude_session="s2") == {"bias-variance-tradeoff"}
    assert store.answered_question_ids("bob") == {"attention"}


# ------------------------------------------------------------------------------------------ export


def test_export_json_and_markdown(store: Store, tiny_settings: Settings) -> None:
    save_with_turns(store, make_session(), qa_turns(score=3.3))
    path = store.export("s1", "json")
    assert path == tiny_settings.data_dir / "exports" / "s1.json"
    assert Session.model_validate(json.loads(path.read_text())) == store.load_session("s1")

    md = store.export("s1", "md").read_text()
    assert "### Question 1" in md and "Explain the trade-off." in md
    assert "A model that is too simple underfits." in md
    assert "Score: 3.3 / 5" in md and "covered: Bias is underfitting error" in md and "missing: Variance" in md
    assert "To improve:" in md

    with pytest.raises(BadInput, match="json, md"):
        store.export("s1", "pdf")


@pytest.mark.parametrize("sid", ["../../etc/passwd", "/etc/passwd", "..", ".hidden", "a\\..\\b", "x/" * 200, "tab\tand space"])
def test_export_names_never_escape_the_folder(store: Store, tiny_settings: Settings, sid: str) -> None:
    store.save_session(make_session(sid))
    path = store.export(sid, "md")
    exports = (tiny_settings.data_dir / "exports").resolve()
    assert path.resolve().parent == exports
    assert "/" not in path.name and ".." not in path.name and not path.name.startswith(".")
    assert sorted(p.name for p in exports.iterdir()) == [path.name]


def test_nul_in_ids_is_refused_and_in_text_replaced(store: Store) -> None:
    with pytest.raises(BadInput, match="without NUL"):
        store.save_session(make_session("bad\x00id"))
    with pytest.raises(BadInput, match="without NUL"):
        store.load_session("bad\x00id")
    store.save_session(make_session())
    store.add_turn("s1", Turn(index=0, speaker=Speaker.CANDIDATE, kind=TurnKind.ANSWER, text="a\x00b"))
    assert store.load_session("s1").turns[0].text == "a\ufffdb"


def test_export_names_distinguish_ids_that_sanitise_alike() -> None:
    assert safe_export_name("a/b", "md") != safe_export_name("a_b", "md")
    assert safe_export_name("abc-123", "json") == "abc-123.json"


# ------------------------------------------------------------------------------------------ PostgreSQL URL


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bad_postgres_url_message_redacts_the_password() -> None:
    url = f"postgresql+psycopg://mockml:hunter2-secret@127.0.0.1:{_closed_port()}/mockml"
    with pytest.raises(MockmlError) as info:
        Store(url).list_sessions("alice")  # no driver -> at construction; driver -> at first use
    message = str(info.value)
    assert "hunter2-secret" not in message
    assert "mockml:***@127.0.0.1" in message
    assert ("mockml[postgres]" in message) if not HAVE_PSYCOPG else ("MOCKML_DATABASE_URL" in message)


@pytest.mark.skipif(not HAVE_PSYCOPG, reason="psycopg not installed (pip install 'mockml[postgres]')")
def test_postgres_connection_refused_is_a_clear_storage_error() -> None:
    from app.store import StorageError

    store = Store(f"postgresql+psycopg://mockml:hunter2-secret@127.0.0.1:{_closed_port()}/mockml")  # no connection yet
    started = time.monotonic()
    with pytest.raises(StorageError) as info:
        store.ensure_user("alice")
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert "hunter2-secret" not in message
    assert "server is running" in message and "***" in message


def test_unparseable_url_is_config_error() -> None:
    with pytest.raises(ConfigError, match="not a database URL"):
        Store("not a url at all")

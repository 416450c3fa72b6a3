"""Hostile and malformed input: every entry point answers arbitrary text with a result or a clean MockmlError.

Property-based (hypothesis) over grading, hybrid search, an interview turn, the bank loader and `mockml grade`,
with arbitrary Unicode (lone surrogates included), control characters, NUL, RTL overrides, emoji ZWJ sequences,
bytes decoded with surrogateescape, and huge strings. The embedding model is slow, so one grader, retriever and
store are shared by the whole module.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from app.bank import check, load_bank
from app.config import Settings, get_settings
from app.errors import BadInput, MockmlError
from app.grading import Grader, Scorecard
from app.interview import Interviewer
from app.runtime import get_bank, get_retriever
from app.bank import Level
from app.sessions import SessionConfig
from app.store import Store

from .conftest import FIXTURES

pytestmark = pytest.mark.slow  # the grader and the retriever use the real MiniLM model

QID = "bias-variance-tradeoff"
RLO, ZWJ_FAMILY, FLAG = "\u202e", "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466", "\U0001f3f3\ufe0f\u200d\U0001f308"
SPECIAL = [
    "\x00", "\x00" * 50, RLO + "evil.exe" + "\u202c", ZWJ_FAMILY * 20, FLAG, "\ud800", "\udfff\ud800", "\ufeff", "\u200b" * 30,
    "<script>document.title='pwned'</script>", "' OR 1=1; DROP TABLE sessions; --", "../../../../etc/passwd", "%s%n%x{0}",
    "\r\n\r\n", "\x1b[31mred\x1b[0m", "\t" * 10, "é" * 3, "Z̷̡̢͍a̶͕l̸̰g̷o̵", "{{ 7*7 }}{% raw %}", "/end", "/skip", "/hint",
]
HUGE = ["a" * 100_000, "bias variance " * 8_000, ZWJ_FAMILY * 12_000, "\x00" * 100_000]

# Arbitrary text in every flavour a hostile or broken client produces.
junk = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=400),  # every code point, lone surrogates included
    st.binary(max_size=400).map(lambda b: b.decode("utf-8", "surrogateescape")),
    st.lists(st.sampled_from(SPECIAL) | st.text(max_size=20), max_size=12).map("".join),
)


def shared_settings(root: Path) -> Settings:
    return Settings(data_dir=root / "data", knowledge_dir=FIXTURES / "bank", collection=f"hostile{os.getpid()}")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One grader, retriever, store and interviewer for the module (MiniLM loads once)."""
    s = shared_settings(tmp_path_factory.mktemp("hostile"))
    bank = get_bank(s)
    grader = Grader(s, bank)
    store = Store.from_settings(s)
    yield {"settings": s, "grader": grader, "retriever": get_retriever(s), "store": store,
           "interviewer": Interviewer(bank, grader, store)}
    store.close()


H = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _clean_or_result(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call fn; a MockmlError with a one-line, printable message is fine, anything else fails the test."""
    try:
        return fn(*args, **kwargs)
    except MockmlError as exc:
        message = str(exc)
        assert message and "\n" not in message, repr(message)
        message.encode("utf-8")  # printable on any UTF-8 terminal: no lone surrogates leak into the message
        return exc


@H
@given(question=junk, answer=junk, reference=st.none() | junk)
@example(question=QID, answer=HUGE[0], reference=None).via("huge answer")
@example(question=HUGE[1], answer="bias", reference=None).via("huge question")
@example(question=QID, answer=HUGE[2][:19_000], reference=None).via("emoji just under the limit")
@example(question="\x00", answer="\x00", reference="\x00").via("NUL")
@example(question=QID, answer="\ud800" * 100 + "bias underfits", reference=None).via("lone surrogates")
@example(question=QID, answer="bias", reference="Bias \udcff means underfitting.").via("surrogate in the reference")
@example(question="What is bias?", answer="bias", reference=HUGE[0]).via("huge reference")
def test_grade_any_text(env: dict[str, Any], question: str, answer: str, reference: str | None) -> None:
    result = _clean_or_result(env["grader"].grade, question, answer, reference)
    if isinstance(result, Scorecard):
        assert 0 <= result.score <= 5
        result.model_dump_json().encode("utf-8")  # storable and printable
    else:
        assert isinstance(result, BadInput), repr(result)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(answer=junk)
@example(answer=RLO + "bias underfits " + ZWJ_FAMILY).via("rtl and zwj")
def test_grade_evidence_is_always_the_answers_own_text(env: dict[str, Any], answer: str) -> None:
    result = _clean_or_result(env["grader"].grade, QID, "Bias means the model underfits. " + answer)
    assert isinstance(result, Scorecard), result
    cleaned = result.model_dump()["verdicts"]
    for v in cleaned:
        assert v["evidence"] is None or v["evidence"] in "".join(
            ch if ch.isprintable() or ch in "\n\t" else " " for ch in "Bias means the model underfits. " + answer)


@H
@given(query=junk, track=st.none() | st.sampled_from(["ml-fundamentals", "evaluation-statistics", ""]) | junk,
       kind=st.none() | st.just("theory") | junk, level=st.none() | st.just("junior") | junk,
       k=st.integers(-5, 200), mode=st.sampled_from(["hybrid", "dense", "bm25"]))
@example(query=HUGE[0], track=None, kind=None, level=None, k=5, mode="hybrid").via("huge query")
@example(query="bias\x00variance", track="\x00", kind=None, level=None, k=5, mode="hybrid").via("NUL filter")
@example(query="\ud800 bias", track="\ud800", kind="\ud800", level="\udfff", k=5, mode="dense").via("surrogate filters")
def test_search_any_query_and_filters(env: dict[str, Any], query: str, track: str | None, kind: str | None,
                                      level: str | None, k: int, mode: str) -> None:
    result = _clean_or_result(env["retriever"].search, query, k, mode=mode, track=track, kind=kind, level=level)
    if isinstance(result, MockmlError):
        assert isinstance(result, BadInput), repr(result)
        return
    assert len(result) <= k
    for hit in result:
        assert (track in (None, "") or hit.question.track.value == track) and (level in (None, "") or hit.question.level.value == level)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=junk)
@example(text="<script>document.title='pwned'</script>").via("script")
@example(text=HUGE[0]).via("huge")
@example(text="\x00\x00").via("NUL only")
def test_interview_turn_any_text(env: dict[str, Any], text: str) -> None:
    interviewer, store = env["interviewer"], env["store"]
    reply = interviewer.start("hostile", SessionConfig(level=Level.JUNIOR, questions=1))
    before = store.load_session(reply.session_id)
    result = _clean_or_result(interviewer.respond, reply.session_id, text)
    after = store.load_session(reply.session_id)
    if isinstance(result, MockmlError):
        assert isinstance(result, BadInput), repr(result)
        assert len(after.turns) == len(before.turns)  # a refused answer changes nothing
        return
    assert result.turns
    said = [t for t in after.turns[len(before.turns):] if t.speaker.value == "candidate"]
    assert len(said) <= 1
    for turn in said:
        assert "\x00" not in turn.text  # stored the same on SQLite and PostgreSQL
        turn.text.encode("utf-8")


YAML_SNIPPETS = [
    "track: ml-fundamentals\nquestions:\n", "  - id: x\n", "    text: ", "    rubric:\n", "      - id: a\n", "closing: 5\n",
    "questions: 7\n", "questions: {a: 1}\n", "closing:\n  - 3\n", "? [a, b]\n: c\n", "&a [*a]\n", "a: &x [1]\nb: *x\n",
    "[" * 50, "]" * 50, "- " * 40 + "x\n", "\t", "%YAML 1.1\n---\n", "!!python/object:os.system ls\n", "id: 2020-01-01\n",
    "__line__: 3\n", "track: \x00\n", "\ufeff", "questions:\n  - !!binary aGVsbG8=\n", "closing: {text: 1}\n",
]
yaml_text = st.one_of(
    st.lists(st.sampled_from(YAML_SNIPPETS) | st.text(max_size=30), max_size=12).map("".join),
    st.text(st.characters(exclude_categories=()), max_size=300),
)


def _load_dir(folder: Path) -> None:
    """Load a bank folder: it must load, or raise BadInput naming file:line."""
    try:
        load_bank(folder)
    except BadInput as exc:
        assert "bank.yaml:" in str(exc), str(exc)
    _bank, problems = check(folder)
    for p in problems:
        assert p.file.name == "bank.yaml" and p.line >= 1 and str(p)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=yaml_text | st.binary(max_size=300))
@example(body="&a [*a]\n").via("recursive alias")
@example(body="questions: &q [*q]\n").via("recursive alias under questions")
@example(body="questions: 7\n").via("questions not a list")
@example(body="questions:\n  - &q {id: x, text: y, self: *q}\n").via("recursive mapping in a question")
@example(body="x: &a [1,1,1,1,1,1,1,1,1,1]\ny: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nz: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
              "w: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\nv: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nquestions:\n  - {id: q, text: *e}\n"
         ).via("laughs inside a question")
@example(body="closing: 5\n").via("closing not a list")
@example(body="[" * 5000).via("deep flow nesting")
@example(body="- " * 3000 + "x\n").via("deep block nesting")
@example(body="a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
              "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
              "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n").via("billion laughs")
@example(body=b"\xff\xfe\x00t\x00r").via("not UTF-8")
def test_bank_loader_any_yaml(tmp_path: Path, body: str | bytes) -> None:
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    path = folder / "bank.yaml"
    if isinstance(body, bytes):
        path.write_bytes(body)
    else:
        path.write_bytes(body.encode("utf-8", "surrogateescape"))
    _load_dir(folder)


def _cli_grade(args: list[str]) -> tuple[int, str, str]:
    """`mockml grade ARGS` in this process (the real entry point), returning (exit code, stdout, stderr)."""
    from app import cli

    out, err = io.StringIO(), io.StringIO()
    old = sys.argv
    sys.argv = ["mockml", "grade", *args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as info:
            cli.main()
    finally:
        sys.argv = old
    return int(info.value.code or 0), out.getvalue(), err.getvalue()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(question=junk, answer=junk)
@example(question=QID, answer="x" * 100_000).via("huge")
@example(question="\ud800\udfff", answer="\x00").via("surrogates and NUL")
@example(question=QID, answer="[bold red]markup[/] <script>alert(1)</script>").via("markup")
def test_cli_grade_any_text(env: dict[str, Any], question: str, answer: str) -> None:
    s: Settings = env["settings"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MOCKML_DATA_DIR", str(s.data_dir))
        mp.setenv("MOCKML_KNOWLEDGE_DIR", str(s.knowledge_dir))
        mp.setenv("MOCKML_COLLECTION", s.collection)
        get_settings.cache_clear()
        code, out, err = _cli_grade([f"--question={question}", f"--answer={answer}"])
        get_settings.cache_clear()
    assert code in (0, 2), (code, out, err)
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), err
    else:
        assert "Score" in out and "Traceback" not in out + err


def test_cli_grade_with_undecodable_argv_and_stdin_bytes(env: dict[str, Any]) -> None:
    """Real argv and stdin bytes that are not UTF-8, under a strict-decoding locale: a clean exit, no traceback."""
    s: Settings = env["settings"]
    environ = {**os.environ, "MOCKML_DATA_DIR": str(s.data_dir), "MOCKML_KNOWLEDGE_DIR": str(s.knowledge_dir),
               "MOCKML_COLLECTION": s.collection, "PYTHONIOENCODING": "utf-8:strict"}
    proc = subprocess.run([sys.executable, "-m", "app.cli", "grade", b"--question=" + QID.encode(), "--answer-file", "-",
                           b"--reference=Bias \xff\xfe means underfitting \xed\xa0\x80 \x1b[2J."],
                          input=b"Bias \xff underfits \xc3\x28 badly.\n", capture_output=True, env=environ, timeout=300)
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode in (0, 2), err
    assert "Traceback" not in err
    if proc.returncode == 2:
        assert err.strip().count("\n") == 0 and err.startswith("error:"), err
    else:
        assert b"Score" in proc.stdout


# ---- file names built from user input stay inside the data directory ----------------------------------------

EVIL_IDS = ["../../evil", "..", ".", "/etc/passwd", "a/../../b", "..\\..\\win", "~root/x", "C:\\x", "\u202e../gpj.exe",
            "a" * 500, " ", "-rf", "sess\nion", "%2e%2e%2fx", "\ud800/..", "réponse", ZWJ_FAMILY]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(session_id=st.sampled_from(EVIL_IDS) | junk.filter(lambda s: bool(s) and "\x00" not in s))
def test_export_and_report_names_cannot_escape(env: dict[str, Any], session_id: str) -> None:
    from app.report import build_report, write_report
    from app.sessions import Session

    store: Store = env["store"]
    s: Settings = env["settings"]
    exports, reports = (s.data_dir / "exports").resolve(), (s.data_dir / "reports").resolve()
    session = Session(id=session_id, user="hostile", config=SessionConfig())
    result = _clean_or_result(store.save_session, session)
    if isinstance(result, MockmlError):
        assert isinstance(result, BadInput)
        return
    for fmt in ("json", "md"):
        path = store.export(session_id, fmt)
        assert path.resolve().parent == exports and path.is_file() and path.name.endswith("." + fmt)
    files = write_report(build_report(session, get_bank(s)), s.data_dir / "reports")
    for path in (files.markdown, files.html, files.chart, files.json):
        assert path.resolve().parent == reports and path.is_file()


@pytest.mark.parametrize("session_id", ["../../etc/shadow", "/etc/shadow", "a\x00b", "", "no-such-session", "\udfff"])
def test_export_of_a_bad_id_is_a_clean_error(env: dict[str, Any], session_id: str) -> None:
    with pytest.raises(BadInput):
        env["store"].export(session_id, "md")
    with pytest.raises(BadInput):
        env["store"].export("whatever", "../../x")  # the format is checked against a list, never used as a path


def test_cli_export_path_tricks_exit_2(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from app import cli

    s: Settings = env["settings"]
    monkeypatch.setenv("MOCKML_DATA_DIR", str(s.data_dir))
    before = {p for p in s.data_dir.parent.rglob("*")}
    for args in (["export", "../../../tmp/x"], ["export", "/etc/shadow-9", "-f", "json"], ["export", "x", "-f", "../../sh"]):
        get_settings.cache_clear()
        out, err = io.StringIO(), io.StringIO()
        monkeypatch.setattr(sys, "argv", ["mockml", *args])
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as info:
            cli.main()
        assert info.value.code == 2 and err.getvalue().startswith("error:") and err.getvalue().count("\n") == 1, err.getvalue()
    get_settings.cache_clear()
    created = {p for p in s.data_dir.parent.rglob("*")} - before
    assert all(p.parent == s.data_dir and p.name.startswith("mockml.db") for p in created), created  # only the database


# ---- uploaded audio is refused by type and size before anything decodes it ------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(min_size=1, max_size=2000), magic=st.sampled_from([b"", b"RIFF", b"OggS", b"\x1a\x45\xdf\xa3", b"ID3",
                                                                          b"fLaC", b"\xff\xfb", b"\x00\x00\x00\x18ftypmp42"]))
def test_audio_junk_is_refused_cleanly(tmp_path: Path, body: bytes, magic: bytes) -> None:
    from app.speech import check_audio_file

    path = Path(tempfile.mkdtemp(dir=tmp_path)) / "answer.wav"
    path.write_bytes(magic + body)
    result = _clean_or_result(check_audio_file, path)
    assert isinstance(result, BadInput) or result is None or isinstance(result, float)


def test_audio_decoder_never_sees_refused_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Junk, an empty file and a huge sparse file are refused by `transcribe` before the decoder is called."""
    import app.speech as speech

    def no_decode(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the decoder was reached")

    monkeypatch.setattr(speech, "_decode", no_decode)
    junk_file, empty, huge = tmp_path / "junk.webm", tmp_path / "empty.wav", tmp_path / "huge.wav"
    junk_file.write_bytes(b"<html><script>alert(1)</script></html>")
    empty.write_bytes(b"")
    with huge.open("wb") as fh:
        fh.write(b"RIFF")
        fh.truncate(speech.MAX_BYTES + 1)  # sparse: no disk space used
    for path in (junk_file, empty, huge, tmp_path / "missing.wav"):
        with pytest.raises(BadInput):
            speech.transcribe(path)

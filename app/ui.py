"""The browser app: mock interview, grader, question bank and history tabs over the same engine as the CLI.

Callbacks stay thin: they call the engine (Interviewer, Grader, Retriever, Store, report) and format what it
returns. Per-user state lives in `gr.State` (one value per browser session); the engine objects are shared
and hold no per-user state. Every piece of user or bank text that reaches HTML is escaped first.
"""

from __future__ import annotations

import html
import importlib.util
import logging
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import app  # noqa: F401 - offline environment defaults (GRADIO_ANALYTICS_ENABLED=False, ...) before gradio loads
from app.config import Settings
from app.errors import MockmlError
from app.text import counted

log = logging.getLogger("mockml.ui")

ANY = "any"
DEFAULT_USER = "candidate"
COMMAND_BUTTONS = (("Skip", "/skip"), ("Hint", "/hint"), ("Repeat", "/repeat"), ("End interview", "/end"))
VERDICT_COLORS = {"covered": "#16a34a", "partial": "#ca8a04", "missing": "#6b7280", "contradicted": "#dc2626"}

# Speaks the text with the browser's own speech synthesis (nothing leaves the machine).
SPEAK_JS = """
(text, on) => {
  if (on && text && window.speechSynthesis) {
    window.speechSynthesis.cancel();
    window.speechSynthesis.speak(new SpeechSynthesisUtterance(text));
  }
}
"""

CSS = """
.mockml-verdicts table { width: 100%; border-collapse: collapse; }
.mockml-verdicts td, .mockml-verdicts th { border-bottom: 1px solid #e5e7eb; padding: 6px; vertical-align: top; text-align: left; }
.mockml-badge { color: white; border-radius: 4px; padding: 1px 6px; font-size: 0.85em; white-space: nowrap; }
.mockml-hit { border: 1px solid #e5e7eb; border-radius: 6px; padding: 8px 12px; margin-bottom: 8px; }
.mockml-meta { color: #6b7280; font-size: 0.9em; }
/* Gradio breaks highlighted text anywhere (word-break: break-all), which split words and the verdict labels. */
#g-highlight .token, #g-highlight .text { word-break: normal; overflow-wrap: break-word; }
#g-highlight .label { white-space: nowrap; }
"""


def speech_available() -> bool:
    """Whether the speech-to-text module is installed (imported only when a recording arrives)."""
    try:
        return importlib.util.find_spec("app.speech") is not None
    except (ImportError, ValueError):
        return False


def esc(text: Any) -> str:
    """HTML-escape any text (user, model or bank) before it reaches the page."""
    return html.escape("" if text is None else str(text))


# ---------------------------------------------------------------------------------------------- formatting


def chat_messages(turns: list[Any]) -> list[dict[str, str]]:
    """Turns as Chatbot messages; text is escaped so it always shows as text."""
    from app.sessions import Speaker

    return [
        {"role": "assistant" if t.speaker is Speaker.INTERVIEWER else "user", "content": esc(t.text)}
        for t in turns
    ]


def progress_text(reply: Any) -> str:
    """'question 3 of 6' plus where the session stands."""
    phase = reply.phase.value
    if phase == "done":
        return f"**Interview finished** · {counted(reply.questions_total, 'question')}"
    if phase == "candidate_questions":
        return "**Your questions for the interviewer** (type “no questions” to finish)"
    return f"**{reply.progress}**"


def spoken_text(turns: list[Any]) -> str:
    """What the interviewer voice reads aloud: the questions in these turns, else everything said."""
    from app.sessions import Speaker

    said = [t for t in turns if t.speaker is Speaker.INTERVIEWER]
    asked = [t.text for t in said if t.kind.value in ("question", "follow_up")]
    return " ".join(asked or [t.text for t in said])


def report_files(report_path: str | None) -> tuple[str | None, str, list[str]]:
    """(chart png, markdown, downloadable files) for a finished session's report, copied to a temp folder."""
    if not report_path:
        return None, "", []
    html_path = Path(report_path)
    md_path = html_path.with_suffix(".md")
    chart = html_path.with_name(html_path.name.replace("-report.html", "-chart.png"))
    # Served files must live in Gradio's allowed folders: copy them rather than exposing the data directory.
    folder = Path(tempfile.mkdtemp(prefix="mockml-report-"))
    files = []
    for path in (html_path, md_path):
        if path.is_file():
            files.append(str(shutil.copy(path, folder / path.name)))
    image = str(shutil.copy(chart, folder / chart.name)) if chart.is_file() else None
    markdown = md_path.read_text(encoding="utf-8") if md_path.is_file() else ""
    # The chart is shown as an image above; its relative link would not resolve in the page.
    markdown = "\n".join(line for line in markdown.splitlines() if not line.startswith("!["))
    return image, markdown, files


def highlight_segments(answer: str, verdicts: list[Any]) -> list[tuple[str, str | None]]:
    """The answer split into plain text and evidence quotes labelled with their verdict."""
    spans: list[tuple[int, int, str]] = []
    for v in verdicts:
        if v.evidence:
            start = answer.find(v.evidence)
            if start >= 0:
                spans.append((start, start + len(v.evidence), v.verdict.value))
    spans.sort()
    segments: list[tuple[str, str | None]] = []
    pos = 0
    for start, end, label in spans:
        if start < pos:
            continue  # overlapping quotes: the first one wins
        if start > pos:
            segments.append((answer[pos:start], None))
        segments.append((answer[start:end], label))
        pos = end
    if pos < len(answer):
        segments.append((answer[pos:], None))
    return segments


def verdicts_html(card: Any) -> str:
    """The scorecard's verdicts, strengths, gaps and improvement as escaped HTML."""
    rows = []
    for v in card.verdicts:
        color = VERDICT_COLORS.get(v.verdict.value, "#6b7280")
        evidence = f"“{esc(v.evidence)}”" if v.evidence else "<span class='mockml-meta'>—</span>"
        rows.append(
            f"<tr><td>{esc(v.point)}</td><td>{v.weight:g}</td>"
            f"<td><span class='mockml-badge verdict-{esc(v.verdict.value)}' style='background:{color}'>{esc(v.verdict.value)}</span></td>"
            f"<td class='evidence'>{evidence}</td></tr>"
        )
    parts = [
        f"<h3>Score {card.score:.1f} / 5</h3>",
        f"<p class='mockml-meta'>engine: {esc(card.engine)} · rubric: {esc(card.rubric_source.value)} · {card.latency_ms:.0f} ms</p>",
        "<table><tr><th>rubric point</th><th>weight</th><th>verdict</th><th>your words</th></tr>", *rows, "</table>",
    ]
    for title, items in (("Strengths", card.strengths), ("Gaps", card.gaps)):
        if items:
            parts.append(f"<h4>{title}</h4><ul>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>")
    parts.append(f"<h4>Next time</h4><p>{esc(card.improvement)}</p>")
    for note in card.notes:
        parts.append(f"<p class='mockml-meta'>note: {esc(note)}</p>")
    return "<div class='mockml-verdicts'>" + "".join(parts) + "</div>"


def question_html(q: Any, extra: str = "") -> str:
    """One bank question with its rubric, model answers and sources, escaped."""
    rubric = "".join(
        f"<li>{esc(p.text)} <span class='mockml-meta'>(weight {p.weight:g}"
        + (f"; key terms: {esc(', '.join(p.key_terms))}" if p.key_terms else "") + ")</span></li>"
        for p in q.rubric
    )
    answers = "".join(f"<li>{esc(a.text)} <span class='mockml-meta'>— {esc(a.source)}</span></li>" for a in q.model_answers)
    sources = "".join(
        f"<li>{esc(s.seed)}" + (f" · {esc(s.section)}" if s.section else "") + f": “{esc(s.original)}”</li>" for s in q.sources
    ) or "<li>mockml</li>"
    follow = "".join(f"<li>{esc(f.text)}</li>" for f in q.follow_ups)
    return (
        f"<div class='mockml-hit'><b>{esc(q.text)}</b><br>"
        f"<span class='mockml-meta'>{esc(q.id)} · {esc(q.track.value)} · {esc(q.topic)} · {esc(q.kind.value)} · {esc(q.level.value)}{extra}</span>"
        f"<details><summary>Rubric ({len(q.rubric)} points)</summary><ul>{rubric}</ul></details>"
        f"<details><summary>Model answers</summary><ul>{answers}</ul></details>"
        + (f"<details><summary>Follow-ups</summary><ul>{follow}</ul></details>" if follow else "")
        + f"<details><summary>Sources</summary><ul>{sources}</ul></details></div>"
    )


def trend_figure(rows: list[Any]) -> Any:
    """Mean score per session over time (matplotlib Figure, no pyplot global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    points = sorted((r.started_at, r.mean_score) for r in rows if r.mean_score is not None)
    fig = Figure(figsize=(7, 2.8), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    if points:
        # One tick per session (not a time axis): a single session would otherwise sit on a years-wide scale.
        xs = list(range(1, len(points) + 1))
        ax.plot(xs, [p[1] for p in points], marker="o")
        ax.set_xticks(xs, [f"{p[0]:%b %d %H:%M}" for p in points])
        ax.set_xlim(0.5, len(points) + 0.5)
    else:
        ax.text(0.5, 0.5, "no graded answers yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylim(0, 5)
    ax.set_ylabel("mean score (0–5)")
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_xlabel("session")
    return fig


# ---------------------------------------------------------------------------------------------- the app


class Services:
    """The engine objects the callbacks share (stateless per user; built lazily, warmed in the background)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._grader: Any = None
        self._store: Any = None
        self._interviewer: Any = None

    @property
    def bank(self) -> Any:
        from app.runtime import get_bank

        return get_bank(self.settings)

    @property
    def grader(self) -> Any:
        with self._lock:
            if self._grader is None:
                from app.grading import Grader

                self._grader = Grader(self.settings, self.bank)
            return self._grader

    @property
    def store(self) -> Any:
        with self._lock:
            if self._store is None:
                from app.store import Store

                self._store = Store.from_settings(self.settings)
            return self._store

    @property
    def interviewer(self) -> Any:
        grader, store = self.grader, self.store
        with self._lock:
            if self._interviewer is None:
                from app.interview import Interviewer

                self._interviewer = Interviewer(self.bank, grader, store)
            return self._interviewer

    def retriever(self) -> Any:
        from app.runtime import get_retriever

        return get_retriever(self.settings)

    def warm_up(self) -> None:
        """Load the embedding model and index the bank so the first user does not wait."""
        started = time.perf_counter()
        try:
            q = self.bank.questions[0]
            self.grader.grade(q.id, "warm-up answer that mentions " + q.rubric[0].text, engine="offline")
            self.retriever()
            log.info("mockml ui: models warm in %.1f s", time.perf_counter() - started)
        except Exception:  # a failed warm-up only costs the first user some seconds
            log.exception("warm-up failed")


def build_app(settings: Settings, services: Services | None = None) -> Any:
    """The Gradio Blocks app for these settings."""
    import gradio as gr

    from app.bank import Kind, Level, Track
    from app.sessions import Mode, Phase, SessionConfig

    services = services or Services(settings)
    engines = [("offline (embedded, nothing leaves this machine)", "offline")]
    if not settings.offline:
        engines.append((f"LLM: {settings.model}", "llm"))
    if settings.model.strip().lower() != "local":
        from app.local_llm import available

        if available(settings):  # set up with `mockml local setup`: offered without configuring anything
            engines.append(("local: embedded small LLM (on this machine, slower)", "local"))
    has_speech = speech_available()

    def fail(exc: MockmlError) -> gr.Error:
        return gr.Error(str(exc))

    # ------------------------------------------------------------------ interview callbacks

    def show(reply: Any, chat: list[dict[str, str]], state: dict[str, Any]) -> tuple[Any, ...]:
        """Common outputs after the interviewer replied."""
        # A model failure the offline engine covered for is said in the chat, before the interviewer's next words.
        notes = [{"role": "assistant", "content": f"*note: {esc(n)}*"} for n in getattr(reply, "notes", [])]
        chat = list(chat) + notes + chat_messages(reply.turns)
        asked = [t for t in reply.turns if t.kind.value in ("question", "follow_up") and t.question_id]
        state = {**state, "session_id": reply.session_id}
        if asked:
            state["question_id"] = asked[-1].question_id
        done = reply.phase is Phase.DONE
        image, markdown, files = report_files(reply.report_path) if done else (None, "", [])
        return (
            chat, state, progress_text(reply), spoken_text(reply.turns),
            gr.update(visible=done), image, markdown, files or None, "",
            gr.update(interactive=not done),
        )

    def start(user: str, tracks: list[str], level: str, n: float, mode: str, engine: str, state: dict[str, Any]) -> tuple[Any, ...]:
        try:
            config = SessionConfig(tracks=[Track(t) for t in tracks or []], level=Level(level), mode=Mode(mode),
                                   questions=int(n or 6), engine=engine or "offline")
            reply = services.interviewer.start((user or DEFAULT_USER).strip() or DEFAULT_USER, config)
        except MockmlError as exc:
            raise fail(exc) from exc
        except ValueError as exc:  # pydantic: e.g. number of questions out of range
            raise gr.Error(f"check the setup: {exc.errors()[0]['msg'] if hasattr(exc, 'errors') else exc}") from exc
        return show(reply, [], {"user": user})

    def respond(text: str, chat: list[dict[str, str]], state: dict[str, Any]) -> tuple[Any, ...]:
        return take_turn(text, chat, state, spoken=False)

    def take_turn(text: str, chat: list[dict[str, str]], state: dict[str, Any], spoken: bool) -> tuple[Any, ...]:
        session_id = (state or {}).get("session_id")
        if not session_id:
            raise gr.Error("start an interview first (Setup → Start interview)")
        try:
            reply = services.interviewer.respond(session_id, text, spoken=spoken)
        except MockmlError as exc:
            raise fail(exc) from exc
        return show(reply, list(chat or []) + [{"role": "user", "content": esc(text)}], state)

    def spoken(audio_path: str | None, chat: list[dict[str, str]], state: dict[str, Any]) -> tuple[Any, ...]:
        if not audio_path:
            raise gr.Error("no recording arrived: record again, or type your answer")
        from app.speech import transcribe  # guarded by speech_available(); imported on first use

        qid = (state or {}).get("question_id")
        question = services.bank.get(qid) if qid and services.bank.has(qid) else None
        try:
            text = transcribe(audio_path, question=question).text
        except MockmlError as exc:
            raise fail(exc) from exc
        if not text.strip():
            raise gr.Error("nothing was heard in the recording: speak closer to the microphone, or type your answer")
        return (*take_turn(text, chat, state, spoken=True), f"You said: “{esc(text)}”", None)

    # ------------------------------------------------------------------ other tabs' callbacks

    def grade(question_id: str | None, question_text: str, answer: str, reference: str, engine: str) -> tuple[Any, ...]:
        question = (question_text or "").strip() or (question_id or "")
        if not question:
            raise gr.Error("pick a bank question or type one")
        try:
            card = services.grader.grade(question, answer or "", (reference or "").strip() or None, engine or None)
        except MockmlError as exc:
            raise fail(exc) from exc
        return highlight_segments(answer, card.verdicts), verdicts_html(card), card.model_dump_json(indent=2)

    def search(query: str, track: str, kind: str, level: str, k: float) -> str:
        filters = {name: (None if value in (None, "", ANY) else value) for name, value in
                   (("track", track), ("kind", kind), ("level", level))}
        try:
            if (query or "").strip():
                hits = services.retriever().search(query, int(k or 10), **filters)
                body = [question_html(h.question, f" · relevance {h.score:.3f}") for h in hits]
            else:  # no query: browse the bank with the filters
                body = [question_html(q) for q in services.bank.questions
                        if all(f is None or getattr(q, n).value == f for n, f in filters.items())][: int(k or 10)]
        except MockmlError as exc:
            raise fail(exc) from exc
        if not body:
            return "<p>No matching questions: try other words or fewer filters.</p>"
        return f"<p class='mockml-meta'>{len(body)} result(s)</p>" + "".join(body)

    def history(user: str) -> tuple[Any, ...]:
        try:
            rows = services.store.list_sessions(services.store.ensure_user((user or DEFAULT_USER).strip() or DEFAULT_USER))
        except MockmlError as exc:
            raise fail(exc) from exc
        table = [[r.id, r.started_at.strftime("%Y-%m-%d %H:%M"), "finished" if r.phase is Phase.DONE else f"unfinished ({r.phase.value})",
                  r.answers, "—" if r.mean_score is None else f"{r.mean_score:.1f}", ", ".join(t.value for t in r.tracks) or "mix"]
                 for r in rows]
        choices = [(f"{r.started_at:%Y-%m-%d %H:%M} · {r.id} · {'finished' if r.phase is Phase.DONE else 'unfinished'}", r.id)
                   for r in rows]
        return table, trend_figure(rows), gr.update(choices=choices, value=choices[0][1] if choices else None)

    def reopen(session_id: str | None) -> tuple[Any, ...]:
        if not session_id:
            raise gr.Error("load your history and pick a session first")
        try:
            session = services.store.load_session(session_id)
        except MockmlError as exc:
            raise fail(exc) from exc
        if not session.report_path:
            raise gr.Error("this interview is unfinished: resume it to get its report")
        image, markdown, files = report_files(session.report_path)
        return image, markdown, files or None

    def resume(session_id: str | None, state: dict[str, Any]) -> tuple[Any, ...]:
        if not session_id:
            raise gr.Error("load your history and pick a session first")
        try:
            session = services.store.load_session(session_id)
            if session.phase is Phase.DONE:
                raise gr.Error("this interview is finished: open its report instead")
            reply = services.interviewer.resume(session_id)
        except MockmlError as exc:
            raise fail(exc) from exc
        session = services.store.load_session(session_id)  # now with whatever resuming said
        qid = session.plan[session.current] if session.current < len(session.plan) else None
        state = {"user": session.user, "question_id": qid}
        shown = show(reply.model_copy(update={"turns": []}), chat_messages(session.turns), state)
        return (*shown, gr.Tabs(selected="interview"))

    # ------------------------------------------------------------------ layout

    with gr.Blocks(title="mockml — mock interviews for ML engineers", analytics_enabled=False) as demo:
        state = gr.State({})
        gr.Markdown("# mockml\nMock interviews for machine-learning engineers — graded against a rubric, with evidence.")
        with gr.Tabs() as tabs:
            with gr.Tab("Mock interview", id="interview", elem_id="tab-interview"):
                with gr.Accordion("Setup", open=True) as setup:
                    with gr.Row():
                        profile = gr.Textbox(label="Profile name", value=DEFAULT_USER, elem_id="profile", scale=1)
                        tracks = gr.Dropdown([t.value for t in Track], multiselect=True, label="Tracks (empty = a mix)",
                                             elem_id="tracks", scale=2)
                    with gr.Row():
                        level = gr.Radio([lv.value for lv in Level], value=Level.MID.value, label="Level", elem_id="level")
                        n_questions = gr.Number(value=6, minimum=1, maximum=20, precision=0, label="Number of questions",
                                                elem_id="n-questions")
                        mode = gr.Radio([m.value for m in Mode], value=Mode.INTERVIEW.value, label="Mode",
                                        info="interview: feedback at the end · coach: feedback after each answer", elem_id="mode")
                        engine = gr.Dropdown(engines, value="offline", label="Engine", elem_id="engine")
                    with gr.Row():
                        voice = gr.Checkbox(label="Interviewer voice (reads each question aloud in your browser)", value=False,
                                            elem_id="voice")
                        start_btn = gr.Button("Start interview", variant="primary", elem_id="start")
                progress = gr.Markdown("Set up the interview and press **Start interview**.", elem_id="progress")
                chat = gr.Chatbot(label="Interviewer", height=420, elem_id="chat")
                answer = gr.Textbox(label="Your answer", lines=4, placeholder="Answer as you would out loud…", elem_id="answer")
                with gr.Row():
                    send_btn = gr.Button("Send answer", variant="primary", elem_id="send")
                    command_btns = [gr.Button(label, elem_id=f"cmd-{cmd[1:]}", size="sm") for label, cmd in COMMAND_BUTTONS]
                with gr.Row(visible=has_speech):
                    audio = gr.Audio(sources=["microphone", "upload"], type="filepath", label="Or speak your answer",
                                     elem_id="mic")
                    transcript = gr.Markdown(elem_id="transcript")
                speak_box = gr.Textbox(visible=False)
                with gr.Column(visible=False, elem_id="report") as report_col:
                    gr.Markdown("## Your report")
                    report_img = gr.Image(label="Score by topic", type="filepath", interactive=False, elem_id="report-chart")
                    report_dl = gr.File(label="Download the report (HTML / Markdown)", file_count="multiple",
                                        interactive=False, elem_id="report-files")
                    report_md = gr.Markdown(elem_id="report-md")

            with gr.Tab("Grade an answer", id="grade", elem_id="tab-grade"):
                bank_choices = [(f"{q.id} — {q.text[:90]}", q.id) for q in services.bank.questions]
                g_qid = gr.Dropdown(bank_choices, label="Bank question", value=None, filterable=True, elem_id="g-qid")
                g_text = gr.Textbox(label="…or type any question (overrides the pick above)", elem_id="g-question")
                g_answer = gr.Textbox(label="Your answer", lines=6, elem_id="g-answer")
                g_ref = gr.Textbox(label="Reference answer (optional: its claims become the rubric)", lines=3, elem_id="g-ref")
                g_engine = gr.Dropdown(engines, value="offline", label="Engine", elem_id="g-engine")
                g_btn = gr.Button("Grade", variant="primary", elem_id="g-grade")
                g_high = gr.HighlightedText(label="Evidence in your answer", color_map={
                    "covered": "green", "partial": "yellow", "contradicted": "red"}, elem_id="g-highlight")
                g_card = gr.HTML(elem_id="g-card")
                g_json = gr.Code(label="Scorecard JSON", language="json", interactive=False, max_lines=25,
                                 elem_id="g-json")

            with gr.Tab("Question bank", id="bank", elem_id="tab-bank"):
                with gr.Row():
                    b_query = gr.Textbox(label="Search (hybrid: meaning + keywords)", scale=3, elem_id="b-query")
                    b_k = gr.Number(value=10, minimum=1, maximum=100, precision=0, label="Results", scale=1)
                with gr.Row():
                    b_track = gr.Dropdown([ANY] + [t.value for t in Track], value=ANY, label="Track")
                    b_kind = gr.Dropdown([ANY] + [k.value for k in Kind], value=ANY, label="Kind")
                    b_level = gr.Dropdown([ANY] + [lv.value for lv in Level], value=ANY, label="Level")
                b_btn = gr.Button("Search", variant="primary", elem_id="b-search")
                b_out = gr.HTML(elem_id="b-results")

            with gr.Tab("History", id="history", elem_id="tab-history"):
                with gr.Row():
                    h_user = gr.Textbox(label="Profile name", value=DEFAULT_USER, elem_id="h-user")
                    h_btn = gr.Button("Load history", elem_id="h-load")
                h_table = gr.Dataframe(headers=["session", "started", "status", "answers", "mean score", "tracks"],
                                       interactive=False, elem_id="h-table")
                h_plot = gr.Plot(label="Score trend", elem_id="h-plot")
                with gr.Row():
                    h_pick = gr.Dropdown([], label="Session", elem_id="h-pick")
                    h_open = gr.Button("Open report", elem_id="h-open")
                    h_resume = gr.Button("Resume interview", elem_id="h-resume")
                h_img = gr.Image(label="Score by topic", type="filepath", interactive=False)
                h_files = gr.File(label="Download", file_count="multiple", interactive=False)
                h_md = gr.Markdown(elem_id="h-report")

        # ------------------------------------------------------------------ wiring
        outs = [chat, state, progress, speak_box, report_col, report_img, report_md, report_dl, answer, send_btn]
        # Explicit api_names: scripted clients (evals/bench/load.py, tests via gradio_client) call these by name.
        start_btn.click(start, [profile, tracks, level, n_questions, mode, engine, state], outs, api_name="start").success(
            lambda user: (user, gr.Accordion(open=False)), profile, [h_user, setup])
        send_btn.click(respond, [answer, chat, state], outs, api_name="respond")
        answer.submit(respond, [answer, chat, state], outs, api_name="respond_submit")
        for btn, (_, cmd) in zip(command_btns, COMMAND_BUTTONS):
            btn.click(lambda c, s, cmd=cmd: respond(cmd, c, s), [chat, state], outs, api_name=f"command_{cmd[1:]}")
        speak_box.change(None, [speak_box, voice], None, js=SPEAK_JS)
        if has_speech:
            audio.stop_recording(spoken, [audio, chat, state], outs + [transcript, audio])
            audio.upload(spoken, [audio, chat, state], outs + [transcript, audio])
        g_btn.click(grade, [g_qid, g_text, g_answer, g_ref, g_engine], [g_high, g_card, g_json])
        b_btn.click(search, [b_query, b_track, b_kind, b_level, b_k], b_out)
        b_query.submit(search, [b_query, b_track, b_kind, b_level, b_k], b_out)
        h_btn.click(history, h_user, [h_table, h_plot, h_pick], api_name="history")
        h_open.click(reopen, h_pick, [h_img, h_md, h_files])
        h_resume.click(resume, [h_pick, state], outs + [tabs], api_name="resume")
        if settings.auth is not None:
            # With a login, the profile is the signed-in user (one person cannot open another's history).
            def signed_in(request: gr.Request) -> tuple[Any, ...]:
                name = request.username or DEFAULT_USER
                return gr.update(value=name, interactive=False), gr.update(value=name, interactive=False)

            demo.load(signed_in, None, [profile, h_user])
    return demo


def theme() -> Any:
    """The default look with system fonts (the stock theme fetches Google Fonts, which would leave the machine)."""
    import gradio as gr

    return gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def auth_pair(settings: Settings) -> tuple[str, str] | None:
    """MOCKML_AUTH=user:password as Gradio's (user, password), or None for no login."""
    from app.errors import ConfigError

    if settings.auth is None:
        return None
    user, sep, password = settings.auth.get_secret_value().partition(":")
    if not sep or not user or not password:
        raise ConfigError("MOCKML_AUTH must look like user:password (or be unset for no login)")
    return user, password


def launch(settings: Settings, host: str | None = None, port: int | None = None, *, concurrency: int = 4) -> None:
    """Serve the app (blocking); models warm up in a background thread so the page is up at once."""
    auth = auth_pair(settings)
    settings.ensure_data_dir()
    services = Services(settings)
    demo = build_app(settings, services)
    threading.Thread(target=services.warm_up, name="mockml-warm-up", daemon=True).start()
    demo.queue(default_concurrency_limit=concurrency)
    demo.launch(server_name=host or settings.host, server_port=port or settings.port, share=False, auth=auth,
                show_error=True, inbrowser=False, ssr_mode=False, theme=theme(), css=CSS, quiet=False)

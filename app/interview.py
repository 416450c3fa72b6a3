"""The interviewer: an explicit state machine over a session, persisted after every turn.

greeting → plan → ask → answer → grade → follow-up or next → candidate's questions → wrap-up → report

`Interviewer.start()` greets, plans and asks the first question; `Interviewer.respond()` takes whatever
the candidate typed (an answer or a command: /skip, /repeat, /hint, /end) and returns the interviewer's
next turns. Every turn is committed to the store before it is returned, so a killed process resumes
exactly where it stopped (`Interviewer.resume()`).
"""

from __future__ import annotations

import hashlib
import random
import uuid
from datetime import datetime, timezone
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from app.bank import Bank, Level, Question, Track
from app.errors import BadInput
from app.grading import FALLBACK_NOTE, Grader
from app.grading.models import Scorecard
from app.sessions import Mode, Phase, Session, SessionConfig, Speaker, Turn, TurnKind
from app.text import counted

MAX_FOLLOW_UPS = 2
COMMANDS = {"/skip": "skip", "/repeat": "repeat", "/hint": "hint", "/end": "end", "skip": "skip", "hint": "hint"}
# Levels a session at each level draws from, preferred first.
LEVEL_POOL: dict[Level, tuple[Level, ...]] = {
    Level.JUNIOR: (Level.JUNIOR, Level.MID),
    Level.MID: (Level.MID, Level.JUNIOR, Level.SENIOR),
    Level.SENIOR: (Level.SENIOR, Level.MID),
}
TRANSITIONS = (
    "Thanks. Let's move on.",
    "Okay, thank you. Next one.",
    "Got it. Let's switch gears.",
    "Thanks for walking me through that. Moving on.",
)
NO_MORE_QUESTIONS = {"no", "nope", "none", "no questions", "nothing", "n/a", "i'm good", "im good", "that's all", "thats all"}


class Reply(BaseModel):
    """What the interviewer says back, and where the session stands."""

    session_id: str
    turns: list[Turn]
    phase: Phase
    question_number: int  # 1-based number of the current question (0 before the first)
    questions_total: int
    scorecard: Scorecard | None = None  # coach mode: the scorecard of the answer just given
    report_path: str | None = None
    notes: list[str] = Field(default_factory=list, description="for the user: e.g. the model failed, the offline engine answered")

    @property
    def progress(self) -> str:
        return f"question {min(self.question_number, self.questions_total)} of {self.questions_total}"


def plan_questions(bank: Bank, config: SessionConfig, answered: set[str], seed: str) -> list[str]:
    """Pick questions for the chosen tracks and level, balancing tracks, topics and kinds."""
    tracks = set(config.tracks) or {t for t in Track}
    levels = LEVEL_POOL[config.level]
    pool = [q for q in bank.questions if q.track in tracks and q.level in levels]
    fresh = [q for q in pool if config.repeat_answered or q.id not in answered]
    if len(fresh) < config.questions:
        fresh = pool  # the user has answered everything at this level: repeat rather than ask fewer
    if not fresh:
        raise BadInput("no bank questions match these tracks and level: pick more tracks or another level")
    rng = random.Random(int(hashlib.sha256(seed.encode()).hexdigest()[:12], 16))
    rng.shuffle(fresh)
    fresh.sort(key=lambda q: levels.index(q.level))  # stable: preferred level first, shuffled within
    chosen: list[Question] = []
    track_counts: Counter[Track] = Counter()
    topic_counts: Counter[str] = Counter()
    kind_counts: Counter[str] = Counter()
    while len(chosen) < min(config.questions, len(fresh)):
        candidates = [q for q in fresh if q not in chosen]
        best = min(candidates, key=lambda q: (topic_counts[q.topic], track_counts[q.track], kind_counts[q.kind],
                                              levels.index(q.level)))
        chosen.append(best)
        track_counts[best.track] += 1
        topic_counts[best.topic] += 1
        kind_counts[best.kind] += 1
    return [q.id for q in chosen]


class Interviewer:
    """Runs interviews for any number of candidates; holds no per-session state of its own."""

    def __init__(self, bank: Bank, grader: Grader, store: object, *, llm: object | None = None, report_dir: Path | None = None) -> None:
        self.bank = bank
        self.grader = grader
        self.store = store
        self.llm = llm
        self.report_dir = report_dir

    # ---- lifecycle ------------------------------------------------------------------------------

    def start(self, user: str, config: SessionConfig) -> Reply:
        """Greet, plan and ask the first question."""
        user = self.store.ensure_user(user)  # type: ignore[attr-defined]
        session = Session(id=uuid.uuid4().hex[:12], user=user, config=config)
        answered = self.store.answered_question_ids(user)  # type: ignore[attr-defined]  # before this session exists
        session.plan = plan_questions(self.bank, config, answered, session.id)
        session.phase = Phase.PLAN
        self.store.save_session(session)  # type: ignore[attr-defined]
        tracks = ", ".join(t.value for t in config.tracks) if config.tracks else "a mix of tracks"
        feedback = ("I'll give you feedback and a model answer after each question."
                    if config.mode is Mode.COACH else "Like a real interview, I'll hold feedback until the end.")
        greeting = (f"Hi {user}, thanks for joining. We'll go through {counted(len(session.plan), 'question')} on {tracks} "
                    f"at {config.level.value} level. {feedback} Answer as you would out loud; type /hint for a nudge, "
                    "/skip to move on, /repeat to hear the question again, or /end to finish early.")
        turns = [self._say(session, TurnKind.GREETING, greeting)]
        turns += self._ask_current(session)
        return self._reply(session, turns)

    def resume(self, session_id: str) -> Reply:
        """Pick a stored session up where it stopped, repeating what the interviewer last said."""
        session = self.store.load_session(session_id)  # type: ignore[attr-defined]
        if session.phase is Phase.PLAN:
            # Killed while starting, before the first question was asked: ask it now.
            return self._reply(session, [*session.turns[-1:], *self._ask_current(session)])
        if session.turns and session.turns[-1].kind is TurnKind.TRANSITION:
            # Killed after "let's move on" was committed but before the next question was: ask it now.
            return self._reply(session, [session.turns[-1], *self._ask_current(session)])
        if session.phase in (Phase.WRAP_UP, Phase.REPORT):
            # Killed while the report was being written: write it now (answering would index past the plan).
            return self._reply(session, self._wrap_up(session, ended_early=session.current < len(session.plan)))
        if session.phase is Phase.GRADE:
            # Killed after the answer was committed but before the interviewer replied: finish that step.
            answer = [t for t in session.turns if t.kind is TurnKind.ANSWER][-1]
            question = self.bank.get(session.plan[session.current])
            follow = self._follow_up(session, question, answer.scorecard) if answer.scorecard else None
            return self._reply(session, [follow] if follow else self._next_question(session))
        last = [t for t in session.turns if t.speaker is Speaker.INTERVIEWER][-1:]
        return self._reply(session, last)

    def respond(self, session_id: str, text: str, spoken: bool = False) -> Reply:
        """Handle the candidate's input in the session's current phase (`spoken`: a transcript of a recording)."""
        session = self.store.load_session(session_id)  # type: ignore[attr-defined]
        if session.phase is Phase.DONE:
            raise BadInput("this interview is finished: start a new one, or open its report")
        # Undecodable input arrives as lone surrogates; they can be neither stored nor shown.
        text = "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in (text or "")).strip()
        command = COMMANDS.get(text.lower())
        if command == "end":
            return self._reply(session, self._wrap_up(session, ended_early=True))
        if session.phase is Phase.CANDIDATE_QUESTIONS:
            return self._reply(session, self._candidate_questions(session, text))
        if command == "repeat":
            asked = [t for t in session.turns if t.kind in (TurnKind.QUESTION, TurnKind.FOLLOW_UP)][-1]
            return self._reply(session, [self._say(session, asked.kind, asked.text, question_id=asked.question_id,
                                                   target_point=asked.target_point)])
        if command == "hint":
            return self._reply(session, [self._hint(session)])
        if command == "skip":
            self._hear(session, TurnKind.SKIP, "(skipped)")
            return self._reply(session, self._next_question(session))
        if not text:
            raise BadInput("the answer is empty: type your answer, or /skip to move on")
        return self._answer(session, text, spoken)

    # ---- phases ---------------------------------------------------------------------------------

    def _answer(self, session: Session, text: str, spoken: bool) -> Reply:
        question = self.bank.get(session.plan[session.current])
        probe = self._open_follow_up(session)
        session.phase = Phase.GRADE
        card = self.grader.grade(question.id, text, engine=session.config.engine, spoken=spoken)
        notes = [n for n in card.notes if n.startswith(FALLBACK_NOTE)]
        self._hear(session, TurnKind.ANSWER, text, question_id=question.id, scorecard=card,
                   follow_up_of=probe.index if probe else None, target_point=probe.target_point if probe else None)
        turns: list[Turn] = []
        if session.config.mode is Mode.COACH:
            turns.append(self._say(session, TurnKind.FEEDBACK, _feedback(card, question), question_id=question.id))
        follow = self._follow_up(session, question, card, notes)
        turns += [follow] if follow else self._next_question(session)
        reply = self._reply(session, turns)
        reply.scorecard = card if session.config.mode is Mode.COACH else None
        reply.notes = notes
        return reply

    def _llm_for(self, session: Session) -> object | None:
        """The model that phrases follow-ups: the one given to the constructor, else the session engine's own."""
        return self.llm if self.llm is not None else self.grader.chat_model(session.config.engine)

    def _follow_up(self, session: Session, question: Question, card: Scorecard, notes: list[str] | None = None) -> Turn | None:
        if session.follow_ups_asked >= MAX_FOLLOW_UPS:
            return None
        from app.followup import choose_follow_up

        turns = self._question_turns(session)
        asked = [t.text for t in turns if t.kind is TurnKind.FOLLOW_UP]
        said = " ".join(t.text for t in turns if t.kind is TurnKind.ANSWER)
        choice = choose_follow_up(question, self._combined_card(session, question, card), asked, llm=self._llm_for(session), answer=said,
                                  notes=notes)
        if choice is None:
            return None
        session.follow_ups_asked += 1
        session.phase = Phase.FOLLOW_UP
        return self._say(session, TurnKind.FOLLOW_UP, choice.text, question_id=question.id, target_point=choice.target_point)

    def _next_question(self, session: Session) -> list[Turn]:
        session.current += 1
        session.follow_ups_asked = 0
        if session.current >= len(session.plan):
            session.phase = Phase.CANDIDATE_QUESTIONS
            suggestions = " ".join(f"“{c.text}”" for c in self.bank.closing[:2])
            text = ("That's all my questions. What would you like to ask me? Good candidates usually ask something, "
                    f"for example {suggestions} (or type “no questions”).")
            return [self._say(session, TurnKind.CANDIDATE_QUESTION, text)]
        transition = self._say(session, TurnKind.TRANSITION, TRANSITIONS[session.current % len(TRANSITIONS)])
        return [transition, *self._ask_current(session)]

    def _ask_current(self, session: Session) -> list[Turn]:
        question = self.bank.get(session.plan[session.current])
        session.phase = Phase.ASK
        turn = self._say(session, TurnKind.QUESTION, question.text, question_id=question.id)
        session.phase = Phase.ANSWER
        self.store.save_session(session)  # type: ignore[attr-defined]
        return [turn]

    def _candidate_questions(self, session: Session, text: str) -> list[Turn]:
        if text and text.lower().strip(" .!") not in NO_MORE_QUESTIONS:
            self._hear(session, TurnKind.CANDIDATE_QUESTION, text)
            answer = ("Good question — in a real interview this is where you learn how the team works. "
                      "Anything else you'd like to ask? (or type “no questions”)")
            return [self._say(session, TurnKind.CANDIDATE_QUESTION, answer)]
        return self._wrap_up(session, ended_early=False)

    def _wrap_up(self, session: Session, ended_early: bool) -> list[Turn]:
        from app.report import build_report, write_report

        if ended_early and session.current < len(session.plan):
            # Judge what was asked: a question never reached is not a question failed.
            session.plan = session.plan[: session.current + 1]
        session.phase = Phase.WRAP_UP
        closing = ("Let's stop here." if ended_early else "Thanks for your time today, that's the end of the interview.")
        said = session.turns[-1] if session.turns and session.turns[-1].kind is TurnKind.WRAP_UP else None  # resumed
        turns = [said or self._say(session, TurnKind.WRAP_UP, f"{closing} I'm putting your report together now.")]
        session.phase = Phase.REPORT
        session.finished_at = datetime.now(timezone.utc)
        history = [s for s in self.store.history(session.user) if s.id != session.id]  # type: ignore[attr-defined]
        report = build_report(session, self.bank, history)
        out_dir = self.report_dir or Path(self.grader.settings.data_dir) / "reports"
        files = write_report(report, out_dir)
        session.report_path = str(files.html)
        session.phase = Phase.DONE
        summary = (f"Your overall score is {report.overall:.1f} / 5 — {report.level_verdict}. "
                   f"The full report is at {files.markdown} (and {files.html.name}).")
        turns.append(self._say(session, TurnKind.WRAP_UP, summary))
        return turns

    def _hint(self, session: Session) -> Turn:
        from app.followup import hint

        question = self.bank.get(session.plan[session.current])
        given = [t.text for t in self._question_turns(session) if t.kind is TurnKind.HINT]
        cards = [t.scorecard for t in self._question_turns(session) if t.scorecard is not None]
        card = self._combined_card(session, question, cards[-1]) if cards else None
        said = " ".join(t.text for t in self._question_turns(session) if t.kind is TurnKind.ANSWER)
        return self._say(session, TurnKind.HINT, hint(question, card, given, answer=said or None), question_id=question.id)

    # ---- helpers --------------------------------------------------------------------------------

    def _question_turns(self, session: Session) -> list[Turn]:
        """Turns since the current question was asked."""
        qid = session.plan[session.current] if session.current < len(session.plan) else None
        starts = [i for i, t in enumerate(session.turns) if t.kind is TurnKind.QUESTION and t.question_id == qid]
        return session.turns[starts[-1]:] if starts else []

    def _open_follow_up(self, session: Session) -> Turn | None:
        """The follow-up the candidate is answering now, if any."""
        turns = self._question_turns(session)
        last_asked = [t for t in turns if t.kind in (TurnKind.QUESTION, TurnKind.FOLLOW_UP)]
        return last_asked[-1] if last_asked and last_asked[-1].kind is TurnKind.FOLLOW_UP else None

    def _combined_card(self, session: Session, question: Question, latest: Scorecard) -> Scorecard:
        """What the candidate has covered so far on this question: the best verdict per point across answers."""
        cards = [t.scorecard for t in self._question_turns(session) if t.scorecard is not None and t.question_id == question.id]
        if latest not in cards:
            cards.append(latest)
        best = {}
        for card in cards:
            for v in card.verdicts:
                if v.point_id not in best or v.credit > best[v.point_id].credit:
                    best[v.point_id] = v
        return latest.model_copy(update={"verdicts": [best[v.point_id] for v in latest.verdicts]})

    def _say(self, session: Session, kind: TurnKind, text: str, **fields: object) -> Turn:
        return self._commit(session, Turn(index=len(session.turns), speaker=Speaker.INTERVIEWER, kind=kind, text=text, **fields))

    def _hear(self, session: Session, kind: TurnKind, text: str, **fields: object) -> Turn:
        return self._commit(session, Turn(index=len(session.turns), speaker=Speaker.CANDIDATE, kind=kind, text=text, **fields))

    def _commit(self, session: Session, turn: Turn) -> Turn:
        """Persist the turn (and where the session stands) before anything is shown."""
        self.store.add_turn(session.id, turn)  # type: ignore[attr-defined]
        session.turns.append(turn)
        self.store.save_session(session)  # type: ignore[attr-defined]
        return turn

    def _reply(self, session: Session, turns: Sequence[Turn]) -> Reply:
        self.store.save_session(session)  # type: ignore[attr-defined]
        return Reply(
            session_id=session.id, turns=list(turns), phase=session.phase,
            question_number=min(session.current + 1, len(session.plan)) if session.plan else 0,
            questions_total=len(session.plan), report_path=session.report_path,
        )


def _feedback(card: Scorecard, question: Question) -> str:
    """Coach mode: the scorecard in a few lines and the model answer to compare with."""
    covered = sum(1 for v in card.verdicts if v.verdict.value == "covered")
    lines = [f"Score {card.score:.1f} / 5 — you covered {covered} of {len(card.verdicts)} rubric points."]
    if card.gaps:
        lines.append(f"Biggest gap: {card.gaps[0]}")
    lines.append(f"Next time: {card.improvement}")
    answer = question.model_answers[0]
    lines.append(f"A model answer ({answer.source}): {answer.text}")
    return "\n".join(lines)

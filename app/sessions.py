"""Interview contracts: what a session is configured with, and every turn said and scored in it."""

from __future__ import annotations

from datetime import datetime, timezone
from enum import StrEnum

from pydantic import BaseModel, Field

from app.bank import Level, Track
from app.grading.models import Scorecard


class Mode(StrEnum):
    INTERVIEW = "interview"  # feedback withheld until the end, like a real interview
    COACH = "coach"  # scorecard and model answer after each answer


class Phase(StrEnum):
    """The session state machine's states, in order."""

    GREETING = "greeting"
    PLAN = "plan"
    ASK = "ask"
    ANSWER = "answer"
    GRADE = "grade"
    FOLLOW_UP = "follow_up"
    CANDIDATE_QUESTIONS = "candidate_questions"
    WRAP_UP = "wrap_up"
    REPORT = "report"
    DONE = "done"


class Speaker(StrEnum):
    INTERVIEWER = "interviewer"
    CANDIDATE = "candidate"


class TurnKind(StrEnum):
    GREETING = "greeting"
    QUESTION = "question"
    FOLLOW_UP = "follow_up"
    ANSWER = "answer"
    HINT = "hint"
    SKIP = "skip"
    FEEDBACK = "feedback"
    TRANSITION = "transition"
    CANDIDATE_QUESTION = "candidate_question"
    WRAP_UP = "wrap_up"


def now() -> datetime:
    return datetime.now(timezone.utc)


class SessionConfig(BaseModel):
    """How the candidate set the interview up."""

    tracks: list[Track] = Field(default_factory=list, description="empty = a mix of all tracks")
    level: Level = Level.MID
    mode: Mode = Mode.INTERVIEW
    questions: int = Field(default=6, ge=1, le=20)
    repeat_answered: bool = False
    engine: str = "offline"


class Turn(BaseModel):
    """One utterance in a session; answers carry their scorecard."""

    index: int = Field(ge=0)
    speaker: Speaker
    kind: TurnKind
    text: str
    question_id: str | None = None
    follow_up_of: int | None = Field(default=None, description="index of the question turn this follow-up probes")
    target_point: str | None = Field(default=None, description="rubric point a follow-up or hint aims at")
    scorecard: Scorecard | None = None
    at: datetime = Field(default_factory=now)


class Session(BaseModel):
    """A whole interview: configuration, plan, where it stands, and every turn so far."""

    id: str
    user: str
    config: SessionConfig
    plan: list[str] = Field(default_factory=list, description="bank question ids, in asking order")
    phase: Phase = Phase.GREETING
    current: int = Field(default=0, description="index into plan of the question being asked")
    follow_ups_asked: int = Field(default=0, description="follow-ups asked for the current question")
    turns: list[Turn] = Field(default_factory=list)
    started_at: datetime = Field(default_factory=now)
    finished_at: datetime | None = None
    report_path: str | None = None

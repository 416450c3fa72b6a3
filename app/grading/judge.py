"""The LLM judge: one verdict per rubric point from a language model, with every evidence quote checked in code.

Two modes: `rubric` asks for the whole rubric in one call (capable models); `yesno` asks one YES / PARTIAL / NO /
CONTRADICTED question per point (the small embedded model is reliable at that and bad at holistic grading).
The model never gives a score: credits come from VERDICT_CREDIT and the caller weights them.
A quote that is not in the answer is dropped and its verdict lowered one step, so an invented quote earns less.
Any model failure propagates as LLMError; the caller falls back to the offline engine.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.bank import RubricPoint
from app.config import Settings, get_settings
from app.errors import ConfigError
from app.grading.guards import has_substance, is_instruction_to_grader, without_instructions
from app.grading.models import VERDICT_CREDIT, CriterionVerdict, Verdict
from app.llm import LLM, ChatModel
from app.prompts import render

logger = logging.getLogger("mockml.grading.judge")

MODES = ("auto", "rubric", "yesno")
RUBRIC_MAX_TOKENS = 400 + 160 * 7  # room for seven verdicts with a quote and a one-sentence reason each
YESNO_MAX_TOKENS = 256
YESNO_EVIDENCE_CHARS = 300  # one sentence; about 75 tokens, well inside YESNO_MAX_TOKENS

# Characters models wrap quotes in; trimmed from both ends before a quote is looked up in the answer.
_QUOTE_TRIM = " \t\r\n\"'`“”‘’«»„"
_ELLIPSIS = re.compile(r"^(?:\.\.\.|…)+|(?:\.\.\.|…)+$")

# One step down when the quote cannot be verified; a contradiction stays one (it only loses its quote).
DOWNGRADE: dict[Verdict, Verdict] = {
    Verdict.COVERED: Verdict.PARTIAL,
    Verdict.PARTIAL: Verdict.MISSING,
    Verdict.MISSING: Verdict.MISSING,
    Verdict.CONTRADICTED: Verdict.CONTRADICTED,
}

YesNo = Literal["YES", "PARTIAL", "NO", "CONTRADICTED"]
YESNO_VERDICT: dict[str, Verdict] = {
    "YES": Verdict.COVERED,
    "PARTIAL": Verdict.PARTIAL,
    "NO": Verdict.MISSING,
    "CONTRADICTED": Verdict.CONTRADICTED,
}


class PointVerdict(BaseModel):
    """The model's verdict on one rubric point (rubric mode)."""

    model_config = ConfigDict(extra="ignore")
    point_id: str
    verdict: Verdict
    evidence: str | None = None
    reason: str | None = None

    @field_validator("verdict", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        # "Covered" and " PARTIAL " mean what they say; retrying a call over letter case wastes tokens.
        return value.strip().lower() if isinstance(value, str) else value


class RubricJudgement(BaseModel):
    """The model's reply in rubric mode: one verdict per rubric point."""

    model_config = ConfigDict(extra="ignore")
    verdicts: list[PointVerdict]


class YesNoJudgement(BaseModel):
    """The model's reply in yes/no mode, for one rubric point."""

    model_config = ConfigDict(extra="ignore")
    answer: YesNo
    # maxLength reaches the model as part of the schema (llama.cpp turns it into its grammar), so a small model that
    # keeps quoting cannot run past max_tokens and fail the whole point; a longer quote from any model is cut, and a
    # prefix of a verbatim quote is still verbatim.
    evidence: str | None = Field(default=None, max_length=YESNO_EVIDENCE_CHARS)

    @field_validator("evidence", mode="before")
    @classmethod
    def _cut(cls, value: object) -> object:
        return value[:YESNO_EVIDENCE_CHARS] if isinstance(value, str) else value

    @field_validator("answer", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper().rstrip(".") if isinstance(value, str) else value


def rubric_schema(point_ids: list[str]) -> type[RubricJudgement]:
    """RubricJudgement whose JSON schema lists the point ids, so constrained decoding can only emit known ids.

    Validation stays lenient (any string, any count): unknown ids are ignored and missing ones become
    `missing` in code, which is cheaper than a retry.
    """

    class _Judgement(RubricJudgement):
        @classmethod
        def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
            schema = super().model_json_schema(*args, **kwargs)
            item = schema.get("$defs", {}).get("PointVerdict", {}).get("properties", {}).get("point_id")
            if isinstance(item, dict):
                item["enum"] = list(point_ids)
            verdicts = schema.get("properties", {}).get("verdicts")
            if isinstance(verdicts, dict):
                verdicts["minItems"] = verdicts["maxItems"] = len(point_ids)
            return schema

    _Judgement.__name__ = _Judgement.__qualname__ = "RubricJudgement"
    return _Judgement


@dataclass(frozen=True)
class RawVerdict:
    """A model's verdict before verification."""

    verdict: Verdict
    evidence: str | None = None
    reason: str | None = None


def answer_fence(answer: str) -> str:
    """A delimiter derived from the answer's hash, so the answer cannot contain its own closing tag."""
    return "answer-" + hashlib.sha256(answer.encode("utf-8")).hexdigest()[:10]


def _trim(quote: str) -> str:
    """The quote without wrapping quote marks, whitespace or leading/trailing ellipses."""
    return _ELLIPSIS.sub("", quote.strip(_QUOTE_TRIM)).strip(_QUOTE_TRIM)


def verify_quote(answer: str, quote: str | None) -> str | None:
    """The answer's own characters for `quote` (trimmed; exact, then case- and whitespace-insensitive), or None."""
    text = _trim(quote or "")
    if not has_substance(text):
        return None
    if text in answer:
        return text
    # A model that re-cases a word or reflows a line break quoted the right passage; return the answer's own text.
    pattern = r"\s+".join(re.escape(word) for word in text.split())
    found = re.search(pattern, answer, re.IGNORECASE)
    return answer[found.start() : found.end()] if found else None


def _normal_id(point_id: str) -> str:
    return point_id.strip().strip("`'\"").strip().lower()


def finalise(rubric: list[RubricPoint], answer: str, raw: dict[str, RawVerdict]) -> list[CriterionVerdict]:
    """One CriterionVerdict per rubric point, in rubric order, with every quote verified against the answer."""
    out: list[CriterionVerdict] = []
    for point in rubric:
        found = raw.get(_normal_id(point.id))
        if found is None:
            out.append(_verdict(point, Verdict.MISSING, None, "the model gave no verdict for this point"))
            continue
        verdict, note = found.verdict, found.reason
        if verdict is Verdict.MISSING:
            out.append(_verdict(point, verdict, None, note))  # a quote for a missing point shows nothing
            continue
        evidence = verify_quote(answer, found.evidence)
        if evidence is not None and is_instruction_to_grader(evidence):
            evidence = None  # text addressed to the grader is never evidence
        # Every credited verdict must point at the candidate's own words: a quote that is not in the
        # answer, or no quote at all, lowers the verdict one step.
        if evidence is None and (has_substance(_trim(found.evidence or "")) or verdict in (Verdict.COVERED, Verdict.PARTIAL)):
            lowered = DOWNGRADE[verdict]
            reason = "the quoted evidence is not in the answer" if has_substance(_trim(found.evidence or "")) else "no quote backs it"
            if lowered is verdict:
                note = f"{reason}, so none is shown"
            else:
                note = f"{reason}: lowered from {verdict.value} to {lowered.value}"
            verdict = lowered
        out.append(_verdict(point, verdict, None if verdict is Verdict.MISSING else evidence, note))
    return out


def _verdict(point: RubricPoint, verdict: Verdict, evidence: str | None, note: str | None) -> CriterionVerdict:
    return CriterionVerdict(
        point_id=point.id,
        point=point.text,
        weight=point.weight,
        verdict=verdict,
        credit=VERDICT_CREDIT[verdict],
        evidence=evidence,
        note=(note or None) and note.strip()[:300],
    )


class LLMJudge:
    """GradingEngine backed by a language model; verdicts come from the model, credits and quote checks from code."""

    def __init__(self, settings: Settings | None = None, llm: ChatModel | None = None, *, mode: str | None = None) -> None:
        self.settings = settings or get_settings()
        self.llm: ChatModel = llm if llm is not None else LLM(self.settings)
        self.name = f"llm:{self.llm.model}"
        requested = (mode or self.settings.judge_mode).strip().lower()
        if requested not in MODES:
            raise ConfigError(f"MOCKML_JUDGE_MODE: {requested!r} is not one of {', '.join(MODES)}")
        if requested == "auto":
            # The small embedded model only grades reliably one point at a time.
            requested = "yesno" if self.llm.model.strip().lower() == "local" else "rubric"
        self.mode = requested

    def judge(self, question: str, rubric: list[RubricPoint], answer: str) -> list[CriterionVerdict]:
        """One CriterionVerdict per rubric point, in rubric order; raises LLMError when the model fails."""
        if not rubric:
            return []
        if not has_substance(answer):
            # Nothing to grade: no model call, no tokens.
            return [_verdict(p, Verdict.MISSING, None, "no answer was given") for p in rubric]
        # Sentences addressed to the grader are removed before the model reads the answer (they can never earn credit
        # and a small model obeys them); quotes are still checked against the whole answer the candidate gave.
        shown = without_instructions(answer)
        if not has_substance(shown):
            return [_verdict(p, Verdict.MISSING, None, "the answer only addressed the grader") for p in rubric]
        raw = self._rubric(question, rubric, shown) if self.mode == "rubric" else self._yesno(question, rubric, shown)
        return finalise(rubric, answer, raw)

    def _rubric(self, question: str, rubric: list[RubricPoint], answer: str) -> dict[str, RawVerdict]:
        prompt = render("grader.md", question=question, rubric=rubric, answer=answer, fence=answer_fence(answer))
        reply = self.llm.complete_json(
            [{"role": "user", "content": prompt}],
            rubric_schema([p.id for p in rubric]),
            temperature=0.0,
            max_tokens=RUBRIC_MAX_TOKENS,
        )
        known = {_normal_id(p.id) for p in rubric}
        raw: dict[str, RawVerdict] = {}
        for item in reply.verdicts:
            key = _normal_id(item.point_id)
            if key not in known:
                logger.info("judge %s: ignoring a verdict for unknown rubric point %r", self.name, item.point_id[:80])
                continue
            raw.setdefault(key, RawVerdict(item.verdict, item.evidence, item.reason))  # the first verdict wins
        return raw

    def _yesno(self, question: str, rubric: list[RubricPoint], answer: str) -> dict[str, RawVerdict]:
        fence = answer_fence(answer)
        raw: dict[str, RawVerdict] = {}
        for point in rubric:
            prompt = render("grader_yesno.md", question=question, point=point, answer=answer, fence=fence)
            reply = self.llm.complete_json(
                [{"role": "user", "content": prompt}], YesNoJudgement, temperature=0.0, max_tokens=YESNO_MAX_TOKENS
            )
            raw[_normal_id(point.id)] = RawVerdict(YESNO_VERDICT[reply.answer], reply.evidence)
        return raw

"""The question bank: pydantic schema, YAML loader and the `bank check` validator.

Each `knowledge/<track>.yaml` holds `track:` and a list of `questions:`; `knowledge/closing.yaml`
holds the questions a candidate can ask the interviewer. Problems are reported as
`file:line: what is wrong` so that an author can jump straight to them.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from app.errors import BadInput

SEED_FILES: tuple[str, ...] = (
    "000_ab7ac86d6989dbcc.txt",
    "001_a0e9b673460a1715.txt",
    "002_b2dbb035a27f1158.txt",
    "003_6671d12fd38aa6f0.txt",
    "004_b8ea379b104babce.txt",
)
AUTHORED = "mockml"  # source name of model answers written by the mockml authors
SLUG = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
MIN_BANK_RUBRIC = 3  # derived rubrics (from a reference answer) may be shorter; bank questions may not


class Track(StrEnum):
    """Interview tracks; a session mixes one or more of them."""

    ML_FUNDAMENTALS = "ml-fundamentals"
    DEEP_LEARNING = "deep-learning"
    NLP_LLMS = "nlp-llms"
    EVALUATION_STATISTICS = "evaluation-statistics"
    PRODUCTION_MLOPS = "production-mlops"
    ML_SYSTEM_DESIGN = "ml-system-design"
    CODING = "coding"
    BEHAVIORAL = "behavioral"
    SITUATIONAL = "situational"


class Kind(StrEnum):
    THEORY = "theory"
    PRACTICAL = "practical"
    SYSTEM_DESIGN = "system_design"
    BEHAVIORAL = "behavioral"
    SITUATIONAL = "situational"
    CODING = "coding"
    LLM = "llm"


class Level(StrEnum):
    JUNIOR = "junior"
    MID = "mid"
    SENIOR = "senior"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class RubricPoint(_Strict):
    """One claim a strong answer makes; `key_terms` entries may list synonyms as `a|b`."""

    id: str = Field(pattern=SLUG)
    text: str = Field(min_length=10)
    weight: float = Field(gt=0, le=5)
    key_terms: tuple[str, ...] = ()
    # Wrong versions of this claim that candidates commonly give, in a candidate's words. The whole-rubric
    # LLM prompt shows them (a named wrong version is easier to recognise than "anything wrong"), and the
    # report lists them beside the points a candidate missed. The offline grader contradicts a point whose best
    # sentence reads as one (`OfflineEngine.misconception`). Not shown to the one-point prompt for small local
    # models (they graded worse with them; measured in issue #4). Never indexed for retrieval.
    misconceptions: tuple[Annotated[str, Field(min_length=20, max_length=300)], ...] = Field(default=(), max_length=3)

    def term_alternatives(self) -> list[list[str]]:
        """Each key term as its list of accepted spellings."""
        return [[alt.strip().lower() for alt in term.split("|") if alt.strip()] for term in self.key_terms]


class ModelAnswer(_Strict):
    """A reference answer, credited to the seed document it came from (or `mockml`)."""

    source: str
    text: str = Field(min_length=20)


class FollowUp(_Strict):
    """A probing question, optionally aimed at one rubric point."""

    text: str = Field(min_length=10)
    probes: str | None = None
    source: str | None = None


class Source(_Strict):
    """Where a question comes from: a seed file, its section, and its wording verbatim."""

    seed: str
    section: str | None = None
    original: str = Field(min_length=5)

    @field_validator("seed")
    @classmethod
    def _known_seed(cls, seed: str) -> str:
        if seed not in SEED_FILES:
            raise ValueError(f"unknown seed file {seed!r}; expected one of {', '.join(SEED_FILES)}")
        return seed


class Question(_Strict):
    """One interview question with everything needed to ask, probe and grade it."""

    id: str = Field(pattern=SLUG)
    text: str = Field(min_length=10)
    track: Track
    topic: str = Field(pattern=SLUG)
    kind: Kind
    level: Level
    rubric: tuple[RubricPoint, ...] = Field(min_length=1, max_length=7)
    model_answers: tuple[ModelAnswer, ...] = Field(min_length=1)
    follow_ups: tuple[FollowUp, ...] = ()
    red_flags: tuple[str, ...] = ()
    sources: tuple[Source, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Question:
        ids = [p.id for p in self.rubric]
        dupes = {i for i in ids if ids.count(i) > 1}
        if dupes:
            raise ValueError(f"duplicate rubric point id(s): {', '.join(sorted(dupes))}")
        for f in self.follow_ups:
            if f.probes is not None and f.probes not in ids:
                raise ValueError(f"follow-up points at missing rubric point {f.probes!r} (have: {', '.join(ids)})")
        for a in self.model_answers:
            if a.source != AUTHORED and a.source not in SEED_FILES:
                raise ValueError(f"model answer source {a.source!r} is not a seed file or {AUTHORED!r}")
        return self

    def point(self, point_id: str) -> RubricPoint:
        """The rubric point with this id."""
        return next(p for p in self.rubric if p.id == point_id)

    @property
    def total_weight(self) -> float:
        return sum(p.weight for p in self.rubric)


class ClosingQuestion(_Strict):
    """A question the candidate can ask the interviewer at the end."""

    text: str = Field(min_length=10)
    why: str
    source: str


class Bank(BaseModel):
    """The loaded, validated question bank."""

    model_config = ConfigDict(frozen=True)
    questions: tuple[Question, ...]
    closing: tuple[ClosingQuestion, ...] = ()

    def get(self, question_id: str) -> Question:
        """The question with this id, or a BadInput that names close matches."""
        for q in self.questions:
            if q.id == question_id:
                return q
        near = [q.id for q in self.questions if question_id.split("-")[0] in q.id][:5]
        hint = f" (did you mean: {', '.join(near)}?)" if near else " (list ids with `mockml search QUERY`)"
        raise BadInput(f"unknown question id {question_id!r}{hint}")

    def has(self, question_id: str) -> bool:
        return any(q.id == question_id for q in self.questions)

    @property
    def by_id(self) -> dict[str, Question]:
        return {q.id: q for q in self.questions}


@dataclass(frozen=True)
class Problem:
    """One validation problem, located in a file."""

    file: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class _LineLoader(yaml.SafeLoader):
    """A SafeLoader that remembers the line of every mapping (as `__line__`) and refuses aliases."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        # A bank file has no use for anchors; an alias can make a recursive structure or a "billion laughs" one
        # that the loader would walk forever.
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in the bank: write the value out", mark)
        return super().compose_node(parent, index)


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _strip_lines(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_lines(v) for k, v in value.items() if k != "__line__"}
    if isinstance(value, list):
        return [_strip_lines(v) for v in value]
    return value


def _line_of(raw: Any, loc: tuple[int | str, ...], default: int) -> int:
    """The line of the deepest mapping on a pydantic error location."""
    line, node = default, raw
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
        if isinstance(node, dict) and "__line__" in node:
            line = node["__line__"]
    return line


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", text))).strip().lower()


@lru_cache(maxsize=8)
def _seed_text(seeds_dir: Path, seed: str) -> str | None:
    path = seeds_dir / seed
    return _normalise(path.read_text(encoding="utf-8")) if path.is_file() else None


def _parse_file(path: Path) -> tuple[Any, list[Problem]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(path, 1, f"cannot read file: {exc}")]
    try:
        return yaml.load(text, Loader=_LineLoader), []  # noqa: S506 - _LineLoader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return None, [Problem(path, line, f"bad YAML: {what}")]
    except RecursionError:
        return None, [Problem(path, 1, "bad YAML: nested too deeply")]


def _check_question(path: Path, raw: dict[str, Any], track: Any, index: int) -> tuple[Question | None, list[Problem]]:
    line = raw.get("__line__", 1)
    data = _strip_lines(raw)
    data.setdefault("track", track)
    try:
        return Question.model_validate(data), []
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "question"
            qid = data.get("id", f"#{index + 1}")
            message = err["msg"].removeprefix("Value error, ")
            problems.append(Problem(path, _line_of(raw, err["loc"], line), f"question {qid}: {where}: {message}"))
        return None, problems


def load_file(path: Path) -> tuple[list[Question], list[ClosingQuestion], list[Problem]]:
    """Parse one bank file into questions and closing questions, collecting every problem."""
    raw, problems = _parse_file(path)
    if problems:
        return [], [], problems
    if not isinstance(raw, dict):
        return [], [], [Problem(path, 1, "expected a mapping with `track:` and `questions:` (or `closing:`)")]
    questions: list[Question] = []
    closing: list[ClosingQuestion] = []
    for key in ("questions", "closing"):
        if raw.get(key) is not None and not isinstance(raw[key], list):
            problems.append(Problem(path, raw.get("__line__", 1), f"`{key}:` must be a list"))
    if problems:
        return [], [], problems
    for i, item in enumerate(raw.get("closing") or []):
        try:
            closing.append(ClosingQuestion.model_validate(_strip_lines(item)))
        except ValidationError as exc:
            msg = exc.errors()[0]["msg"]
            problems.append(Problem(path, item.get("__line__", 1) if isinstance(item, dict) else 1, f"closing #{i + 1}: {msg}"))
    items = raw.get("questions")
    if "closing" not in raw and not items:
        problems.append(Problem(path, raw.get("__line__", 1), "no questions: add a `questions:` list"))
    for i, item in enumerate(items or []):
        if not isinstance(item, dict):
            problems.append(Problem(path, 1, f"question #{i + 1}: expected a mapping"))
            continue
        question, found = _check_question(path, item, raw.get("track"), i)
        problems += found
        if question and not MIN_BANK_RUBRIC <= len(question.rubric) <= 7:
            line = _line_of(item, ("rubric",), item.get("__line__", 1))
            problems.append(Problem(path, line, f"question {question.id}: rubric has {len(question.rubric)} point(s); a bank question needs {MIN_BANK_RUBRIC}–7"))
        if question:
            questions.append(question)
    return questions, closing, problems


def _check_originals(path: Path, raw: Any, questions: Iterable[Question], seeds_dir: Path) -> list[Problem]:
    """Every `original:` must be a verbatim quote of its seed (whitespace and HTML aside)."""
    problems: list[Problem] = []
    lines = {item.get("id"): item for item in (raw or {}).get("questions") or [] if isinstance(item, dict)}
    for q in questions:
        for j, src in enumerate(q.sources):
            seed = _seed_text(seeds_dir, src.seed)
            if seed is not None and _normalise(src.original) not in seed:
                line = _line_of(lines.get(q.id, {}), ("sources", j), lines.get(q.id, {}).get("__line__", 1))
                problems.append(Problem(path, line, f"question {q.id}: sources.{j}.original is not a verbatim quote of {src.seed}"))
    return problems


def check(knowledge_dir: Path, seeds_dir: Path | None = None) -> tuple[Bank, list[Problem]]:
    """Load every bank file and return the bank plus every problem found (empty when clean)."""
    if not knowledge_dir.is_dir():
        raise BadInput(f"knowledge directory {knowledge_dir} does not exist: set MOCKML_KNOWLEDGE_DIR")
    files = sorted(knowledge_dir.glob("*.yaml"))
    if not files:
        raise BadInput(f"no *.yaml files in {knowledge_dir}: set MOCKML_KNOWLEDGE_DIR to the bank folder")
    questions: list[Question] = []
    closing: list[ClosingQuestion] = []
    problems: list[Problem] = []
    seen: dict[str, Path] = {}
    for path in files:
        found_q, found_c, found_p = load_file(path)
        problems += found_p
        closing += found_c
        if seeds_dir is not None and seeds_dir.is_dir() and found_q:
            problems += _check_originals(path, _parse_file(path)[0], found_q, seeds_dir)
        for q in found_q:
            if q.id in seen:
                raw = _parse_file(path)[0]
                line = next((i.get("__line__", 1) for i in raw.get("questions", []) if isinstance(i, dict) and i.get("id") == q.id), 1)
                problems.append(Problem(path, line, f"duplicate question id {q.id!r} (first defined in {seen[q.id].name})"))
                continue
            seen[q.id] = path
            questions.append(q)
    return Bank(questions=tuple(questions), closing=tuple(closing)), problems


def load_bank(knowledge_dir: Path) -> Bank:
    """Load the bank, raising BadInput with the first problems when it is not clean."""
    bank, problems = check(knowledge_dir)
    if problems:
        shown = "; ".join(str(p) for p in problems[:3])
        raise BadInput(f"the question bank has {len(problems)} problem(s): {shown} (run `mockml bank check`)")
    return bank

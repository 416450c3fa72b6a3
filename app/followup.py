"""Follow-up questions and hints that adapt to the answer, the way a sharp human interviewer probes.

`choose_follow_up` aims at the heaviest rubric point the answer contradicted, missed or only partly made, and
never at one the scorecard marks covered. Offline it tries, in order, the bank's own follow-ups that probe that
point, then templates built from the point (an angle read from the point's wording, e.g. "how would you diagnose
it", applied to a short area phrase such as the point's subject, its id or the question's topic); a strong answer
gets a deeper probe instead (trade-offs, scale, failure modes, production). With a language model it asks for one
question in a schema and checks the reply in code, falling back to the offline choice on any failure.

Every candidate text is checked in code before it is returned: at most 40 words, ends with "?", not asked before,
and it must not give the answer away: no key term of the point that neither the candidate nor the question used,
and no run of more than four consecutive words of the point's text that the candidate did not say.
"""

from __future__ import annotations

import logging
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.bank import Kind, Question, RubricPoint
from app.errors import LLMError, MockmlError
from app.grading.judge import answer_fence
from app.grading.models import CriterionVerdict, Scorecard, Verdict
from app.llm import ChatModel
from app.prompts import render
from app.text import STOPWORDS, content_stems, stem, words

__all__ = ["FollowUpChoice", "FollowUpReply", "MAX_WORDS", "choose_follow_up", "hint", "leaks", "topic_phrase"]
log = logging.getLogger("mockml.followup")

MAX_WORDS = 40
NGRAM = 5  # "more than four consecutive words of the point" is a giveaway
QUOTE_WORDS = 12  # how much of the candidate's own sentence a follow-up may quote back
LLM_MAX_TOKENS = 200
LLM_TEMPERATURE = 0.2

Reason = Literal["missed", "partial", "contradicted", "deeper"]
_REASON: dict[Verdict, Reason] = {Verdict.MISSING: "missed", Verdict.PARTIAL: "partial", Verdict.CONTRADICTED: "contradicted"}
# A wrong claim is probed before a missing one, and a missing one before a half-made one, at equal weight.
_URGENCY: dict[Verdict, int] = {Verdict.CONTRADICTED: 0, Verdict.MISSING: 1, Verdict.PARTIAL: 2}


class FollowUpChoice(BaseModel):
    """One follow-up question, the rubric point it probes (None for a deeper probe), why, and where it came from."""

    model_config = ConfigDict(frozen=True)
    text: str = Field(description="one question, at most 40 words, ending with '?'")
    target_point: str | None = Field(description="the rubric point id it probes; None for a deeper probe")
    reason: Reason
    source: Literal["bank", "template", "llm"]

    @field_validator("text")
    @classmethod
    def _one_short_question(cls, text: str) -> str:
        text = " ".join(text.split())
        if not text.endswith("?"):
            raise ValueError("a follow-up must end with '?'")
        if len(text.split()) > MAX_WORDS:
            raise ValueError(f"a follow-up must be at most {MAX_WORDS} words")
        return text


class FollowUpReply(BaseModel):
    """What the language model is asked for: one question and the rubric point it probes (null for a deeper probe)."""

    model_config = ConfigDict(extra="ignore")
    question: str
    target_point: str | None = None


# ---- the giveaway check ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Text:
    """A text prepared for term and n-gram look-ups."""

    stems: frozenset[str]  # content-word stems
    sequence: str  # every word's stem, in order, space-joined and padded (for phrase look-ups)
    grams: frozenset[tuple[str, ...]]

    @classmethod
    def of(cls, text: str) -> _Text:
        every = [stem(w) for w in words(text)]
        grams = frozenset(tuple(every[i : i + NGRAM]) for i in range(len(every) - NGRAM + 1))
        return cls(frozenset(content_stems(text)), f" {' '.join(every)} ", grams)


@dataclass(frozen=True)
class _Term:
    """One key-term alternative: its word stems and its content-word stems."""

    every: tuple[str, ...]
    content: tuple[str, ...]


@lru_cache(maxsize=1024)
def _prepared(text: str) -> _Text:
    """`_Text.of`, cached: the same answer and rubric texts are checked against every candidate follow-up."""
    return _Text.of(text)


@lru_cache(maxsize=4096)
def _alternative(term: str) -> _Term:
    return _Term(tuple(stem(w) for w in words(term)) or (stem(term),), tuple(content_stems(term)))


def _uses(text: _Text, alt: _Term) -> bool:
    """The text mentions this key-term alternative.

    One word: its stem (or, for stems of five letters or more, a word starting with it, as the grader matches
    "memoriz"). Several words: the phrase, or every content word of it when it has more than one ("more data" is
    the phrase "more data", not any mention of data).
    """
    if len(alt.every) == 1:
        s = alt.every[0]
        return s in text.stems or f" {s} " in text.sequence or (len(s) >= 5 and any(w.startswith(s) for w in text.stems))
    if f" {' '.join(alt.every)} " in text.sequence:
        return True
    return len(alt.content) > 1 and all(c in text.stems for c in alt.content)


def leaks(text: str, point: RubricPoint, known: str) -> str | None:
    """Why `text` would give `point` away to someone who has said `known` (None when it does not).

    A giveaway is a key term of the point that `known` (the candidate's answer plus the question) never uses, or
    more than four consecutive words of the point's text that are not in `known` either.
    """
    probe, said = _prepared(text), _prepared(known)
    for alts in point.term_alternatives():
        for term in alts:
            alt = _alternative(term)
            if _uses(probe, alt) and not _uses(said, alt):
                return f"names the key term {term!r}"
    copied = (probe.grams & _prepared(point.text).grams) - said.grams
    if copied:
        return f"repeats the point's words {' '.join(sorted(copied)[0])!r}"
    return None


# ---- phrasing helpers -----------------------------------------------------------------------------------------

_ACRONYMS = {"ml": "ML", "llm": "LLM", "llms": "LLMs", "nlp": "NLP", "ab": "A/B", "gpu": "GPU", "rag": "RAG", "api": "API",
             "cnn": "CNN", "rnn": "RNN", "sql": "SQL", "etl": "ETL", "svm": "SVM", "pca": "PCA", "roc": "ROC", "auc": "AUC"}
_FUNCTION = frozenset("a an the and or of for to in on at by with vs versus each all is are how why what when do does".split())
_GENERIC_HEADS = frozenset(
    """candidate story answer reflection mentor outcome result results project approach process ask case concept issue
    problem both it this that they these those each all there first then start one two answers stakeholder data model
    models training choice gains example""".split()
)
# Words that open an imperative rubric point ("Start by clarifying …"): such a point has no subject to name.
_IMPERATIVE = frozenset(
    """start define give build communicate first before raise seed use ask check clarify restate set write add keep make
    compare pick choose prefer plan run avoid treat log fix name explain split train measure monitor agree flag
    document estimate propose frame offer push escalate""".split()
)
_VERBS = frozenset(
    """is are was were has have had must should can could may might will would need needs uses use comes come applies apply
    sets keeps gives makes means starts names plots reads adds include includes range ranges trains computes receives
    measures scales depends remains matters lets helps combines splits creates builds runs returns selects produces turns
    cuts trades drives pairs rotates explains slides showed shows lies ignores differ differs sit sits scores affects
    requires works holds reduces increases lowers raises only often usually also typically generally tends tend fail fails
    learn learns map maps beats""".split()
)
_VERB_IDS = frozenset(_IMPERATIVE | set(
    """diagnose decide measure profile combine fine escalate attribute communicate reduce split design choosing fit refit
    match track which when why how what""".split()
))
_GENERIC_IDS = frozenset("use choice tuning scale definition cache data model models training gains detection".split())
_DANGLING = frozenset("several many few every other such and or".split())
_CLAUSE_END = re.compile(r"[;:(—–]| - |, (?:so|which|while|but|and|because|since|where)\b| such as | for example")


def _display(word: str) -> str:
    """A word as it reads mid-sentence: 'Bias' -> 'bias', acronyms and CamelCase kept."""
    low = word.lower()
    if low in _ACRONYMS:
        return _ACRONYMS[low]
    if word[:1].isupper() and (word[1:].islower() or not any(c.isupper() for c in word[1:])):
        return low
    return word


def topic_phrase(question: Question) -> str:
    """The question's topic as words: 'classification-metrics' -> 'classification metrics'."""
    return " ".join(_display(w) for w in question.topic.split("-"))


def _subject(point: RubricPoint) -> str | None:
    """The subject of the point's first clause ('High variance is reduced with …' -> 'high variance'), if it has one.

    Rubric points are declarative claims, so the words before the first verb usually name what the claim is about;
    anything that does not look like a short noun phrase is refused (the caller falls back to the id or topic).
    """
    clause = _CLAUSE_END.split(point.text, maxsplit=1)[0]
    tokens = clause.split()
    if not tokens or tokens[0].lower().strip(",.") in _IMPERATIVE:
        return None
    for i, tok in enumerate(tokens[1:7], start=1):
        if tok.lower().strip(",.") in _VERBS:
            subject = tokens[:i]
            break
    else:
        return None
    low = [t.lower() for t in subject]
    if len(subject) > 4 or any(t.endswith(",") for t in subject) or not re.fullmatch(r"[\w' /+-]+", " ".join(subject)):
        return None
    if low[-1] in STOPWORDS | _DANGLING or low[-1].endswith("ly"):
        return None  # "averaging over several", "chunking strongly": the phrase stops mid-thought
    if low[-1] in _GENERIC_HEADS or low[0] in _GENERIC_HEADS or (low[0] in STOPWORDS and low[0] not in ("a", "an", "the")):
        return None  # "The candidate …", "Because outputs …", "For semantic search …" name no area
    if any(len(t) < 2 for t in low[1:] + ([] if low[0] in ("a", "an") else [low[0]])):
        return None  # "B is initialised to zero": a bare symbol is not an area
    return " ".join(_display(t) for t in subject)


def _id_phrase(point: RubricPoint) -> str | None:
    """The point's id as words, without dangling function words ('remedies-for-each' -> 'remedies')."""
    parts = [p for p in point.id.split("-") if p]
    while parts and (parts[0] in _FUNCTION or len(parts[0]) < 3):
        parts.pop(0)
    while parts and (parts[-1] in _FUNCTION or len(parts[-1]) < 3):
        parts.pop()
    if not parts or all(p in _FUNCTION for p in parts) or parts[0] in _VERB_IDS or parts[0].endswith(("ify", "ize", "ise", "ate")):
        return None  # "clarify-problem", "justify-empirically": an action, not an area
    if len(parts) == 1 and (parts[0] in _GENERIC_HEADS | _GENERIC_IDS or parts[0].endswith(("ous", "ive", "ful", "able", "ible"))):
        return None
    if any(p in _VERBS for p in parts):
        return None  # "losses-differ", "which-models-need-it"
    return " ".join(_ACRONYMS.get(p, "versus" if p == "vs" else p) for p in parts)


def _areas(question: Question, point: RubricPoint, known: str) -> list[tuple[str, bool]]:
    """Short names for the point's area, best first, each checked not to give the point away.

    Each comes with whether it names the point itself (its subject) rather than its label or the question's topic:
    only such a name reads well in the angled templates ("what would you actually do about high variance?").
    """
    out: list[tuple[str, bool]] = []
    for area, own in ((_subject(point), True), (_id_phrase(point), False), (topic_phrase(question), False)):
        if area and area.lower() not in (a.lower() for a, _ in out) and leaks(area, point, known) is None:
            out.append((area, own))
    return out


def _quote(evidence: str | None) -> str | None:
    """The start of the candidate's own sentence, fit to be quoted back in a question."""
    if not evidence:
        return None
    tokens = re.sub(r"[?\"“”]", "", " ".join(evidence.split())).strip(" .,;:").split()
    if len(tokens) < 3:
        return None
    cut = " ".join(tokens[:QUOTE_WORDS])
    return cut + ("…" if len(tokens) > QUOTE_WORDS else "")


_IMPERATIVE_FOLLOW_UP = re.compile(r"^(walk me through|explain|show|derive|prove|estimate|write down|give|describe|sketch|compute|calculate)\b", re.IGNORECASE)


def _as_question(text: str) -> str | None:
    """A bank follow-up as one question: 'Walk me through X.' becomes 'Can you walk me through X?'."""
    text = " ".join(text.split())
    if text.endswith("?"):
        return text
    sentences = re.split(r"(?<=[.!])\s+", text.rstrip())
    last = sentences[-1].rstrip(".!")
    if not _IMPERATIVE_FOLLOW_UP.match(last):
        return None
    sentences[-1] = "Can you " + last[0].lower() + last[1:] + "?"
    return " ".join(sentences)


def _same(a: str, b: str) -> bool:
    return " ".join(words(a)) == " ".join(words(b))


def _rotate(items: Sequence[str], key: str) -> list[str]:
    """The items starting at a stable, key-dependent offset: varied across points, identical across runs."""
    if not items:
        return []
    k = zlib.crc32(key.encode("utf-8")) % len(items)
    return list(items[k:]) + list(items[:k])


# ---- templates ------------------------------------------------------------------------------------------------

# (angle, cue in the point's wording, follow-up templates, hint templates); the first angles whose cue matches are
# used first. Every template names only the area, never what a good answer says about it.
_ANGLES: tuple[tuple[str, re.Pattern[str], tuple[str, ...], tuple[str, ...]], ...] = (
    ("diagnose", re.compile(r"diagnos|detect|warning sign|\bsigns?\b|\bspot|notic|tell (?:whether|which|if)|debug|root cause"),
     ("When it comes to {area}, how would you diagnose what is actually going on?",
      "How would you notice a problem with {area} before it hurts you?"),
     ("Think about how you would notice or diagnose trouble with {area}.",)),
    ("remedy", re.compile(r"\breduc(?:e|es|ed|ing)\b|\bprevent|\bfix(?:es|ed|ing)?\b|mitigat|remed|\bavoid|guard against|\bcounter"),
     ("When it comes to {area}, what would you actually do about it?",
      "If {area} turned out to be the problem, what would you change first?"),
     ("Think about what you would actually do about {area}.",)),
    ("production", re.compile(r"production|monitor|serving|deploy|latency|on-call|rollout|canary|shadow"),
     ("How does {area} play out once the model is in production?",),
     ("Think about what happens with {area} once the model is live.",)),
    ("tradeoff", re.compile(r"trade|versus|\bvs\b|at the cost|instead of|rather than|whereas"),
     ("What do you gain and what do you give up when it comes to {area}?",),
     ("Think about what you gain and what you give up with {area}.",)),
    ("conditions", re.compile(r"\bwhen\b|\bunless\b|\bif\b|\bonly\b"),
     ("Under what conditions does {area} matter, and when does it not?",),
     ("Think about the conditions under which {area} matters.",)),
    ("mechanism", re.compile(r"because|since|so that|\bcauses?\b|which means|\bwhy\b"),
     ("Why does {area} behave the way it does: what is the mechanism?",),
     ("Think about the mechanism behind {area}: why does it happen?",)),
    ("quantify", re.compile(r"measur|quantif|percent"),
     ("How would you put numbers on {area}?",),
     ("Think about how you would put a number on {area}.",)),
    ("example", re.compile(r"such as|for example|e\.g\.|including"),
     ("Can you give a concrete example involving {area}?",),
     ("A concrete example involving {area} would strengthen your answer.",)),
    ("definition", re.compile(r"^\S+(?: \S+){0,4} (?:is|are|means)\b"),
     ("How would you define {area} precisely, in your own words?",),
     ("Think about what {area} means, precisely.",)),
)
_MISSED = (
    "You didn't touch on {area}; how would you approach that?",
    "What can you tell me about {area}?",
    "We haven't talked about {area} yet. How does it fit into your answer?",
    "Before we move on, where does {area} come into this?",
)
_PARTIAL = (
    "You started on {area}; can you finish that thought with specifics?",
    "Can you be more precise about {area}? What exactly happens there?",
    "Let's go one level deeper on {area}: how would you make that concrete?",
)
_PARTIAL_QUOTE = (
    "You said “{quote}”. Can you take that further and be more specific?",
    "Going back to “{quote}”: what exactly do you mean, concretely?",
)
_CONTRADICTED = (
    "I'd like to revisit what you said about {area}. Can you walk me through your reasoning again?",
    "Let's double-check {area}: does what you said hold up in every case?",
)
_CONTRADICTED_QUOTE = (
    "You said “{quote}”. How sure are you of that, and why?",
    "Earlier you said “{quote}”. Can you walk me through why that holds?",
)
_HINTS = (
    "Think about {area}: what would a complete answer say about it?",
    "A strong answer would also cover {area}.",
    "Consider where {area} comes into this question.",
)
_GENERIC_HINTS = (
    "Structure your answer: what it is, how it works, a concrete example, and a trade-off.",
    "Try grounding your answer in a concrete example from a project you worked on.",
    "Think about how this behaves in practice, not only in theory.",
)
_DONE_HINT = "Your answer covers the essentials; think about trade-offs and how this behaves at scale and in production."
_DEEPER_TECHNICAL = (
    "What trade-offs would you weigh around {topic} in a real project?",
    "How would your approach to {topic} change at a hundred times the data or traffic?",
    "What failure modes worry you most with {topic} in practice, and how would you catch them early?",
    "Once this is in production, what would you monitor around {topic}, and why?",
    "Where does your approach to {topic} break down, and what would you do instead?",
)
_DEEPER_STORY = (
    "Looking back on that {topic} story, what would you do differently today?",
    "What was the hardest trade-off in that situation, and what did you give up?",
    "How did you know it worked, and what would have told you it didn't?",
    "If the same thing happened at ten times the scale, what would change in how you handled it?",
)


def _angles(point: RubricPoint) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    text = " ".join(point.text.lower().split())
    return [(follow, hints) for _, cue, follow, hints in _ANGLES if cue.search(text)][:2]


# ---- choosing -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Gap:
    """An uncovered rubric point with its verdict."""

    point: RubricPoint
    verdict: Verdict
    evidence: str | None

    @property
    def reason(self) -> Reason:
        return _REASON[self.verdict]


def _gaps(question: Question, card: Scorecard | None) -> list[_Gap]:
    """Points not covered, heaviest first; at equal weight contradicted, then missed, then partial, then rubric order.

    A point the scorecard has no verdict for counts as missed.
    """
    by_id: dict[str, CriterionVerdict] = {v.point_id: v for v in (card.verdicts if card else [])}
    ranked: list[tuple[float, int, int, _Gap]] = []
    for i, p in enumerate(question.rubric):
        v = by_id.get(p.id)
        verdict = v.verdict if v else Verdict.MISSING
        if verdict is Verdict.COVERED:
            continue
        ranked.append((-p.weight, _URGENCY[verdict], i, _Gap(p, verdict, v.evidence if v else None)))
    return [g for *_, g in sorted(ranked, key=lambda r: r[:3])]


def _known(question: Question, card: Scorecard | None, answer: str | None) -> str:
    """What the candidate has heard or said: the question, plus the answer (or, without it, the evidence quotes)."""
    said = answer if answer is not None else " ".join(v.evidence for v in (card.verdicts if card else []) if v.evidence)
    return f"{question.text}\n{said}"


def _fits(text: str) -> bool:
    return text.endswith("?") and 0 < len(text.split()) <= MAX_WORDS


def _gap_candidates(question: Question, gap: _Gap, known: str) -> Iterator[tuple[str, Literal["bank", "template"]]]:
    """Every follow-up worth trying for one gap, best first (not yet checked)."""
    for f in question.follow_ups:
        if f.probes == gap.point.id:
            text = _as_question(f.text)
            if text:
                yield text, "bank"
    key = f"{question.id}/{gap.point.id}"
    quote = _quote(gap.evidence) if gap.verdict is not Verdict.MISSING else None
    if quote:
        for t in _rotate(_CONTRADICTED_QUOTE if gap.verdict is Verdict.CONTRADICTED else _PARTIAL_QUOTE, key):
            yield t.format(quote=quote), "template"
    general = {Verdict.MISSING: _MISSED, Verdict.PARTIAL: _PARTIAL, Verdict.CONTRADICTED: _CONTRADICTED}[gap.verdict]
    angled = [t for follow, _ in _angles(gap.point) for t in follow] if gap.verdict is Verdict.MISSING else []
    for area, own in _areas(question, gap.point, known):
        for t in (angled if own else []) + _rotate(general, key):
            yield t.format(area=area), "template"


def _deeper_candidates(question: Question) -> Iterator[tuple[str, Literal["bank", "template"]]]:
    for f in question.follow_ups:
        if f.probes is None:
            text = _as_question(f.text)
            if text:
                yield text, "bank"
    story = question.kind in (Kind.BEHAVIORAL, Kind.SITUATIONAL)
    for t in _rotate(_DEEPER_STORY if story else _DEEPER_TECHNICAL, question.id):
        yield t.format(topic=topic_phrase(question)), "template"


def _fresh(text: str, question: Question, asked: Sequence[str]) -> bool:
    return _fits(text) and not _same(text, question.text) and not any(_same(text, a) for a in asked)


def _offline(question: Question, card: Scorecard, asked: Sequence[str], answer: str | None) -> FollowUpChoice | None:
    known = _known(question, card, answer)
    gaps = _gaps(question, card)
    # A point already probed goes to the back of the queue: a human interviewer moves on rather than asking
    # about the same thing three ways (it stays in the queue in case nothing else is left). Each asked text is
    # credited to the gap it was chosen for, by replaying the choices in order (a topic-level template can be on
    # offer for several points).
    offers = {g.point.id: {" ".join(words(t)) for t, _ in _gap_candidates(question, g, known)} for g in gaps}
    probed: list[str] = []
    for text in asked:
        said = " ".join(words(text))
        order = [g for g in gaps if g.point.id not in probed] + [g for g in gaps if g.point.id in probed]
        hit = next((g.point.id for g in order if said in offers[g.point.id]), None)
        if hit is not None and hit not in probed:
            probed.append(hit)
    gaps = [g for g in gaps if g.point.id not in probed] + [g for g in gaps if g.point.id in probed]
    for gap in gaps:
        for text, source in _gap_candidates(question, gap, known):
            text = " ".join(text.split())
            if _fresh(text, question, asked) and leaks(text, gap.point, known) is None:
                return FollowUpChoice(text=text, target_point=gap.point.id, reason=gap.reason, source=source)
    if gaps:
        return None  # a weak answer with every probe used up: moving on beats a deeper probe it is not ready for
    for text, source in _deeper_candidates(question):
        text = " ".join(text.split())
        if _fresh(text, question, asked):
            return FollowUpChoice(text=text, target_point=None, reason="deeper", source=source)
    return None


def _llm(question: Question, card: Scorecard, asked: Sequence[str], llm: ChatModel, related: Sequence[str],
         answer: str | None, notes: list[str] | None = None) -> FollowUpChoice | None:
    """The model's follow-up if it passes every check, else None (and a log line saying why)."""
    gaps = _gaps(question, card)
    shown = answer if answer is not None else " ".join(v.evidence for v in card.verdicts if v.evidence)
    missing_ids = {g.point.id for g in gaps}
    covered = [p for p in question.rubric if p.id not in missing_ids]
    try:
        prompt = render(
            "followup.md",
            question=question.text,
            answer=shown or "(no answer recorded)",
            fence=answer_fence(shown),
            missed=[{"id": g.point.id, "text": g.point.text, "verdict": g.verdict.value, "weight": g.point.weight} for g in gaps],
            covered=[{"id": p.id, "text": p.text} for p in covered],
            related=[" ".join(r.split()) for r in related if r.strip()],
            asked=list(asked),
        )
        # The role, rules and reply format never change, so they go first, in the system message: a server with a
        # prompt cache (llama.cpp for the embedded model) then processes only the part about this answer.
        messages = [{"role": "system", "content": render("followup_system.md", max_words=MAX_WORDS)},
                    {"role": "user", "content": prompt}]
        reply = llm.complete_json(messages, FollowUpReply,
                                  temperature=LLM_TEMPERATURE, max_tokens=LLM_MAX_TOKENS)
    except (LLMError, MockmlError, ValidationError, ValueError) as exc:  # PromptError is a MockmlError too
        log.warning("follow-up from %s failed (%s); using the offline choice", getattr(llm, "model", "the model"), exc)
        if notes is not None:
            notes.append(f"the language model failed ({exc}); the follow-up question was chosen offline instead")
        return None
    problem = _llm_problem(reply, question, gaps, asked, _known(question, card, answer))
    if problem:
        log.info("follow-up from %s rejected: %s; using the offline choice", getattr(llm, "model", "the model"), problem)
        return None
    target = (reply.target_point or "").strip() or None
    text = " ".join(reply.question.split()).strip("\"'“” ")
    reason: Reason = next((g.reason for g in gaps if g.point.id == target), "deeper")
    return FollowUpChoice(text=text, target_point=target, reason=reason, source="llm")


def _llm_problem(reply: FollowUpReply, question: Question, gaps: list[_Gap], asked: Sequence[str], known: str) -> str | None:
    """What is wrong with the model's follow-up, or None when it may be asked."""
    text = " ".join(reply.question.split()).strip("\"'“” ")
    if not text:
        return "empty question"
    if len(text.split()) > MAX_WORDS:
        return f"{len(text.split())} words (at most {MAX_WORDS})"
    if text.count("?") != 1 or not text.endswith("?"):
        return "not exactly one question ending with '?'"
    target = (reply.target_point or "").strip() or None
    open_ids = [g.point.id for g in gaps]
    if target is None and gaps:
        return "no target point although the answer has gaps"
    if target is not None and target not in open_ids:
        covered = any(p.id == target for p in question.rubric)
        return f"targets {'the covered point' if covered else 'an unknown point'} {target!r}"
    if not _fresh(text, question, asked):
        return "repeats a question already asked"
    for g in gaps:  # the model saw every open point, so it must give none of them away
        why = leaks(text, g.point, known)
        if why:
            return f"gives away {g.point.id!r}: {why}"
    return None


def choose_follow_up(
    question: Question,
    card: Scorecard,
    asked: Sequence[str] = (),
    *,
    llm: ChatModel | None = None,
    related: Sequence[str] = (),
    answer: str | None = None,
    notes: list[str] | None = None,
) -> FollowUpChoice | None:
    """The next follow-up for this answer, or None when nothing sensible remains; never raises on a model failure.

    `asked` holds the follow-ups already asked for this question; `answer` (optional) is the candidate's answer,
    used to tell which key terms they have already said (without it, the scorecard's evidence quotes stand in).
    When the model fails, a note for the user is appended to `notes` (if given) and the offline choice is used.
    """
    if llm is not None:
        choice = _llm(question, card, asked, llm, related, answer, notes)
        if choice is not None:
            return choice
    return _offline(question, card, asked, answer)


def hint(question: Question, card: Scorecard | None, given: Sequence[str] = (), *, answer: str | None = None) -> str:
    """A nudge toward the heaviest uncovered point (the first point before any answer) that names its area, not its content."""
    known = _known(question, card, answer)
    gaps = _gaps(question, card)
    if card is None:
        gaps = [_Gap(p, Verdict.MISSING, None) for p in question.rubric]  # before an answer: in the rubric's order
    for gap in gaps:
        key = f"{question.id}/{gap.point.id}"
        frames = [t for _, hints in _angles(gap.point) for t in hints] + _rotate(_HINTS, key)
        for area, own in _areas(question, gap.point, known):
            for frame in (frames if own else _rotate(_HINTS, key)):
                text = frame.format(area=area)
                if not any(_same(text, g) for g in given) and leaks(text, gap.point, known) is None:
                    return text
    pool = _GENERIC_HINTS if gaps else (_DONE_HINT, *_GENERIC_HINTS)
    return next((h for h in pool if not any(_same(h, g) for g in given)), pool[0])

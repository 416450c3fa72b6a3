"""Features the offline engine computes for one (rubric point, answer) pair.

The same code runs at calibration time (on SemEval-2013 reference/student pairs) and at run time, so the
fitted parameters in `params.json` mean the same thing in both places.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from app.text import STOPWORDS, content_stems, sentences, stem, words

FEATURES: tuple[str, ...] = (
    "sim_best",        # best cosine of the point to one answer unit (sentence or two adjacent sentences)
    "term_recall",     # share of the point's key terms (or novel content stems) the best unit mentions
    "negation_flip",   # the best unit denies its claim where the point does not (or the reverse); see negates()
    "antonym_flip",    # the best unit uses a direction word opposite to the point's
    "novelty",         # share of the best unit's content stems that are not in the question
    "term_precision",  # share of the best unit's novel content stems that the point itself uses
    "sim_question",    # cosine of the best unit to the question (echoing the question is not answering it)
)
# Deliberately absent: answer length and whole-answer similarity. Both reward padding an answer with
# fluff (SemEval would happily fit them, since its longer answers are more often right), and a score
# must move only with content the candidate actually said. Also absent: key-term recall over the whole
# answer. It credited a point whose terms were said anywhere, even in a sentence claiming something else,
# which is how a confidently wrong answer that swaps two definitions scored; SemEval's one-sentence answers
# cannot tell it from the best sentence's recall. Without it (held-out, refitted): ladder ordering 0.928 ->
# 0.934, paraphrase change 0.47 -> 0.37, padding beats partial 1 -> 0 of 48, SemEval AUC 0.716 -> 0.723;
# unpunctuated speech-style answers move further from the typed ones (0.16 -> 0.33).

TERM_BONUS = 0.25  # one fully-named key-term set is worth a quarter of cosine when choosing evidence
NEGATIONS = frozenset("not no never none cannot can't don't doesn't isn't aren't wasn't weren't won't without nothing neither nor".split())
# Direction words whose swap turns a correct claim into its contradiction.
ANTONYMS: tuple[tuple[str, str], ...] = (
    ("increase", "decrease"), ("higher", "lower"), ("more", "less"), ("larger", "smaller"), ("high", "low"),
    ("overfit", "underfit"), ("raise", "reduce"), ("positive", "negative"), ("open", "close"), ("series", "parallel"),
    ("faster", "slower"), ("add", "remove"), ("true", "false"), ("same", "different"), ("connected", "separated"),
    ("sparse", "dense"), ("before", "after"), ("maximize", "minimize"),
)
def _stem_phrase(text: str) -> str:
    return " ".join(stem(w) for w in text.split())


def _pair_map(pairs: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    return [(_stem_phrase(a), _stem_phrase(b)) for a, b in pairs] + [(_stem_phrase(b), _stem_phrase(a)) for a, b in pairs]


_ANTONYM_PAIRS = _pair_map(ANTONYMS)


# Written answers are graded sentence by sentence: the writer's full stops are deliberate, and adding pairs of
# sentences to written answers let padding beat a partial answer (1 of 48) and moved bullets from prose (0.04 ->
# 0.33) in the grading eval. A speech transcript's full stops are the recogniser's guesses at pauses, though:
# "My first move was mitigation, not diagnosis: I rolled back ..." is heard as two sentences, and the point's
# two key terms land in different units. So transcripts are also read with adjacent pairs (OfflineEngine.judge).
@dataclass
class AnswerUnits:
    """An answer cut into gradeable units: sentences (and, for transcripts, pairs of adjacent ones), with their spans."""

    text: str  # the full answer: every unit is a verbatim slice of it
    spans: list[tuple[int, int]]  # the sentences that count (grader instructions already removed)
    unit_texts: list[str] = field(default_factory=list)
    unit_spans: list[tuple[int, int]] = field(default_factory=list)
    unit_stems: list[set[str]] = field(default_factory=list)
    unit_words: list[list[str]] = field(default_factory=list)
    unit_parts: list[tuple[int, ...]] = field(default_factory=list)  # which sentences each unit is made of
    origins: list[tuple[int, int]] = field(default_factory=list)  # per span: the whole sentence it was cut from
    spoken: bool = False  # a speech transcript: its punctuation is the recogniser's guess (see keyword_list)

    @classmethod
    def build(
        cls, text: str, spans: list[tuple[int, int]] | None = None, pairs: bool = False, spoken: bool = False
    ) -> AnswerUnits:
        """Units of `text`; with `pairs`, also every two adjacent sentences as one unit (for transcripts: see the note above)."""
        cut = [(piece, span) for span in (sentences(text) if spans is None else spans) for piece in split_run_on(text, span)]
        units = cls(text=text, spans=[piece for piece, _ in cut], origins=[span for _, span in cut], spoken=spoken)
        spans = units.spans
        # Pairs only of truly adjacent sentences, so a pair never quotes a removed sentence between them.
        joined = [i for i in range(len(spans) - 1) if pairs and not text[spans[i][1] : spans[i + 1][0]].strip()]
        pieces = [(span, (i,)) for i, span in enumerate(spans)] + [((spans[i][0], spans[i + 1][1]), (i, i + 1)) for i in joined]
        for (a, b), parts in pieces:
            units.unit_parts.append(parts)
            chunk = text[a:b]
            units.unit_texts.append(chunk)
            units.unit_spans.append((a, b))
            units.unit_stems.append(set(content_stems(chunk)))
            units.unit_words.append(words(chunk))
        return units

    def keyword_list(self, unit: int) -> bool:
        """Whether the sentence(s) a unit comes from are a bare keyword list.

        Judged on the whole sentence, not on a window cut from a run-on: a 20-word window of a spoken enumeration
        ("data augmentation, for text, back-translation, ..., mixup, third, semi-supervised") looks like a list
        even when the sentence goes on to explain it, and a long bare list is a list in every window anyway.
        """
        origins = dict.fromkeys(self.origins[i] for i in self.unit_parts[unit])
        return any(is_keyword_list(self.text[a:b]) and not (self.spoken and spoken_prose(self.text[a:b])) for a, b in origins)


RUN_ON_WORDS = 40  # a "sentence" longer than this is a run-on (speech transcripts often have no full stops)
WINDOW_WORDS = 20
WINDOW_STRIDE = 10  # windows overlap by half, so a point said across a window edge is still whole in one


def split_run_on(text: str, span: tuple[int, int]) -> list[tuple[int, int]]:
    """A long span as windows of WINDOW_WORDS words, WINDOW_STRIDE apart (verbatim slices).

    Without full stops nothing says where a point's statement starts, so the windows overlap: a point said across
    one window's edge is whole in the next. Measured on the ladders' speech-style answers (no punctuation), the
    mean change against the typed paraphrase fell from 0.30 to 0.16 with half-overlapping windows.
    """
    a, b = span
    bounds = [(m.start() + a, m.end() + a) for m in re.finditer(r"\S+", text[a:b])]
    if len(bounds) <= RUN_ON_WORDS:
        return [span]
    starts = list(range(0, len(bounds) - WINDOW_WORDS + 1, WINDOW_STRIDE))
    if starts[-1] + WINDOW_WORDS < len(bounds):
        starts.append(len(bounds) - WINDOW_WORDS)  # the last window ends at the span's end
    return [(bounds[i][0], bounds[i + WINDOW_WORDS - 1][1]) for i in starts]


def term_groups(key_terms: list[list[str]], point_text: str, question_text: str) -> list[list[tuple[str, ...]]]:
    """Key terms as groups of alternative stem sequences; without key terms, the point's novel content stems."""
    if key_terms:
        return [[tuple(content_stems(alt)) or (stem(alt),) for alt in alts] for alts in key_terms if alts]
    question = set(content_stems(question_text))
    novel = [s for s in dict.fromkeys(content_stems(point_text)) if s not in question]
    return [[(s,)] for s in novel]


@lru_cache(maxsize=4096)
def _compounds(joined: str) -> frozenset[str]:
    """Every two adjacent (stemmed) words of a unit run together and stemmed: computed once per unit, not per term."""
    tokens = joined.split()
    return frozenset(stem(a + b) for a, b in zip(tokens, tokens[1:]))


def _compound(joined: str, term: str) -> bool:
    """Whether two adjacent words make `term` as one word: "health care" for healthcare, "data set" for dataset.

    A compound is written open or closed at the writer's (or the speech recogniser's) whim. `joined` and `term` are
    stemmed; the two words, run together, must stem to the term.
    """
    return len(term) >= 5 and term in _compounds(joined)


def _mentions(stems: set[str], joined: str, alt: tuple[str, ...]) -> bool:
    if len(alt) == 1:
        # a prefix form such as "memoriz" matches memorize/memorization through the stem
        return alt[0] in stems or (len(alt[0]) >= 5 and any(s.startswith(alt[0]) for s in stems)) or _compound(joined, alt[0])
    # ... and a two-word term said as one word ("holdout" for "hold out")
    return " ".join(alt) in joined or all(a in stems for a in alt) or (len(alt) == 2 and "".join(alt) in stems)


def term_recall(groups: list[list[tuple[str, ...]]], stems: set[str], joined: str) -> float:
    """Share of term groups with at least one alternative mentioned."""
    if not groups:
        return 0.0
    return sum(any(_mentions(stems, joined, alt) for alt in alts) for alts in groups) / len(groups)


def negation_count(tokens: list[str]) -> int:
    return sum(1 for t in tokens if t in NEGATIONS or t.endswith("n't"))


# Negations that do not deny the claim. A contrastive aside names what the claim is not ("in week one, not week
# five"; "driven by business constraints, not by the offline metric alone"; "not only X but Y"), and an example may
# be a failure ("owns their part, for example not validating the framing early"): the claim itself stands. And in
# notation a "not" is a complement, not a denial: "the false positive rate P(+|not D)" states a fact. The same rule
# also drops a parenthesis that opens with "not" ("(not the probability that H0 is true)"): that is an aside too.
# A concession keeps its claim as well: "uptime dashboards are necessary but not enough" says they are necessary.
_NOT_A_DENIAL = re.compile(
    r"[,;:\u2014\u2013]\s*(?:for example|for instance|e\.g\.|such as)?\s*not\b[^,;:.\u2014\u2013]*"
    r"|\bnot\s+(?:only|just|merely)\b"
    r"|\bbut\s+not\s+(?:enough|sufficient)\b"
    r"|[|(]\s*not\b",
    re.IGNORECASE,
)


@lru_cache(maxsize=8192)  # a rubric point's text is asked about for every answer graded against it
def negates(text: str) -> bool:
    """Whether a text denies its claim: a negation outside any contrastive aside or notation."""
    return negation_count(words(_NOT_A_DENIAL.sub(" ", text))) > 0


def _flip(pairs: list[tuple[str, str]], point_joined: str, unit_joined: str) -> float:
    """1 when the unit names the opposite of a term the point names, and not the term itself."""
    point, unit = f" {point_joined} ", f" {unit_joined} "
    return float(any(f" {x} " in point and f" {y} " in unit and f" {x} " not in unit for x, y in pairs))


def antonym_flip(point_joined: str, unit_joined: str) -> float:
    """Opposite direction words."""
    return _flip(_ANTONYM_PAIRS, point_joined, unit_joined)


def stopword_ratio(tokens: list[str]) -> float:
    """Share of function words: prose sits near 0.4–0.5, a bare keyword list near 0."""
    return sum(1 for t in tokens if t in STOPWORDS) / len(tokens) if tokens else 0.0


# A slash or bar separates list items between words ("bias/variance"), not inside notation: "0.0099 / 0.0594" is a
# division and "P(D|+)" a conditional probability, and splitting there made a worked calculation read as stuffing.
_LIST_ITEMS = re.compile(r"[,;\n]+|(?<=[A-Za-z])\s*[/|]\s*(?=[A-Za-z])")


# A transcript's commas are the recogniser's guesses at pauses, like its full stops: "One primary metric, purchase
# per user, plus guardrail, such as latency, revenue per user, and unsubscribe rate" is a sentence cut by commas, not
# a list. What a spoken keyword list lacks is function words: the ladders' stuffing lists have at most 0.18 of them,
# code read aloud at most 0.15, while prose that the recogniser cut with commas has 0.28 and up (bank transcripts).
SPOKEN_PROSE_FUNCTION_WORDS = 0.2


def spoken_prose(text: str) -> bool:
    """Whether a transcript sentence has the function words of prose, however many commas the recogniser put in."""
    return stopword_ratio(words(text)) >= SPOKEN_PROSE_FUNCTION_WORDS


def is_keyword_list(text: str) -> bool:
    """A unit that strings terms together without explaining them (keyword stuffing).

    Four or more separated items, none longer than four words: "bias, variance, overfitting, bagging".
    A sentence that introduces a list ("MLOps applies DevOps to ML, covering tracking, versioning, ...")
    has a clause longer than that and is not a keyword list.
    """
    items = [words(item) for item in _LIST_ITEMS.split(text)]
    items = [i for i in items if i]
    return len(items) >= 4 and max(len(i) for i in items) <= 4


@dataclass
class PointFeatures:
    """Feature vector plus the unit that best supports the point (for the evidence quote)."""

    values: np.ndarray
    best_unit: int


def point_features(
    point_vec: np.ndarray,
    point_text: str,
    groups: list[list[tuple[str, ...]]],
    question_stems: set[str],
    units: AnswerUnits,
    unit_vecs: np.ndarray,
    question_vec: np.ndarray,
    usable: list[bool],
) -> PointFeatures:
    """Features of one rubric point against an answer whose units are already embedded."""
    sims = unit_vecs @ point_vec if len(unit_vecs) else np.zeros(0)
    candidates = [i for i in range(len(units.unit_texts)) if usable[i]]
    if not candidates:
        return PointFeatures(np.zeros(len(FEATURES), dtype=np.float64), -1)
    # The evidence unit: most similar to the point, preferring one that names the point's key terms; and never one
    # that names none of them while another unit names some, since such a unit earns nothing (fails_key_terms).
    # Before, "Adversarial attacks manipulate inputs causing misclassifications;" outscored "..., adversarial
    # training improving robustness, ..." on cosine and the model answer lost the point. Held-out, refitted: ladder
    # ordering 0.9527 -> 0.9541, paraphrase change 0.423 -> 0.394, per-point accuracy 0.8656 -> 0.8664, SemEval AUC
    # 0.7230 -> 0.7225; spoken model answers within 0.5 of typed 134 -> 135 of 143.
    recalls = {i: term_recall(groups, units.unit_stems[i], " ".join(stem(w) for w in units.unit_words[i])) for i in candidates}
    best = max(candidates, key=lambda i: (recalls[i] > 0, sims[i] + TERM_BONUS * recalls[i], -i))
    stems = units.unit_stems[best]
    joined = " ".join(stem(w) for w in units.unit_words[best])
    point_stems = set(content_stems(point_text))
    point_joined = " ".join(stem(w) for w in words(point_text))
    novel = stems - question_stems
    novelty = len(novel) / len(stems) if stems else 0.0
    values = np.array(
        [
            float(sims[best]),
            term_recall(groups, stems, joined),
            float(negates(point_text) != negates(units.unit_texts[best])),
            antonym_flip(point_joined, joined),
            novelty,
            len(novel & point_stems) / len(novel) if novel else 0.0,
            float(unit_vecs[best] @ question_vec),
        ],
        dtype=np.float64,
    )
    return PointFeatures(values, best)

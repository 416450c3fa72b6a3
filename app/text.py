"""Small text utilities: tokens, stems, sentences and clauses for retrieval and grading, and counts for messages."""

from __future__ import annotations

import re
from functools import lru_cache

import Stemmer

_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")
_BRITISH = ((re.compile(r"isation"), "ization"), (re.compile(r"is(e|ed|es|ing)\b"), r"iz\1"), (re.compile(r"yse\b"), "yze"))
_stemmer = Stemmer.Stemmer("english")

STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below between
    both but by can could did do does doing down during each few for from further had has have having he her here
    hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of
    off on once only or other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up very was we were what
    when where which while who whom why will with would you your yours yourself yourselves also use used using
    one get gets got like well way ways would really thing things""".split()
)


# Typographic apostrophes (phones and word processors type "don’t") are read as the plain one: "don’t" split into
# "don" + "t" hid the negation, so the same answer graded differently depending on the keyboard it was typed on.
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})


def plain_apostrophes(text: str) -> str:
    """`text` with typographic apostrophes replaced by the plain one."""
    return text.translate(_APOSTROPHES)


def counted(n: int, noun: str) -> str:
    """A count with its noun, as a person writes it: "1 question", "3 questions" (regular plurals only)."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def words(text: str) -> list[str]:
    """Lower-case word tokens (hyphenated words and contractions kept whole, whichever apostrophe they use)."""
    return _WORD.findall(plain_apostrophes(text.lower()))


@lru_cache(maxsize=50_000)
def stem(word: str) -> str:
    """American-spelling Snowball stem of one lower-case word."""
    for pattern, repl in _BRITISH:
        word = pattern.sub(repl, word)
    return _stemmer.stemWord(word)


def content_stems(text: str) -> list[str]:
    """Stems of the non-stopword tokens, hyphenated words also split into their parts."""
    out: list[str] = []
    for w in words(text):
        if w in STOPWORDS:
            continue
        out.append(stem(w))
        if "-" in w:
            out.extend(stem(p) for p in w.split("-") if p and p not in STOPWORDS)
    return out


_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+(?=[\"'(\[]?[A-Za-z0-9])|\n\s*[-*•]\s+|\n{1,}")


_ABBREVIATION = re.compile(r"\b(e\.g|i\.e|vs|etc|approx|cf|Dr|Mr|Ms)\.$", re.IGNORECASE)
_CLAUSE_BREAK = re.compile(r"\s*[,;:\u2014\u2013]\s*")
CLAUSE_MIN_WORDS = 3  # a shorter piece ("In practice", "Honestly") cannot carry a claim of its own


def sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences (and bullet items) of a text, whitespace trimmed."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(text)))
    out = []
    for a, b in spans:
        while a < b and text[a] in " \t\r\n-*•":
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b - a < 2:
            continue
        if out and _ABBREVIATION.search(text[out[-1][0] : out[-1][1]]):
            out[-1] = (out[-1][0], b)  # "e.g. 3.5" is one sentence, not two
        else:
            out.append((a, b))
    return out


def clauses(sentence: str) -> list[str]:
    """The pieces of a sentence between commas, semicolons, colons and dashes that could carry a claim.

    A sentence that is right in one clause and wrong in the next ("RAG retrieves documents and adds them to the
    prompt, but it is really the tool for changing tone") reads as neither when embedded whole; its clauses do.
    Returns the sentence itself when no piece has CLAUSE_MIN_WORDS words.
    """
    pieces = [p for p in _CLAUSE_BREAK.split(sentence) if len(p.split()) >= CLAUSE_MIN_WORDS]
    return pieces or [sentence]

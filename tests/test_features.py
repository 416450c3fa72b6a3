"""How the offline grader cuts an answer into units and clauses: pure text functions, no model needed."""

from __future__ import annotations

from app.grading.features import RUN_ON_WORDS, WINDOW_STRIDE, WINDOW_WORDS, AnswerUnits, split_run_on
from app.text import clauses

SPOKEN_ENUMERATION = (  # a Whisper transcript: commas where the typed answer had dashes and colons, no full stop
    "Second, data augmentation, for text, back-translation, synonym replacement, sentence shuffling, for images, "
    "rotation, cropping, colour jittering, mixup, third, semi-supervised learning, use the labeled data to train an "
    "initial model, predict on unlabeled data, which is usually abundant, and add the high confidence pseudo labels "
    "into training"
)


def test_a_run_on_is_cut_into_half_overlapping_windows_that_cover_it() -> None:
    text = " ".join(f"w{i}" for i in range(57))
    windows = split_run_on(text, (0, len(text)))
    firsts = [text[a:b].split()[0] for a, b in windows]
    assert firsts == ["w0", "w10", "w20", "w30", "w37"]  # the last window ends at the end of the span
    assert all(len(text[a:b].split()) == WINDOW_WORDS for a, b in windows) and WINDOW_STRIDE == WINDOW_WORDS // 2
    short = " ".join(["word"] * RUN_ON_WORDS)
    assert split_run_on(short, (0, len(short))) == [(0, len(short))]


def test_a_point_said_across_a_window_edge_is_whole_in_one_window() -> None:
    units = AnswerUnits.build(SPOKEN_ENUMERATION)
    assert len(units.unit_texts) > 1
    assert any("semi-supervised learning, use the labeled data" in t for t in units.unit_texts)


def test_a_spoken_enumeration_is_not_a_keyword_list_but_a_long_bare_list_is() -> None:
    units = AnswerUnits.build(SPOKEN_ENUMERATION)
    assert not any(units.keyword_list(i) for i in range(len(units.unit_texts)))
    stuffed = ", ".join(["bias", "variance", "underfitting", "overfitting", "model complexity", "total error",
                         "regularization", "more data", "bagging", "learning curves"] * 3)
    units = AnswerUnits.build(stuffed)
    assert len(units.unit_texts) > 1 and all(units.keyword_list(i) for i in range(len(units.unit_texts)))


def test_a_sentence_splits_into_clauses_that_can_carry_a_claim() -> None:
    sentence = "In practice, RAG retrieves documents and adds them to the prompt; it is really the tool for changing tone"
    assert clauses(sentence) == ["RAG retrieves documents and adds them to the prompt", "it is really the tool for changing tone"]
    assert clauses("Yes, exactly.") == ["Yes, exactly."]  # no piece long enough to be a claim: the sentence itself

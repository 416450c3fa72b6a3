"""How the offline grader cuts an answer into units and clauses: pure text functions, no model needed."""

from __future__ import annotations

from app.grading.features import (
    RUN_ON_WORDS,
    WINDOW_STRIDE,
    WINDOW_WORDS,
    AnswerUnits,
    is_keyword_list,
    negates,
    split_run_on,
    term_groups,
    term_recall,
)
from app.text import clauses, content_stems, stem, words

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


def _names(text: str, term: str) -> bool:
    groups = term_groups([[term]], "", "")
    return term_recall(groups, set(content_stems(text)), " ".join(stem(w) for w in words(text))) == 1.0


def test_a_compound_key_term_counts_written_open_or_closed() -> None:
    """Whisper writes "health care" where the rubric says "healthcare"; candidates write "data set" or "dataset"."""
    assert _names("use cases include health care applications", "healthcare")
    assert _names("we split the data set by user", "dataset")
    assert _names("tune every hyper parameter on the validation fold", "hyperparameter")
    assert _names("hold outs drawn per segment", "holdout")
    assert _names("we split the dataset by user", "data set")  # a two-word term written closed
    assert not _names("the health of the care team", "healthcare")  # not adjacent: not the compound
    assert not _names("the healthy candidate", "healthcare")


def test_a_worked_calculation_is_not_a_keyword_list_but_slashed_terms_are() -> None:
    """A division or a conditional probability is notation, not a list separator."""
    assert not is_keyword_list("So P(D|+) = 0.0099 / 0.0594 ≈ 0.167, about 16.7%, or one in six.")
    assert is_keyword_list("bias/variance/overfitting/bagging")
    assert is_keyword_list("bias | variance | overfitting | bagging")


# Whisper put commas where the typed answer ("One primary metric, purchases per user, plus guardrails such as latency,
# revenue per user and unsubscribe rate.") had none.
HEARD_WITH_COMMAS = "One primary metric, purchase and per user, plus guardrail, such as latency, revenue per user, and unsubscribe rate."


def test_a_transcript_cut_by_commas_is_prose_but_a_spoken_keyword_list_is_not() -> None:
    assert not AnswerUnits.build(HEARD_WITH_COMMAS, spoken=True).keyword_list(0)
    assert AnswerUnits.build(HEARD_WITH_COMMAS).keyword_list(0)  # written, the writer's commas are deliberate
    stuffed = "Bias, variance, underfitting, overfitting, model complexity, regularization, bagging."
    assert AnswerUnits.build(stuffed, spoken=True).keyword_list(0)


def test_only_a_negation_of_the_claim_negates_it() -> None:
    assert negates("Bagging does not reduce bias.")
    assert negates("It required no GPU and trained in seconds.")
    assert not negates("In week one, not week five, I took this to the product manager.")
    assert not negates("The decision was driven by business constraints, not by the offline metric alone.")
    assert not negates("It is not only faster but also more accurate.")
    # A concession keeps the claim: "necessary but not enough" says the dashboards are necessary (the
    # ml-monitoring model answer lost its layered-metrics point to it). A bare "not enough" still denies.
    assert not negates("Uptime dashboards are necessary but not enough.")
    assert negates("Uptime dashboards are not enough to catch silent failures.")
    # Notation: the complement in a conditional probability is not a denial (the Bayes model answer's posterior
    # point was graded missing for it).
    assert not negates("The false positive rate P(+|not D) is 1 - specificity = 0.05.")
    assert negates("The posterior P(D|+) is not 0.99.")

"""Fast unit tests for the real-word (context) repair in app.speech_terms and the clip balancing in app.speech."""

from __future__ import annotations

import numpy as np
import pytest

from app.config import Settings
from app.speech_terms import Context, build_lexicon, repair_text

# A small "bank": the prose the context is read from (questions, rubric points), as in bank_texts(bank, model_answers=False).
PROSE = [
    "Apply data augmentation such as cropping. Data augmentation helps small datasets.",
    *["Batch normalization stabilises training. Batch normalization and dropout regularise."] * 5,  # 10 x "batch"
    "Use the unlabeled data with pseudo-labels. Training data quality matters; training data drifts.",
    "Precision recall curves; precision recall trade-offs; the training loop.",
    "Data drift, data quality, data leakage, data pipelines, data versioning, data contracts, data owners.",
    "Training runs, training jobs, training cost, training time, training sets, training loss, training data.",
]


@pytest.fixture(scope="module")
def lex():  # type: ignore[no-untyped-def]
    return build_lexicon(PROSE, PROSE)


def test_real_word_is_repaired_where_the_bank_context_supports_the_term(lex) -> None:  # type: ignore[no-untyped-def]
    text, repairs = repair_text("Second, date augmentation for text. Match normalization helps.", lex)
    assert text == "Second, data augmentation for text. Batch normalization helps."
    assert [(r.heard, r.term) for r in repairs] == [("date", "data"), ("Match", "batch")]


def test_context_repair_needs_a_supporting_neighbour_in_the_same_clause(lex) -> None:  # type: ignore[no-untyped-def]
    for same in ("I saw the date.",                      # no content neighbour
                 "On that date, augmentation started.",   # the comma ends the clause
                 "Match the schema (normalization later)."):  # "(" opens a new clause
        assert repair_text(same, lex) == (same, []), same


def test_stopwords_negations_short_words_and_negating_prefixes_are_never_touched() -> None:
    # Each term is common (12 uses) and always next to the neighbour, so only the guards can stop a repair.
    prose = ["never overfit", "in practice", "unlabeled data", "it helps", "big data"] * 12
    lex = build_lexicon(prose, prose)
    assert repair_text("big date", lex)[1] != []  # the control: this context does repair
    for same in ("ever overfit", "on practice", "predict on labeled data", "at helps", "big 1024"):
        # "ever"/"never": a negation; "on"/"in", "at"/"it": stopwords; "labeled"/"unlabeled": a negating prefix
        assert repair_text(same, lex)[1] == [], same


def test_a_word_the_bank_often_uses_is_not_overruled_by_a_commoner_neighbour_pair() -> None:
    ctx = Context(["production pipeline", "production pipeline", "production pipeline", "prediction service",
                   "prediction"] * 3)
    # "prediction" is common in this bank itself, so "prediction pipeline" is what was said, not "production".
    assert ctx.repair(["prediction", "pipeline"], ["prediction", "pipeline"], 0) is None


def test_inflections_of_the_heard_word_are_not_repairs() -> None:
    prose = ["simple models"] * 5 + ["training data"] * 5
    lex = build_lexicon(prose, prose)
    assert repair_text("simpler models and retraining data", lex)[1] == []


def test_no_repair_changes_a_typed_model_answer(bank_settings: Settings) -> None:
    """The guard for every kind of repair (non-word, context, boundary): real written prose is left as it is."""
    from app.runtime import get_bank
    from app.speech_terms import bank_lexicon, question_terms

    lex = bank_lexicon(str(bank_settings.knowledge_dir))
    assert lex.context is not None  # the bank lexicon does real-word repairs: this test covers them
    for q in get_bank(bank_settings).questions:
        for answer in q.model_answers:
            assert repair_text(answer.text, lex.with_preferred(question_terms(q)))[1] == [], q.id


# --------------------------------------------------------------------------------- word-boundary repair

# Question terms as `question_terms` gives them: the question's text and its key terms.
NETWORK_QUESTION = ["How do network effects break an A/B test?", "sutva|interference|spillover",
                    "overstate|understate|biased", "plan|plans", "idle|sweep|sweeps", "outcomes"]


@pytest.fixture(scope="module")
def network_lex():  # type: ignore[no-untyped-def]
    prose = ["Spillover between arms biases the measured lift.", "A hyperparameter sweep restarts runs.",
             "Shared inventory, shared plans, outcomes and the hared rabbit."]
    return build_lexicon(prose, prose).with_preferred(NETWORK_QUESTION)


def test_a_misplaced_word_break_is_moved_to_give_back_a_question_term(network_lex) -> None:  # type: ignore[no-untyped-def]
    text, repairs = repair_text("In a social product the spill overruns the other way, and the liftover states "
                                "the effect. Hyperparameters weep, again.", network_lex)
    assert text == ("In a social product the spillover runs the other way, and the lift overstates the effect. "
                    "Hyperparameter sweep, again.")
    assert {r.kind for r in repairs} == {"boundary"}


def test_a_word_break_is_not_moved_for_an_inflection_a_function_word_or_across_punctuation(network_lex) -> None:  # type: ignore[no-untyped-def]
    for same in ("We plan shared inventory.",   # "plans hared": only an -s moves onto a word the question uses
                 "It ran without comes.",       # "with outcomes" would drop the negation
                 "The spill, overruns.",        # a comma between them: two words were said
                 "The spillover runs."):        # the term is already there
        assert repair_text(same, network_lex) == (same, []), same


# --------------------------------------------------------------------------------- clip balancing


def _fake_vad(monkeypatch: pytest.MonkeyPatch, regions_s: list[tuple[float, float]]) -> None:
    import faster_whisper.vad as vad

    regions = [{"start": int(a * 16_000), "end": int(b * 16_000)} for a, b in regions_s]
    monkeypatch.setattr(vad, "get_speech_timestamps", lambda audio, options: [dict(r) for r in regions])


def test_a_short_tail_clip_is_rebalanced_at_a_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.speech import MIN_CLIP_S, speech_clips

    # 30.2 s of speech in pause-separated regions: the greedy packing would leave a 1.8 s tail.
    _fake_vad(monkeypatch, [(0.1, 6.7), (6.7, 18.1), (18.1, 22.2), (22.2, 28.5), (28.5, 30.3)])
    clips = speech_clips(np.zeros(16_000 * 31, np.float32))
    assert clips is not None and len(clips) == 2
    assert min(c["end"] - c["start"] for c in clips) >= MIN_CLIP_S
    assert clips[0]["end"] == pytest.approx(18.1) and clips[1]["start"] == pytest.approx(18.1)  # a VAD boundary
    assert all(c["end"] - c["start"] <= 30 for c in clips)


def test_default_chunking_is_kept_when_no_clip_is_short(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.speech import speech_clips

    _fake_vad(monkeypatch, [(0.1, 12.6), (12.6, 22.9), (22.9, 25.9), (25.9, 32.2)])  # tail of 6.3 s: fine
    assert speech_clips(np.zeros(16_000 * 33, np.float32)) is None
    _fake_vad(monkeypatch, [])
    assert speech_clips(np.zeros(16_000, np.float32)) == []

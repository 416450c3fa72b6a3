"""Follow-ups and hints as a candidate meets them: aimed at what the answer missed, never repeated, never the answer."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import pytest

import app.followup as followup
from app.bank import FollowUp, ModelAnswer, Question, RubricPoint
from app.config import Settings
from app.errors import LLMError
from app.followup import MAX_WORDS, FollowUpChoice, choose_follow_up, hint, leaks
from app.grading.models import VERDICT_CREDIT, CriterionVerdict, Scorecard, Verdict
from app.prompts import PromptError, render
from app.text import words

from .fakes import FakeLLM

BANK_LEAKY = "Would stronger regularization or bagging fix an overfitting model, and why?"
BANK_REMEDIES = "Training accuracy is 98% but held-out accuracy is 75%. What would you try first?"
BANK_CURVES = "How would you read learning curves to tell which problem a model has?"
BANK_DEEPER = "Where has this trade-off bitten you in a real project?"

QUESTION = Question(
    id="bias-variance-tradeoff",
    text="Explain the bias-variance tradeoff and how you manage it in practice.",
    track="ml-fundamentals",
    topic="generalization",
    kind="theory",
    level="junior",
    rubric=(
        RubricPoint(id="bias-definition", weight=2, key_terms=("bias", "underfit|underfitting|too simple"),
                    text="Bias is error from overly simple assumptions; a high-bias model underfits and misses real patterns."),
        RubricPoint(id="variance-definition", weight=2, key_terms=("variance", "overfit|overfitting|memorise|noise"),
                    text="Variance is error from sensitivity to the training sample; a high-variance model overfits by memorising noise."),
        RubricPoint(id="remedies", weight=3, key_terms=("regularization|regularisation", "more data|bagging|ensemble"),
                    text="High variance is reduced with regularization, more training data or bagging; high bias with richer features."),
        RubricPoint(id="diagnose-curves", weight=1.5, key_terms=("learning curve|learning curves", "validation|held-out"),
                    text="Learning curves and the gap between training and validation error diagnose which problem you have."),
    ),
    model_answers=(ModelAnswer(source="mockml", text="Bias underfits, variance overfits; regularize, add data, read learning curves."),),
    follow_ups=(
        FollowUp(text=BANK_LEAKY, probes="remedies"),
        FollowUp(text=BANK_REMEDIES, probes="remedies"),
        FollowUp(text=BANK_CURVES, probes="diagnose-curves"),
        FollowUp(text=BANK_DEEPER),
    ),
)
WEAK_ANSWER = "It is about balance: you want the model to be neither too good nor too bad, and you tune it."


def card(verdicts: dict[str, Verdict] | None = None, evidence: dict[str, str] | None = None,
         question: Question = QUESTION) -> Scorecard:
    """A scorecard built by hand: every point missing unless told otherwise."""
    verdicts, evidence = verdicts or {}, evidence or {}
    out = []
    for p in question.rubric:
        v = verdicts.get(p.id, Verdict.MISSING)
        out.append(CriterionVerdict(point_id=p.id, point=p.text, weight=p.weight, verdict=v, credit=VERDICT_CREDIT[v],
                                    evidence=evidence.get(p.id)))
    return Scorecard(question_id=question.id, question=question.text, score=0.0, verdicts=out, engine="test")


COVERED = Verdict.COVERED
ALL_COVERED = {p.id: COVERED for p in QUESTION.rubric}


def key_terms_of(point: RubricPoint) -> list[str]:
    return [alt for alts in point.term_alternatives() for alt in alts]


def drain(c: Scorecard, answer: str | None = None, question: Question = QUESTION, limit: int = 60) -> list[FollowUpChoice]:
    """Ask follow-ups until none is left, passing back everything asked so far."""
    asked: list[str] = []
    out: list[FollowUpChoice] = []
    for _ in range(limit):
        choice = choose_follow_up(question, c, asked, answer=answer)
        if choice is None:
            return out
        out.append(choice)
        asked.append(choice.text)
    raise AssertionError(f"still asking after {limit} follow-ups")


def check_shape(text: str) -> None:
    assert text.endswith("?") and len(text.split()) <= MAX_WORDS, text


# ---- targeting --------------------------------------------------------------------------------------------------


def test_targets_the_highest_weight_missed_point() -> None:
    choice = choose_follow_up(QUESTION, card(), answer=WEAK_ANSWER)
    assert choice is not None
    assert (choice.target_point, choice.reason) == ("remedies", "missed")


def test_ties_go_to_missed_before_partial_then_rubric_order() -> None:
    both_weight_2 = card({"remedies": COVERED, "diagnose-curves": COVERED, "bias-definition": Verdict.PARTIAL},
                         {"bias-definition": "the model is too simple"})
    assert choose_follow_up(QUESTION, both_weight_2).target_point == "variance-definition"
    both_missing = card({"remedies": COVERED, "diagnose-curves": COVERED})
    assert choose_follow_up(QUESTION, both_missing).target_point == "bias-definition"


def test_a_partial_point_is_probed_with_the_candidates_own_words() -> None:
    said = "Variance is when the model changes a lot between training sets"
    c = card({"remedies": COVERED, "bias-definition": COVERED, "variance-definition": Verdict.PARTIAL}, {"variance-definition": said})
    choice = choose_follow_up(QUESTION, c, answer=said + ".")
    assert (choice.target_point, choice.reason, choice.source) == ("variance-definition", "partial", "template")
    assert "Variance is when the model changes a lot" in choice.text


def test_a_contradicted_point_is_challenged_before_a_missing_one_of_equal_weight() -> None:
    wrong = "Bias is when the model memorises the training data"
    c = card({"remedies": COVERED, "diagnose-curves": COVERED, "bias-definition": Verdict.CONTRADICTED}, {"bias-definition": wrong})
    choice = choose_follow_up(QUESTION, c, answer=wrong + ".")
    assert (choice.target_point, choice.reason) == ("bias-definition", "contradicted")
    assert "sure" in choice.text or "why" in choice.text


def test_covered_points_are_never_probed() -> None:
    c = card({"remedies": COVERED, "variance-definition": COVERED})
    asked = drain(c, WEAK_ANSWER)
    assert asked and {a.target_point for a in asked} <= {"bias-definition", "diagnose-curves"}


def test_no_follow_up_is_ever_repeated_and_the_supply_ends() -> None:
    asked = drain(card(), WEAK_ANSWER)
    texts = [" ".join(words(a.text)) for a in asked]
    assert len(texts) == len(set(texts)) > 4
    assert choose_follow_up(QUESTION, card(), [a.text for a in asked], answer=WEAK_ANSWER) is None


def test_the_next_follow_up_moves_on_to_another_point() -> None:
    first = choose_follow_up(QUESTION, card(), answer=WEAK_ANSWER)
    second = choose_follow_up(QUESTION, card(), [first.text], answer=WEAK_ANSWER)
    assert first.target_point == "remedies" and second.target_point != "remedies"


def test_every_follow_up_is_one_short_question() -> None:
    for c, answer in ((card(), WEAK_ANSWER), (card(ALL_COVERED), None), (card({"remedies": Verdict.PARTIAL}, {"remedies": "x " * 80}), None)):
        for choice in drain(c, answer):
            check_shape(choice.text)
    with pytest.raises(ValueError, match="at most 40 words"):
        FollowUpChoice(text="why " * 41 + "?", target_point=None, reason="deeper", source="template")
    with pytest.raises(ValueError, match="end with"):
        FollowUpChoice(text="Tell me more.", target_point=None, reason="deeper", source="template")


# ---- the bank first, and never the answer -----------------------------------------------------------------------


def test_a_bank_follow_up_that_probes_the_point_is_preferred() -> None:
    choice = choose_follow_up(QUESTION, card(), answer=WEAK_ANSWER)
    assert (choice.source, choice.text) == ("bank", BANK_REMEDIES)


def test_a_bank_follow_up_that_would_leak_is_skipped_until_the_candidate_said_the_terms() -> None:
    # BANK_LEAKY names regularization and bagging, the substance of the point: not for a candidate who never said them.
    assert choose_follow_up(QUESTION, card(), answer=WEAK_ANSWER).text != BANK_LEAKY
    said = "I would add regularization or bagging, but I am not sure when."
    assert choose_follow_up(QUESTION, card(), answer=said).text == BANK_LEAKY


def test_a_leaking_template_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    no_bank = QUESTION.model_copy(update={"follow_ups": ()})
    monkeypatch.setattr(followup, "_MISSED", ("Would regularization or bagging help with {area}?", "What can you tell me about {area}?"))
    monkeypatch.setattr(followup, "_ANGLES", ())
    choice = choose_follow_up(no_bank, card({"bias-definition": COVERED, "variance-definition": COVERED}), answer=WEAK_ANSWER)
    assert choice.target_point == "remedies" and choice.text.startswith("What can you tell me about")


def test_no_offline_follow_up_gives_the_point_away() -> None:
    for c in (card(), card({"remedies": COVERED})):
        for choice in drain(c, WEAK_ANSWER):
            point = QUESTION.point(choice.target_point)
            assert leaks(choice.text, point, f"{QUESTION.text}\n{WEAK_ANSWER}") is None, choice.text
            unsaid = [t for t in key_terms_of(point) if t not in QUESTION.text.lower()]
            assert not any(re.search(rf"\b{re.escape(t)}", choice.text.lower()) for t in unsaid), choice.text


def test_the_subject_of_a_point_is_not_used_when_it_is_a_key_term() -> None:
    # "Learning curves and the gap …": its subject is the answer itself.
    only_curves = card({p.id: COVERED for p in QUESTION.rubric if p.id != "diagnose-curves"})
    for choice in drain(only_curves, WEAK_ANSWER):
        assert "learning curve" not in choice.text.lower() and "validation" not in choice.text.lower()


def test_leaks_checks_key_terms_and_runs_of_the_points_words() -> None:
    point = QUESTION.point("remedies")
    assert leaks("Would bagging help here?", point, "nothing said") == "names the key term 'bagging'"
    assert leaks("Would bagging help here?", point, "I would try bagging") is None
    assert "repeats the point's words" in leaks("So high variance is reduced with what?", point, "")
    assert leaks("What would you do about high variance?", point, "") is None


# ---- strong answers -------------------------------------------------------------------------------------------


def test_a_strong_answer_gets_a_deeper_probe() -> None:
    asked = drain(card(ALL_COVERED))
    assert asked and all(a.reason == "deeper" and a.target_point is None for a in asked)
    assert (asked[0].source, asked[0].text) == ("bank", BANK_DEEPER)
    assert any("generalization" in a.text for a in asked[1:])
    assert len(asked) >= 4


def test_a_behavioural_question_gets_story_probes() -> None:
    story = QUESTION.model_copy(update={"kind": "behavioral", "follow_ups": ()})
    texts = [a.text for a in drain(card(ALL_COVERED, question=story), question=story)]
    assert any("differently" in t for t in texts) and not any("hundred times" in t for t in texts)


# ---- with a language model ------------------------------------------------------------------------------------


def reply(question: str, target: str | None) -> str:
    return json.dumps({"question": question, "target_point": target})


def test_a_valid_model_follow_up_is_used() -> None:
    fake = FakeLLM().enqueue(reply("What would you actually change if the model did great on training data only?", "remedies"))
    choice = choose_follow_up(QUESTION, card(), ["Asked before?"], llm=fake, related=["How would you pick k in k-fold?"],
                              answer=WEAK_ANSWER)
    assert choice == FollowUpChoice(text="What would you actually change if the model did great on training data only?",
                                    target_point="remedies", reason="missed", source="llm")
    system, prompt = (m["content"] for m in fake.history[0])
    assert "at most 40 words" in system and WEAK_ANSWER not in system  # the constant part, cacheable
    assert WEAK_ANSWER in prompt and "Asked before?" in prompt and "How would you pick k in k-fold?" in prompt
    assert "`remedies` (missing, weight 3.0)" in prompt and fake.pending == 0
    assert fake.calls[0].schema is followup.FollowUpReply


def test_a_model_deeper_probe_is_used_for_a_strong_answer() -> None:
    fake = FakeLLM().enqueue(reply("How would this change with ten times the features?", None))
    choice = choose_follow_up(QUESTION, card(ALL_COVERED), llm=fake)
    assert (choice.source, choice.reason, choice.target_point) == ("llm", "deeper", None)
    assert "Nothing: every rubric point is covered" in fake.history[0][1]["content"]


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (reply("Why " + "really " * 45 + "?", "remedies"), "over 40 words"),
        (reply("Would regularization or bagging help here?", "remedies"), "names the key terms"),
        (reply("So high variance is reduced with what, exactly?", "remedies"), "copies the point"),
        (reply("Could you define variance for me?", "variance-definition"), "targets a covered point"),
        (reply("What else?", "no-such-point"), "unknown point"),
        (reply("Is that all? Anything else?", "remedies"), "two questions"),
        (reply("Tell me about your regularization choices.", "remedies"), "not a question"),
        (reply("How would you read the curves?", None), "no target although points are missing"),
        (reply(BANK_REMEDIES, "remedies"), "already asked"),
        ('{"text": "wrong schema"}', "off-schema"),
        ("not json at all", "not JSON"),
        (LLMError("model fake timed out", kind="timeout", attempts=3), "LLMError"),
    ],
)
def test_a_bad_model_follow_up_falls_back_to_the_offline_choice(bad: object, why: str) -> None:
    c = card({"variance-definition": COVERED})
    asked = [BANK_REMEDIES]
    offline = choose_follow_up(QUESTION, c, asked, answer=WEAK_ANSWER)
    fake = FakeLLM().enqueue(bad)
    choice = choose_follow_up(QUESTION, c, asked, llm=fake, answer=WEAK_ANSWER)
    assert choice == offline and choice.source != "llm", why
    assert fake.pending == 0


def test_without_the_answer_the_evidence_quotes_stand_in() -> None:
    # The candidate's own words (here: "bagging") may be reused; other key terms still may not.
    c = card({"remedies": Verdict.PARTIAL}, {"remedies": "I would use bagging"})
    fake = FakeLLM().enqueue(reply("When would bagging not be enough?", "remedies"))
    assert choose_follow_up(QUESTION, c, llm=fake).source == "llm"
    fake = FakeLLM().enqueue(reply("When would regularization not be enough?", "remedies"))
    assert choose_follow_up(QUESTION, c, llm=fake).source != "llm"
    assert "I would use bagging" in fake.history[0][1]["content"]


def test_the_followup_prompt_renders_under_strict_undefined() -> None:
    variables = {
        "question": QUESTION.text, "answer": WEAK_ANSWER, "fence": "answer-0123456789",
        "missed": [{"id": "remedies", "text": "High variance …", "verdict": "missing", "weight": 3.0}],
        "covered": [{"id": "bias-definition", "text": "Bias is …"}], "related": ["a related question"], "asked": ["asked?"],
    }
    text = render("followup.md", **variables)
    assert "at most 40 words" in render("followup_system.md", max_words=MAX_WORDS)
    assert "`remedies` (missing, weight 3.0)" in text and "<answer-0123456789>" in text
    assert not re.search(r"{{|}}|{%|%}", text)
    for name in variables:
        with pytest.raises(PromptError, match="needs a variable"):
            render("followup.md", **{k: v for k, v in variables.items() if k != name})


# ---- hints ----------------------------------------------------------------------------------------------------


def hints(c: Scorecard | None, n: int, answer: str | None = None) -> list[str]:
    given: list[str] = []
    for _ in range(n):
        given.append(hint(QUESTION, c, given, answer=answer))
    return given


def test_hints_name_the_area_without_the_key_terms_and_never_repeat() -> None:
    given = hints(card({"bias-definition": COVERED, "variance-definition": COVERED}), 6, WEAK_ANSWER)
    assert len(set(given)) == len(given)
    forbidden = [t for p in ("remedies", "diagnose-curves") for t in key_terms_of(QUESTION.point(p))]
    for text in given:
        assert not any(re.search(rf"\b{re.escape(t)}", text.lower()) for t in forbidden), text
    assert "high variance" in given[0]  # the heaviest gap, named by its subject


def test_the_first_hint_before_any_answer_is_about_the_first_point() -> None:
    first = hint(QUESTION, None)
    assert "bias" in first.lower() and "underfit" not in first.lower()
    assert hint(QUESTION, None, [first]) != first


def test_a_hint_for_a_complete_answer_points_beyond_the_rubric() -> None:
    assert "trade-offs" in hint(QUESTION, card(ALL_COVERED))


def test_hints_run_out_gracefully() -> None:
    given = hints(card(), 40, WEAK_ANSWER)
    assert all(isinstance(h, str) and h for h in given)


# ---- with the real offline grader ------------------------------------------------------------------------------


@pytest.mark.slow
def test_follow_up_for_a_real_offline_scorecard(tiny_settings: Settings) -> None:
    from app.grading import Grader

    grader = Grader(tiny_settings)
    partial = ("Bias is the error that comes from a model that is too simple, so it underfits and misses real patterns. "
               "Variance is the error from being too sensitive to the particular training set: the model overfits and memorises noise.")
    c = grader.grade("bias-variance-tradeoff", partial, engine="offline")
    question = grader.bank.get("bias-variance-tradeoff")
    covered = {v.point_id for v in c.verdicts if v.verdict is Verdict.COVERED}
    assert {"bias-definition", "variance-definition"} <= covered
    choice = choose_follow_up(question, c, answer=partial)
    assert choice is not None and choice.target_point in {"tradeoff-total-error", "remedies"}
    check_shape(choice.text)
    point = question.point(choice.target_point)
    assert leaks(choice.text, point, f"{question.text}\n{partial}") is None
    second: Sequence[str] = [choice.text]
    assert choose_follow_up(question, c, second, answer=partial).text != choice.text

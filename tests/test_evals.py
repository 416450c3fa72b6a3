"""The eval harness itself: the ladder bank is sound, the metrics compute what they claim, the grading suite
runs an LLM engine end to end (with a scripted model, no network), the reports are written, and `mockml eval`
keeps its exit-code contract. The real LLM engines run on demand; CI proves the harness with FakeLLM."""

from __future__ import annotations

import copy
import json
import re
import shutil
import string
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from app.bank import Bank, Track, load_bank
from app.config import REPO_ROOT, Settings
from app.errors import LLMError
from app.grading import Grader, Verdict
from app.grading.features import is_keyword_list
from app.grading.guards import is_instruction_to_grader
from app.grading.judge import LLMJudge
from app.grading.models import VERDICT_CREDIT, CriterionVerdict
from app.text import sentences
from evals import thresholds as T
from evals.grading import ladders as ladder_data
from evals.grading.ladders import FLUFF, INJECTIONS, LADDER_DIR, RANKED, WRITTEN, Answer, Ladder
from evals.grading.run import ordering, run, verdict_accuracy
from evals.suite import compare, run_suites, write_report

from .conftest import FIXTURES
from .fakes import FakeLLM

MODEL = "openai/gpt-4o-mini"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
METRIC_SECTIONS = ("ordering", "repeatability", "invariance", "robustness", "mean_score_by_kind", "verdicts", "scores", "checks")
LLM_CHECKS = {
    "pairwise ordering": T.LLM_PAIRWISE_ORDERING,
    "repeatability (identical share)": T.LLM_REPEATABILITY_IDENTICAL,
    "paraphrase mean change": T.LLM_PARAPHRASE_MAX_MEAN_CHANGE,
    "injection max change": T.LLM_INJECTION_MAX_CHANGE,
}


@pytest.fixture(scope="module")
def bank() -> Bank:
    return load_bank(REPO_ROOT / "knowledge")


@pytest.fixture(scope="module")
def ladders(bank: Bank) -> list[Ladder]:
    return ladder_data.load(bank)


# ---- 1. ladder data integrity on the real bank ---------------------------------------------------------------


LADDER_FILES = sorted(LADDER_DIR.glob("*.yaml"))


def test_there_are_ladder_files() -> None:
    assert len(LADDER_FILES) >= 4, LADDER_FILES


@pytest.mark.parametrize("path", LADDER_FILES, ids=[p.stem for p in LADDER_FILES])
def test_every_ladder_file_loads_with_every_written_rung(path: Path, bank: Bank, tmp_path: Path) -> None:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(raw, list) and raw, f"{path.name} holds no ladders"
    for entry in raw:
        q = bank.get(entry["question_id"])
        ids = {p.id for p in q.rubric}
        for kind in WRITTEN:
            assert kind in entry, f"{path.name}: {q.id} has no {kind} rung"
            item = entry[kind]
            assert isinstance(item.get("text"), str) and item["text"].strip(), f"{path.name}: {q.id}.{kind} has no text"
            covers, contradicts = set(item.get("covers") or []), set(item.get("contradicts") or [])
            assert covers <= ids, f"{path.name}: {q.id}.{kind} covers unknown points {sorted(covers - ids)}"
            assert contradicts <= ids, f"{path.name}: {q.id}.{kind} contradicts unknown points {sorted(contradicts - ids)}"
            assert not covers & contradicts, f"{path.name}: {q.id}.{kind} both covers and contradicts {sorted(covers & contradicts)}"
    # The loader on this file alone builds one ladder per entry, with the model answer and every generated variant.
    shutil.copy(path, tmp_path / path.name)
    loaded = ladder_data.load(bank, tmp_path)
    assert [l.question.id for l in loaded] == [e["question_id"] for e in raw]


def test_the_loader_refuses_unknown_rubric_point_ids(bank: Bank, tmp_path: Path) -> None:
    entry = yaml.safe_load(LADDER_FILES[0].read_text(encoding="utf-8"))[0]
    entry["good"]["covers"] = [*entry["good"]["covers"], "no-such-point"]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump([entry]), encoding="utf-8")
    with pytest.raises(ValueError, match="no-such-point"):
        ladder_data.load(bank, tmp_path)


def test_the_bank_has_enough_ladders_across_every_track(ladders: list[Ladder]) -> None:
    assert len(ladders) >= 40
    assert {l.question.track for l in ladders} == set(Track) and len(Track) == 9
    ids = [l.question.id for l in ladders]
    assert len(ids) == len(set(ids)), "a question has two ladders"


def test_every_ladder_has_every_answer_kind_and_valid_annotations(ladders: list[Ladder]) -> None:
    kinds = {"model", *WRITTEN, "injection", "stuffing", "padding", "bullets", "speech"}
    for ladder in ladders:
        q = ladder.question
        ids = {p.id for p in q.rubric}
        assert set(ladder.answers) == kinds, q.id
        for kind, answer in ladder.answers.items():
            assert answer.kind == kind and answer.text.strip(), (q.id, kind)
            assert set(answer.covers) <= ids and set(answer.contradicts) <= ids, (q.id, kind)
        assert ladder.answers["model"].text == q.model_answers[0].text
        assert ladder.answers["model"].covers == ladder.answers["paraphrase"].covers
        # Quality levels: only the ranked rungs have one; the ladder's premise is good = complete, partial = partial.
        assert {k for k, a in ladder.answers.items() if a.level is not None} == set(RANKED), q.id
        assert ladder.answers["good"].level == 2, f"{q.id}: the good answer covers < 75% of the rubric weight"
        assert ladder.answers["partial"].level == 1, f"{q.id}: the partial answer is not 30-75% of the rubric weight"
        assert all(ladder.answers[k].level == 0 for k in ("vague", "wrong", "off_topic")), q.id


def test_generated_injection_appends_an_instruction_the_guard_detects(ladders: list[Ladder]) -> None:
    styles = set()
    for ladder in ladders:
        partial, injection = ladder.answers["partial"], ladder.answers["injection"]
        assert injection.text.startswith(partial.text + " "), ladder.question.id
        added = injection.text[len(partial.text) + 1 :]
        assert added in INJECTIONS
        styles.add(added)
        assert is_instruction_to_grader(added), added
        assert not is_instruction_to_grader(partial.text), f"{ladder.question.id}: the partial answer itself reads as an injection"
        assert injection.covers == partial.covers
    assert styles == set(INJECTIONS), "every injection style is used"


def test_generated_stuffing_is_a_keyword_list(ladders: list[Ladder]) -> None:
    for ladder in ladders:
        stuffing = ladder.answers["stuffing"]
        assert is_keyword_list(stuffing.text), (ladder.question.id, stuffing.text)
        assert not stuffing.known and not stuffing.covers


def test_generated_padding_doubles_the_partial_and_keeps_it_verbatim(ladders: list[Ladder]) -> None:
    longest_fluff = max(map(len, FLUFF))
    for ladder in ladders:
        partial, padding = ladder.answers["partial"].text, ladder.answers["padding"].text
        assert partial in padding, ladder.question.id
        assert padding != partial and not padding.startswith(partial) and not padding.endswith(partial), "fluff on both sides"
        assert 2 * len(partial) <= len(padding) <= 2 * len(partial) + longest_fluff + 3, ladder.question.id
        assert 1.95 <= len(padding) / len(partial) <= 2.5, ladder.question.id
        assert ladder.answers["padding"].covers == ladder.answers["partial"].covers


def test_generated_bullets_have_one_line_per_sentence_of_good(ladders: list[Ladder]) -> None:
    for ladder in ladders:
        good, bullets = ladder.answers["good"].text, ladder.answers["bullets"].text
        spans = sentences(good)
        lines = bullets.splitlines()
        assert len(lines) == len(spans), ladder.question.id
        for line, (a, b) in zip(lines, spans):
            assert line.startswith("- "), line
            assert line[2:] == good[a:b].rstrip("."), (line, good[a:b])
        assert ladder.answers["bullets"].covers == ladder.answers["good"].covers


def test_generated_speech_has_no_punctuation(ladders: list[Ladder]) -> None:
    # Apostrophes and hyphens stay inside words ("it's", "cross-validation"), and "_" is part of identifiers.
    forbidden = set(string.punctuation) - {"'", "-", "_"}
    for ladder in ladders:
        speech = ladder.answers["speech"].text
        assert not forbidden & set(speech), (ladder.question.id, sorted(forbidden & set(speech)))
        assert speech == speech.lower() and "\n" not in speech
        assert len(speech.split()) >= len(re.findall(r"\w+", ladder.answers["paraphrase"].text)) // 2
        assert ladder.answers["speech"].covers == ladder.answers["paraphrase"].covers


# ---- 2. ordering() and verdict_accuracy() on hand-built ladders ----------------------------------------------


@pytest.fixture(scope="module")
def tiny_question() -> Any:
    return load_bank(FIXTURES / "bank").get("bias-variance-tradeoff")


def _ladder(question: Any, levels: dict[str, int | None], covers: dict[str, list[str]] | None = None,
            contradicts: dict[str, list[str]] | None = None) -> Ladder:
    covers, contradicts = covers or {}, contradicts or {}
    answers = {k: Answer(k, f"{k} answer", list(covers.get(k, [])), list(contradicts.get(k, [])), level=lvl) for k, lvl in levels.items()}
    return Ladder(question, answers)


def _scores(table: dict[str, float]) -> Callable[[str, str], float]:
    return lambda qid, kind: table[kind]


def test_ordering_is_perfect_when_scores_follow_levels(tiny_question: Any) -> None:
    ladder = _ladder(tiny_question, {"good": 2, "partial": 1, "wrong": 0})
    out = ordering([ladder], _scores({"good": 4.5, "partial": 2.0, "wrong": 0.5}))
    assert out["pairwise_ordering"] == 1.0 and out["pairs"] == 3
    assert out["spearman_pooled"] == pytest.approx(1.0) and out["spearman_mean_per_ladder"] == pytest.approx(1.0)


def test_a_reversed_pair_lowers_ordering(tiny_question: Any) -> None:
    ladder = _ladder(tiny_question, {"good": 2, "partial": 1, "wrong": 0})
    out = ordering([ladder], _scores({"good": 2.0, "partial": 4.5, "wrong": 0.5}))
    assert out["pairs"] == 3 and out["pairwise_ordering"] == pytest.approx(2 / 3, abs=1e-4)
    assert out["spearman_pooled"] < 1.0
    reversed_all = ordering([ladder], _scores({"good": 0.5, "partial": 2.0, "wrong": 4.5}))
    assert reversed_all["pairwise_ordering"] == 0.0 and reversed_all["spearman_pooled"] == pytest.approx(-1.0)


@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")
def test_ties_count_half(tiny_question: Any) -> None:
    ladder = _ladder(tiny_question, {"good": 2, "partial": 1, "wrong": 0})
    out = ordering([ladder], _scores({"good": 3.0, "partial": 3.0, "wrong": 0.5}))
    assert out["pairwise_ordering"] == pytest.approx(2.5 / 3, abs=1e-4)
    all_tied = ordering([ladder], _scores({"good": 1.0, "partial": 1.0, "wrong": 1.0}))
    assert all_tied["pairwise_ordering"] == 0.5


@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")
def test_ordering_metrics_stay_numbers_when_every_score_ties(tiny_question: Any) -> None:
    ladder = _ladder(tiny_question, {"good": 2, "partial": 1, "wrong": 0})
    out = ordering([ladder], _scores({"good": 0.0, "partial": 0.0, "wrong": 0.0}))
    assert out["spearman_mean_per_ladder"] == 0.0
    json.loads(json.dumps(out), parse_constant=lambda c: pytest.fail(f"{c} in the metrics"))
    assert out["spearman_pooled"] == out["spearman_pooled"], "NaN"


def test_same_level_pairs_and_unranked_answers_do_not_count(tiny_question: Any) -> None:
    ladder = _ladder(tiny_question, {"good": 2, "partial": 1, "vague": 0, "wrong": 0, "stuffing": None})
    # vague vs wrong share a level, stuffing has none: their order is not measured, however wild the scores.
    out = ordering([ladder], _scores({"good": 4.0, "partial": 2.0, "vague": 0.0, "wrong": 1.0, "stuffing": 5.0}))
    assert out["pairs"] == 5 and out["pairwise_ordering"] == 1.0


def test_ordering_pools_pairs_over_ladders(tiny_question: Any) -> None:
    a = _ladder(tiny_question, {"good": 2, "wrong": 0})
    b = _ladder(tiny_question.model_copy(update={"id": "other-q"}), {"good": 2, "wrong": 0})
    table = {("bias-variance-tradeoff", "good"): 4.0, ("bias-variance-tradeoff", "wrong"): 1.0,
             ("other-q", "good"): 1.0, ("other-q", "wrong"): 4.0}
    out = ordering([a, b], lambda qid, kind: table[(qid, kind)])
    assert out["pairs"] == 2 and out["pairwise_ordering"] == 0.5
    assert out["spearman_mean_per_ladder"] == pytest.approx(0.0)


def _card(verdicts: dict[str, Verdict]) -> Any:
    return SimpleNamespace(verdicts=[
        CriterionVerdict(point_id=pid, point=pid, weight=1.0, verdict=v, credit=VERDICT_CREDIT[v]) for pid, v in verdicts.items()
    ])


def test_verdict_accuracy_against_known_coverage(tiny_question: Any) -> None:
    ids = [p.id for p in tiny_question.rubric]
    assert len(ids) == 4
    ladder = _ladder(
        tiny_question, {"good": 2, "partial": 1, "wrong": 0, "bullets": None},
        covers={"good": ids, "partial": ids[:2], "bullets": ids},
        contradicts={"wrong": ids[:1]},
    )
    ladder.answers["bullets"].known = False  # generated variants are never scored for verdicts
    C, P, M, X = Verdict.COVERED, Verdict.PARTIAL, Verdict.MISSING, Verdict.CONTRADICTED
    cards = {
        "good": _card({ids[0]: C, ids[1]: C, ids[2]: C, ids[3]: P}),     # 3/4 exact, 4/4 credited
        "partial": _card({ids[0]: C, ids[1]: P, ids[2]: M, ids[3]: M}),  # 3/4 exact, 4/4 credited
        "wrong": _card({ids[0]: X, ids[1]: M, ids[2]: M, ids[3]: P}),    # 4/4 exact, 3/4 credited
        "bullets": _card({ids[0]: M, ids[1]: M, ids[2]: M, ids[3]: M}),  # ignored
    }
    out = verdict_accuracy([ladder], lambda qid, kind: cards[kind])
    assert out["points"] == 12
    assert out["covered_accuracy"] == pytest.approx(10 / 12, abs=1e-4)
    assert out["credited_accuracy"] == pytest.approx(11 / 12, abs=1e-4)
    assert out["contradicted_points_without_credit"] == 1.0

    perfect = {"good": _card(dict.fromkeys(ids, C)), "partial": _card({ids[0]: C, ids[1]: C, ids[2]: M, ids[3]: M}),
               "wrong": _card({ids[0]: X, ids[1]: M, ids[2]: M, ids[3]: M}), "bullets": cards["bullets"]}
    best = verdict_accuracy([ladder], lambda qid, kind: perfect[kind])
    assert best["covered_accuracy"] == best["credited_accuracy"] == 1.0

    credited_contradiction = dict(perfect, wrong=_card({ids[0]: P, ids[1]: M, ids[2]: M, ids[3]: M}))
    assert verdict_accuracy([ladder], lambda qid, kind: credited_contradiction[kind])["contradicted_points_without_credit"] == 0.0


# ---- 3. the grading harness with an LLM engine backed by FakeLLM ---------------------------------------------

_FENCED = re.compile(r"<(answer-[0-9a-f]{10})>\n(.*)\n</\1>", re.DOTALL)
_POINT_ID = re.compile(r"^- `([^`]+)`:", re.MULTILINE)


def _prompt_parts(messages: list[dict[str, str]]) -> tuple[list[str], str]:
    """The rubric point ids and the candidate's answer, read back from the grader prompt."""
    prompt = messages[-1]["content"]
    rubric_section = prompt.split("## Rubric points", 1)[1].split("## The candidate's answer", 1)[0]
    found = _FENCED.search(prompt)
    assert found, "the grader prompt fences the answer"
    return _POINT_ID.findall(rubric_section), found.group(2)


def _quote(answer: str) -> str:
    """A verbatim passage of the answer that is not addressed to the grader (what a good judge would quote)."""
    for a, b in sentences(answer):
        if not is_instruction_to_grader(answer[a:b]):
            return answer[a:b]
    return answer


def annotation_oracle(ladders: list[Ladder], *, invert: bool = False) -> tuple[Callable[[list[dict[str, str]]], dict[str, Any]], list[tuple[list[str], str]]]:
    """A scripted judge that returns each answer's annotated coverage (or its opposite), and the prompts it saw."""
    truth: dict[str, tuple[set[str], set[str]]] = {}
    for ladder in ladders:
        for answer in ladder.answers.values():
            key = answer.text.strip()
            value = (set(answer.covers), set(answer.contradicts))
            assert truth.setdefault(key, value) == value, "two answers with one text and different annotations"
    seen: list[tuple[list[str], str]] = []

    def reply(messages: list[dict[str, str]]) -> dict[str, Any]:
        point_ids, answer = _prompt_parts(messages)
        seen.append((point_ids, answer))
        covers, contradicts = truth[answer.strip()]  # KeyError: the prompt did not carry the answer verbatim
        items = []
        for pid in point_ids:
            verdict = "contradicted" if pid in contradicts else "covered" if pid in covers else "missing"
            if invert:
                verdict = "missing" if verdict == "covered" else "covered"
            items.append({"point_id": pid, "verdict": verdict,
                          "evidence": None if verdict == "missing" else _quote(answer), "reason": "scripted"})
        return {"verdicts": items}

    return reply, seen


def _fake_grader(settings: Settings, *replies: Any) -> tuple[Grader, FakeLLM]:
    fake = FakeLLM(model=MODEL).enqueue(*replies)
    grader = Grader(settings)
    grader._judges["llm"] = LLMJudge(settings, fake, mode="rubric")
    return grader, fake


@pytest.fixture()
def llm_settings(bank_settings: Settings) -> Settings:
    return bank_settings.model_copy(update={"model": MODEL})


def _calls(ladders: list[Ladder], repeats: int) -> int:
    return sum(len(l.answers) for l in ladders) * repeats


def test_llm_engine_through_the_harness_with_an_annotation_oracle(llm_settings: Settings, ladders: list[Ladder]) -> None:
    chosen = ladders[:3]
    oracle, seen = annotation_oracle(chosen)
    calls = _calls(chosen, 2)
    grader, fake = _fake_grader(llm_settings, *[oracle] * calls)

    result = run(grader, chosen, engine="llm", repeats=2, semeval_sample=None)

    assert fake.pending == 0 and len(fake.calls) == calls, "every answer of every ladder went to the model, twice"
    assert all(c.method == "complete_json" and c.kwargs["temperature"] == 0.0 for c in fake.calls)
    # Each prompt carried exactly its question's rubric point ids.
    rubric_ids = {tuple(p.id for p in l.question.rubric) for l in chosen}
    assert all(tuple(ids) in rubric_ids for ids, _ in seen)

    for section in METRIC_SECTIONS:
        assert section in result, section
    assert result["engine"] == "llm" and result["engines_used"] == [f"llm:{MODEL}"]
    assert result["ladders"] == 3 and result["ladders_held_out"] == 0 and result["answers_graded"] == calls
    assert "semeval" not in result
    assert len(result["scores"]) == sum(len(l.answers) for l in chosen)
    assert set(result["mean_score_by_kind"]) == set(chosen[0].answers)

    # The LLM thresholds, and only the four that apply to an LLM engine.
    assert {c["name"]: c["threshold"] for c in result["checks"]} == LLM_CHECKS
    assert {c["name"]: c["op"] for c in result["checks"]} == {
        "pairwise ordering": ">=", "repeatability (identical share)": ">=", "paraphrase mean change": "<=", "injection max change": "<="}

    # A judge that follows the annotations orders the ladders, agrees with itself and with every known verdict.
    assert result["ordering"]["pairwise_ordering"] >= T.LLM_PAIRWISE_ORDERING
    assert result["ordering"]["spearman_mean_per_ladder"] > 0.8
    assert result["repeatability"] == {"repeats": 2, "identical_share": 1.0, "max_spread": 0.0}
    assert result["invariance"]["paraphrase_mean_abs_change"] == 0.0
    assert result["robustness"]["injection_max_change"] == 0.0
    assert result["verdicts"]["covered_accuracy"] == 1.0 and result["verdicts"]["credited_accuracy"] == 1.0
    assert result["verdicts"]["points"] > 0
    by_kind = result["mean_score_by_kind"]
    assert by_kind["good"] == 5.0 and by_kind["off_topic"] == 0.0 and by_kind["stuffing"] == 0.0
    assert by_kind["good"] > by_kind["partial"] > by_kind["vague"]
    assert all(c["passed"] for c in result["checks"]), result["checks"]


def test_the_harness_catches_a_judge_that_inverts_quality(llm_settings: Settings, ladders: list[Ladder]) -> None:
    chosen = ladders[:3]
    oracle, _ = annotation_oracle(chosen, invert=True)
    grader, fake = _fake_grader(llm_settings, *[oracle] * _calls(chosen, 1))
    result = run(grader, chosen, engine="llm", repeats=1, semeval_sample=None)
    assert fake.pending == 0
    assert result["ordering"]["pairwise_ordering"] < 0.2
    assert result["robustness"]["stuffing_beats_partial_share"] == 1.0
    failed = {c["name"] for c in result["checks"] if not c["passed"]}
    assert "pairwise ordering" in failed


def test_the_harness_catches_a_judge_that_changes_its_mind(llm_settings: Settings, ladders: list[Ladder]) -> None:
    chosen = ladders[:2]
    oracle, _ = annotation_oracle(chosen)
    flips = iter(range(10**6))

    def flaky(messages: list[dict[str, str]]) -> dict[str, Any]:
        reply = oracle(messages)
        if next(flips) % 2:  # every second grading of an answer: nothing covered
            reply = {"verdicts": [dict(v, verdict="missing", evidence=None) for v in reply["verdicts"]]}
        return reply

    grader, _ = _fake_grader(llm_settings, *[flaky] * _calls(chosen, 2))
    result = run(grader, chosen, engine="llm", repeats=2, semeval_sample=None)
    assert result["repeatability"]["identical_share"] < T.LLM_REPEATABILITY_IDENTICAL
    assert result["repeatability"]["max_spread"] == 5.0
    assert not next(c for c in result["checks"] if c["name"] == "repeatability (identical share)")["passed"]


@pytest.mark.slow  # the fallback grades with the offline engine, which loads MiniLM
def test_a_failing_model_falls_back_to_offline_and_the_harness_completes(llm_settings: Settings, ladders: list[Ladder]) -> None:
    chosen = ladders[:3]
    calls = _calls(chosen, 2)
    down = lambda messages: LLMError("connection refused", kind="connection", attempts=3)  # noqa: E731
    grader, fake = _fake_grader(llm_settings, *[down] * calls)

    result = run(grader, chosen, engine="llm", repeats=2, semeval_sample=None)

    assert fake.pending == 0 and len(fake.calls) == calls, "the model was tried for every grading"
    assert result["engines_used"] == ["offline (fallback from llm: connection)"]
    assert result["answers_graded"] == calls
    for section in METRIC_SECTIONS:
        assert section in result, section
    assert {c["name"]: c["threshold"] for c in result["checks"]} == LLM_CHECKS  # gated as the engine asked for
    assert result["repeatability"]["identical_share"] == 1.0  # the offline engine is deterministic
    assert result["mean_score_by_kind"]["good"] > result["mean_score_by_kind"]["off_topic"]


# ---- 4. run_suites, write_report, compare ----------------------------------------------------------------------


@pytest.mark.slow  # indexes the real bank with MiniLM
def test_retrieval_suite_meets_thresholds_and_writes_its_report(bank_settings: Settings, tmp_path: Path) -> None:
    seen: list[tuple[str, int, int]] = []
    results = run_suites("retrieval", "offline", bank_settings, progress=lambda name, d, t: seen.append((name, d, t)))

    assert results["engine"] == "offline" and results["model"] is None and "grading" not in results
    r = results["retrieval"]
    assert r["queries"] >= 100 and set(r["modes"]) == {"hybrid", "dense", "bm25"}
    hybrid = r["modes"]["hybrid"]
    assert hybrid["recall_at_1"] >= T.RETRIEVAL_HYBRID_RECALL_AT_1
    assert hybrid["recall_at_5"] >= T.RETRIEVAL_HYBRID_RECALL_AT_5
    assert {c["name"]: (c["op"], c["threshold"]) for c in results["checks"]} == {
        "hybrid Recall@1": (">=", T.RETRIEVAL_HYBRID_RECALL_AT_1), "hybrid Recall@5": (">=", T.RETRIEVAL_HYBRID_RECALL_AT_5)}
    assert results["passed"] is True and all(c["passed"] for c in results["checks"])
    assert len(r["hybrid_misses"]) == round(r["queries"] * (1 - hybrid["recall_at_1"]))
    assert seen and seen[-1] == ("retrieval", 3 * r["queries"], 3 * r["queries"])

    out = tmp_path / "report"
    path = write_report(results, out)
    assert path == out / "report.md"
    report = path.read_text(encoding="utf-8")
    assert "**PASSED**" in report and "## Retrieval" in report and "| hybrid Recall@1 |" in report
    assert "## Grading" not in report and not (out / "grading.png").exists()
    assert json.loads((out / "results.json").read_text(encoding="utf-8")) == results

    previous = copy.deepcopy(results)
    previous["run_at"] = "2000-01-01T00:00:00+00:00"
    previous["seconds"] = results["seconds"] + 100
    previous["retrieval"]["modes"]["hybrid"]["recall_at_1"] = round(hybrid["recall_at_1"] - 0.05, 4)
    assert compare(results, previous) == [("retrieval.modes.hybrid.recall_at_1", previous["retrieval"]["modes"]["hybrid"]["recall_at_1"], hybrid["recall_at_1"])]
    assert compare(results, copy.deepcopy(results)) == []
    again = write_report(results, tmp_path / "again", previous).read_text(encoding="utf-8")
    assert "## Changes since 2000-01-01T00:00:00+00:00" in again and "- retrieval.modes.hybrid.recall_at_1: " in again


def test_compare_lists_changed_numbers_only() -> None:
    previous = {"run_at": "then", "seconds": 10.0, "passed": True,
                "retrieval": {"queries": 10, "modes": {"hybrid": {"mrr": 0.9, "recall_at_1": 0.8}}, "checks": [{"value": 1}],
                              "hybrid_misses": [{"rank": 2}]},
                "grading": {"ordering": {"pairwise_ordering": 0.9}, "scores": {"q/good": 4.0}}}
    current = copy.deepcopy(previous)
    current.update(run_at="now", seconds=99.0, passed=False)
    current["retrieval"]["modes"]["hybrid"]["mrr"] = 0.95
    current["retrieval"]["checks"] = [{"value": 0}]
    current["retrieval"]["hybrid_misses"] = []
    current["grading"]["scores"]["q/good"] = 1.0  # per-answer scores are not metrics
    current["grading"]["ordering"]["pairwise_ordering"] = 0.8
    current["grading"]["ordering"]["new_metric"] = 1.0  # not in the previous run: nothing to compare with
    assert compare(current, previous) == [("grading.ordering.pairwise_ordering", 0.9, 0.8), ("retrieval.modes.hybrid.mrr", 0.9, 0.95)]


def test_grading_report_with_a_fake_llm_writes_a_png(llm_settings: Settings, ladders: list[Ladder], tmp_path: Path) -> None:
    chosen = ladders[:3]
    oracle, _ = annotation_oracle(chosen)
    grader, fake = _fake_grader(llm_settings, *[oracle] * _calls(chosen, 1))

    results = run_suites("grading", "llm", llm_settings, repeats=1, semeval_sample=None, ladder_limit=3, grader=grader)

    assert fake.pending == 0
    assert results["engine"] == "llm" and results["model"] == MODEL and "retrieval" not in results
    assert results["grading"]["engines_used"] == [f"llm:{MODEL}"] and results["grading"]["ladders"] == 3
    assert results["checks"] == results["grading"]["checks"] and results["passed"] is True

    out = tmp_path / "grading-report"
    report = write_report(results, out).read_text(encoding="utf-8")
    assert f"engine `llm` ({MODEL})" in report
    assert "## Grading (3 ladders" in report and "**ordering**: pairwise_ordering = " in report
    assert "![score by answer kind](grading.png)" in report and "SemEval" not in report
    png = (out / "grading.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 10_000
    import matplotlib.image

    pixels = matplotlib.image.imread(out / "grading.png")
    assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 500
    assert json.loads((out / "results.json").read_text(encoding="utf-8"))["grading"]["scores"] == results["grading"]["scores"]

    previous = copy.deepcopy(results)
    previous["grading"]["ordering"]["pairwise_ordering"] = 0.5
    changes = compare(results, previous)
    assert ("grading.ordering.pairwise_ordering", 0.5, results["grading"]["ordering"]["pairwise_ordering"]) in changes
    assert all(not k.startswith("grading.scores") for k, _, _ in changes)


def test_the_report_says_when_the_llm_engine_fell_back(llm_settings: Settings, ladders: list[Ladder], tmp_path: Path) -> None:
    chosen = ladders[:1]
    oracle, _ = annotation_oracle(chosen)
    grader, _ = _fake_grader(llm_settings, *[oracle] * _calls(chosen, 1))
    results = run_suites("grading", "llm", llm_settings, repeats=1, semeval_sample=None, ladder_limit=1, grader=grader)
    # What a run with a dead API key records (see the fallback test above), without paying for the offline engine here.
    results["grading"]["engines_used"] = ["offline (fallback from llm: connection)"]
    report = write_report(results, tmp_path / "r").read_text(encoding="utf-8")
    assert "fallback" in report


# ---- 5. the `mockml eval` command ------------------------------------------------------------------------------


def _run_eval(*args: str, data_dir: Path, extra_env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin", "HOME": str(data_dir.parent),
        "MOCKML_DATA_DIR": str(data_dir), "MOCKML_KNOWLEDGE_DIR": str(REPO_ROOT / "knowledge"),
        **(extra_env or {}),
    }
    return subprocess.run([sys.executable, "-m", "app.cli", "eval", *args], capture_output=True, text=True, env=env, timeout=timeout)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nonsense"], "unknown suite 'nonsense'"),
        (["retrieval", "--engine", "bogus"], "--engine must be offline, llm or local"),
        (["retrieval", "--compare", "no-such-results.json"], "--compare file no-such-results.json does not exist"),
        (["grading", "--engine", "llm"], "MOCKML_MODEL"),
    ],
    ids=["unknown-suite", "unknown-engine", "missing-compare", "llm-without-model"],
)
def test_cli_eval_bad_input_exits_2_with_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    result = _run_eval(*args, data_dir=tmp_path / "data", timeout=120)
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stderr.startswith("error:") and message in result.stderr, result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert not (tmp_path / "data" / "evals").exists(), "no report for a refused run"


def test_cli_eval_compare_refuses_a_file_that_is_not_json(tmp_path: Path) -> None:
    bad = tmp_path / "results.json"
    bad.write_text("not json", encoding="utf-8")
    result = _run_eval("retrieval", "--compare", str(bad), data_dir=tmp_path / "data", timeout=120)
    assert result.returncode == 2 and "is not a results.json" in result.stderr, result.stderr


@pytest.mark.slow  # a subprocess that indexes the real bank with MiniLM
def test_cli_eval_retrieval_writes_the_report_and_exits_0(tmp_path: Path) -> None:
    out = tmp_path / "eval-out"
    result = _run_eval("retrieval", "--out", str(out), data_dir=tmp_path / "data")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "pass  hybrid Recall@1" in result.stdout and "pass  hybrid Recall@5" in result.stdout
    assert f"report: {out / 'report.md'}" in result.stdout.replace("\n", "")
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results["passed"] is True and results["engine"] == "offline" and "retrieval" in results and "grading" not in results
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "**PASSED**" in report and "## Retrieval" in report


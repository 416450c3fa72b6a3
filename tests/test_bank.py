"""`mockml bank check`: every kind of authoring mistake is reported as file:line: message, exit 2."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.bank import SEED_FILES, check
from app.config import REPO_ROOT

from .conftest import FIXTURES

SEEDS = REPO_ROOT.parent / "shared" / "seeds"
GOOD = (FIXTURES / "bank" / "tiny.yaml").read_text()


def _bank_with(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "bank"
    folder.mkdir()
    (folder / "topic.yaml").write_text(text)
    return folder


def _problems(tmp_path: Path, text: str) -> list[str]:
    folder = _bank_with(tmp_path, text)
    _, problems = check(folder, SEEDS)
    return [str(p).replace(str(folder) + "/", "") for p in problems]


def test_fixture_bank_is_clean(tmp_path: Path) -> None:
    bank, problems = check(FIXTURES / "bank", SEEDS)
    assert problems == []
    assert len(bank.questions) == 3


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t.replace("    kind: theory\n    level: junior\n    rubric:", "    kind: theory\n    level: junior\n    rubric: [\n", 1),
         "topic.yaml:10: bad YAML"),
        (lambda t: t.replace("id: precision-recall-f1", "id: bias-variance-tradeoff"), "duplicate question id 'bias-variance-tradeoff'"),
        (lambda t: t.replace("weight: 1.5\n        key_terms: [\"f1\"", "weight: 0\n        key_terms: [\"f1\""),
         "question precision-recall-f1: rubric.2.weight: Input should be greater than 0"),
        (lambda t: t.replace("probes: tradeoff-total-error", "probes: no-such-point"),
         "follow-up points at missing rubric point 'no-such-point'"),
        (lambda t: t.replace("seed: 000_ab7ac86d6989dbcc.txt", "seed: 999_unknown.txt"), "unknown seed file '999_unknown.txt'"),
        (lambda t: t.replace("and how it influences model selection.", "and why it matters so much."),
         "sources.0.original is not a verbatim quote of 000_ab7ac86d6989dbcc.txt"),
        (lambda t: t.replace("source: mockml\n        text: >-\n          I read", "source: my-blog\n        text: >-\n          I read"),
         "model answer source 'my-blog' is not a seed file or 'mockml'"),
    ],
    ids=["bad-yaml", "duplicate-id", "weight-not-positive", "follow-up-missing-point", "unknown-seed", "not-verbatim", "bad-answer-source"],
)
def test_each_problem_is_reported_with_its_line(tmp_path: Path, edit, expected: str) -> None:  # type: ignore[no-untyped-def]
    if "verbatim" in expected and not SEEDS.is_dir():
        pytest.skip("seed documents not present")
    problems = _problems(tmp_path, edit(GOOD))
    assert any(expected in p for p in problems), problems
    assert all(p.startswith("topic.yaml:") for p in problems), problems


def test_empty_rubric_is_reported_at_its_line(tmp_path: Path) -> None:
    text = GOOD.replace(
        GOOD[GOOD.index("    rubric:\n      - id: sources") : GOOD.index("    model_answers:\n      - source: mockml\n        text: >-\n          I read")],
        "    rubric: []\n",
    )
    problems = _problems(tmp_path, text)
    rubric_line = text.splitlines().index("    rubric: []") + 1
    assert any(p.startswith(f"topic.yaml:") and "staying-current-with-ml: rubric" in p for p in problems), problems
    assert any(f":{rubric_line - 6}:" in p or f":{rubric_line}:" in p for p in problems), (rubric_line, problems)


def test_short_rubric_is_refused_for_bank_questions(tmp_path: Path) -> None:
    text = GOOD.replace(
        GOOD[GOOD.index("      - id: hands-on") : GOOD.index("      - id: production-filter")], ""
    )
    problems = _problems(tmp_path, text)
    assert any("rubric has 2 point(s); a bank question needs 3–7" in p for p in problems), problems


def test_cli_exits_2_and_prints_file_line(tmp_path: Path) -> None:
    folder = _bank_with(tmp_path, GOOD.replace("probes: tradeoff-total-error", "probes: nope"))
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "bank", "check", "--knowledge", str(folder)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert f"{folder}/topic.yaml:" in result.stderr
    assert "missing rubric point 'nope'" in result.stderr


def test_real_bank_is_complete() -> None:
    """The shipped bank: clean, at least 120 questions over at least 8 tracks, every seed used."""
    bank, problems = check(REPO_ROOT / "knowledge", SEEDS)
    assert problems == []
    assert len(bank.questions) >= 120
    assert len({q.track for q in bank.questions}) >= 8
    used = {s.seed for q in bank.questions for s in q.sources}
    assert used >= set(SEED_FILES)
    assert len(bank.closing) >= 7
    for q in bank.questions:
        assert 3 <= len(q.rubric) <= 7, q.id
        assert q.model_answers, q.id

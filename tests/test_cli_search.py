"""`mockml index`, `mockml search` and `mockml bank check` as a user runs them: a subprocess, stdout, exit code."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.config import Settings

from .conftest import FIXTURES

pytestmark = pytest.mark.slow  # each search subprocess loads the real MiniLM model

BV = "bias-variance-tradeoff"
TINY_IDS = {BV, "precision-recall-f1", "staying-current-with-ml"}
SUMMARY = re.compile(
    r"index ready at (?P<where>\S+): (?P<docs>\d+) documents for (?P<questions>\d+) questions "
    r"\((?P<added>\d+) added, (?P<updated>\d+) updated, (?P<removed>\d+) removed, (?P<unchanged>\d+) unchanged\) in [\d.]+ s"
)


def run_cli(*args: str, settings: Settings, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The CLI in a clean environment that points only at `settings`' bank, data dir and collection."""
    home = settings.data_dir.parent
    env = {
        "PATH": "/usr/bin:/bin", "HOME": str(home),
        "MOCKML_DATA_DIR": str(settings.data_dir), "MOCKML_KNOWLEDGE_DIR": str(settings.knowledge_dir),
        "MOCKML_COLLECTION": settings.collection,
    }
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, env=env, cwd=home, timeout=timeout
    )


def assert_one_error_line(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@dataclass
class Indexed:
    settings: Settings
    first: subprocess.CompletedProcess[str]
    second: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> Indexed:
    """The fixture bank indexed by `mockml index` twice in one private data dir, shared by this module."""
    root = tmp_path_factory.mktemp("cli")
    settings = Settings(_env_file=None, data_dir=root / "data", knowledge_dir=FIXTURES / "bank", collection="tcli_search")
    first = run_cli("index", settings=settings)
    second = run_cli("index", settings=settings)
    return Indexed(settings, first, second)


def test_index_prints_a_summary_and_a_second_run_reports_all_unchanged(indexed: Indexed) -> None:
    assert indexed.first.returncode == 0, indexed.first.stderr
    first = SUMMARY.search(indexed.first.stdout)
    assert first, indexed.first.stdout
    assert first["where"] == str(indexed.settings.data_dir / "chroma")
    docs = int(first["docs"])
    assert int(first["questions"]) == 3 and docs >= 3
    assert (int(first["added"]), int(first["updated"]), int(first["removed"]), int(first["unchanged"])) == (docs, 0, 0, 0)

    assert indexed.second.returncode == 0, indexed.second.stderr
    second = SUMMARY.search(indexed.second.stdout)
    assert second, indexed.second.stdout
    assert int(second["docs"]) == docs
    assert (int(second["added"]), int(second["updated"]), int(second["removed"]), int(second["unchanged"])) == (0, 0, 0, docs)


def test_search_json_returns_ranked_results_with_full_questions(indexed: Indexed) -> None:
    result = run_cli("search", "bias variance tradeoff", "-k", "3", "--json", settings=indexed.settings)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, "--json prints exactly one JSON document (progress goes to stderr)"
    payload = json.loads(lines[0])
    assert payload["query"] == "bias variance tradeoff"
    results = payload["results"]
    assert 1 <= len(results) <= 3
    assert [r["id"] for r in results][0] == BV
    assert {r["id"] for r in results} <= TINY_IDS
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    top = results[0]
    assert top["question"]["id"] == BV and top["dense_rank"] == 1 and top["bm25_rank"] == 1
    q = top["question"]
    assert {"text", "track", "topic", "kind", "level", "rubric", "model_answers", "follow_ups", "sources"} <= q.keys()
    assert len(q["rubric"]) == 4 and q["model_answers"]
    assert q["sources"] and q["sources"][0]["seed"] == "000_ab7ac86d6989dbcc.txt" and q["sources"][0]["original"]


def test_search_batch_json_prints_one_line_per_query_in_order(indexed: Indexed, tmp_path: Path) -> None:
    long_line = "w" * 10_000
    queries = ["bias variance tradeoff", "", "precision and recall", "   ", long_line, "keeping up with new papers", "\x00\x01"]
    batch = tmp_path / "queries.txt"
    batch.write_text("\n".join(queries) + "\n", encoding="utf-8")
    result = run_cli("search", "--batch", str(batch), "-k", "2", "--json", settings=indexed.settings)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    expected = [q for q in queries if q.strip()]
    assert len(rows) == len(expected) == 5

    assert rows[0]["query"] == "bias variance tradeoff" and rows[0]["results"][0]["id"] == BV
    assert rows[1]["query"] == "precision and recall" and rows[1]["results"][0]["id"] == "precision-recall-f1"
    assert "error" in rows[2] and "results" not in rows[2]
    assert "10,000 characters" in rows[2]["error"]
    assert rows[2]["query"] == long_line[:200], "a huge query is echoed truncated"
    assert rows[3]["query"] == "keeping up with new papers" and rows[3]["results"][0]["id"] == "staying-current-with-ml"
    assert "error" in rows[4] and "readable" in rows[4]["error"]
    for row in (rows[0], rows[1], rows[3]):
        assert 1 <= len(row["results"]) <= 2
        assert all(r["question"]["id"] == r["id"] for r in row["results"])


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["search", ""], ["empty"]),
        (["search", "q" * 10_000], ["10,000 characters"]),
        (["search", "bias", "--track", "astrology"], ["--track", "astrology", "ml-fundamentals"]),
    ],
    ids=["empty", "10k-chars", "unknown-track"],
)
def test_search_bad_input_exits_2_with_one_error_line(tiny_settings: Settings, args: list[str], needles: list[str]) -> None:
    assert_one_error_line(run_cli(*args, settings=tiny_settings, timeout=60), *needles)


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["search", "   "], ["empty"]),
        (["search", "\x00\x01"], ["readable"]),
        (["search", "bias", "--kind", "trivia"], ["--kind", "theory"]),
        (["search", "bias", "--level", "guru"], ["--level", "senior"]),
        (["search", "bias", "--mode", "fuzzy"], ["--mode", "hybrid"]),
        (["search"], ["QUERY", "--batch"]),
        (["search", "bias", "--batch", "queries.txt"], ["not both"]),
        (["search", "--batch", "no-such-file.txt"], ["does not exist"]),
    ],
    ids=["whitespace", "control-chars", "kind", "level", "mode", "neither", "both", "missing-batch-file"],
)
def test_more_search_bad_input_in_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str], needles: list[str]
) -> None:
    """The same contract through `main()` in this process (each of these fails before any model loads)."""
    from app.cli import main

    monkeypatch.setattr(sys, "argv", ["mockml", *args])
    with pytest.raises(SystemExit) as info:
        main()
    captured = capsys.readouterr()
    assert_one_error_line(subprocess.CompletedProcess(args, info.value.code, captured.out, captured.err), *needles)


def test_bank_check_on_the_real_bank_exits_0(bank_settings: Settings) -> None:
    result = run_cli("bank", "check", settings=bank_settings, timeout=60)
    assert result.returncode == 0, result.stderr
    assert re.search(r"bank ok: \d+ questions in 9 tracks", result.stdout), result.stdout
    assert result.stderr.strip() == ""


def test_bank_check_with_a_missing_folder_exits_2(tiny_settings: Settings, tmp_path: Path) -> None:
    result = run_cli("bank", "check", "--knowledge", str(tmp_path / "nowhere"), settings=tiny_settings, timeout=60)
    assert_one_error_line(result, "does not exist", "MOCKML_KNOWLEDGE_DIR")


"""The browser app's formatting helpers and wiring, without a browser (the browser tests are in test_ui.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import Settings
from app.errors import ConfigError
from app.grading.models import CriterionVerdict, Scorecard, Verdict
from app.ui import auth_pair, esc, highlight_segments, report_files, verdicts_html

XSS = "<script>window.__xss=1</script>"


def verdict(point_id: str, verdict: Verdict, evidence: str | None) -> CriterionVerdict:
    return CriterionVerdict(point_id=point_id, point=f"point {point_id} <b>", weight=1.0, verdict=verdict,
                            credit=1.0 if verdict is Verdict.COVERED else 0.0, evidence=evidence)


def test_highlight_segments_cover_the_whole_answer_in_order() -> None:
    answer = "Bias underfits. Variance overfits. The end."
    segs = highlight_segments(answer, [verdict("b", Verdict.MISSING, None), verdict("v", Verdict.COVERED, "Variance overfits."),
                                       verdict("x", Verdict.PARTIAL, "Bias underfits."), verdict("o", Verdict.COVERED, "overfits")])
    assert "".join(text for text, _ in segs) == answer
    assert ("Bias underfits.", "partial") in segs and ("Variance overfits.", "covered") in segs


def test_verdicts_html_escapes_everything_user_controlled() -> None:
    card = Scorecard(question=XSS, score=2.5, verdicts=[verdict("a", Verdict.COVERED, XSS)], strengths=[XSS], gaps=[XSS],
                     improvement=XSS, engine="offline", notes=[XSS])
    out = verdicts_html(card)
    assert "<script>" not in out and "&lt;script&gt;" in out and "<b>" not in out
    assert esc(XSS) == "&lt;script&gt;window.__xss=1&lt;/script&gt;"


def test_report_files_copies_the_report_and_drops_the_relative_image(tmp_path: Path) -> None:
    html = tmp_path / "abc-report.html"
    html.write_text("<html></html>")
    (tmp_path / "abc-report.md").write_text("# Interview report\n![Score by topic](abc-chart.png)\nbody\n")
    (tmp_path / "abc-chart.png").write_bytes(b"\x89PNG")
    image, markdown, files = report_files(str(html))
    assert image and Path(image).name == "abc-chart.png" and Path(image).parent != tmp_path
    assert "![" not in markdown and "body" in markdown
    assert sorted(Path(f).name for f in files) == ["abc-report.html", "abc-report.md"]
    assert report_files(None) == (None, "", [])


def test_auth_pair_parses_user_and_password() -> None:
    assert auth_pair(Settings(auth="ada:s3cret:x")) == ("ada", "s3cret:x")
    assert auth_pair(Settings()) is None
    with pytest.raises(ConfigError, match="MOCKML_AUTH"):
        auth_pair(Settings(auth="nopassword"))


@pytest.mark.slow
def test_build_app_wires_the_tabs(tiny_settings: Settings) -> None:
    from app.ui import build_app

    demo = build_app(tiny_settings)
    ids = {getattr(block, "elem_id", None) for block in demo.blocks.values()}
    assert {"tab-interview", "tab-grade", "tab-bank", "tab-history", "chat", "g-card", "b-results", "h-table"} <= ids


def test_progress_text_counts_questions_in_words_a_person_would_write() -> None:
    from types import SimpleNamespace

    from app.sessions import Phase
    from app.ui import progress_text

    done = SimpleNamespace(phase=Phase.DONE, questions_total=1, progress="")
    assert progress_text(done) == "**Interview finished** · 1 question"
    assert progress_text(SimpleNamespace(phase=Phase.DONE, questions_total=4, progress="")).endswith("· 4 questions")

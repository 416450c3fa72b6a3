"""Browser tests: the real app in a subprocess, driven by headless Chromium through Playwright.

The server runs as `python -m app.cli ui` in its own process (never in-process: no fork after torch is loaded),
on the three-question fixture bank and a private data directory.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
XSS = "<script>window.__xss=1</script><img src=x onerror=\"window.__xss=2\">"
ANSWER = ("Bias is the error from wrong assumptions in the model, so a high-bias model underfits. "
          "Variance is the sensitivity to the particular training data, so a high-variance model overfits. "
          "Total error is bias squared plus variance plus irreducible noise, and regularisation or more data trades one for the other.")

sync_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    pytest.skip("Debian chromium is not installed (apt-get install -y chromium)", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def launch_app(data: Path, extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """The app on a free port with its data in `data`; yields its URL once it answers HTTP."""
    port = free_port()
    env = {**os.environ, "MOCKML_DATA_DIR": str(data), "MOCKML_KNOWLEDGE_DIR": str(ROOT / "tests" / "fixtures" / "bank"),
           "GRADIO_ANALYTICS_ENABLED": "False"}
    for name in ("MOCKML_MODEL", "MOCKML_AUTH", "MOCKML_DATABASE_URL", "MOCKML_CHROMA_HOST"):
        env.pop(name, None)
    env.update(extra_env or {})
    log = (data / "server.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "ui", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    started = time.monotonic()
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the app exited with {proc.returncode}: {(data / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() - started > 60:
                pytest.fail("the app did not answer within 60 s")
            time.sleep(0.3)
        print(f"server ready in {time.monotonic() - started:.1f} s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app (offline) on a free port; yields its URL once it answers HTTP."""
    with launch_app(tmp_path_factory.mktemp("ui-data")) as url:
        yield url


ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


@pytest.fixture(scope="module")
def playwright() -> Iterator[object]:
    with sync_api.sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright: object) -> Iterator[object]:
    b = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)  # type: ignore[attr-defined]
    yield b
    b.close()


@pytest.fixture()
def page(browser: object, server: str) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})  # type: ignore[attr-defined]
    # Record what the interviewer voice would say instead of speaking it.
    context.add_init_script("window.__spoken = []; if (window.speechSynthesis) "
                            "{ window.speechSynthesis.speak = u => window.__spoken.push(u.text); }")
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    # Offline by default: the page never asks another host for anything (fonts, analytics, CDNs).
    p.on("request", lambda req: None if req.url.startswith(("http://127.0.0.1", "data:", "blob:"))
         else errors.append(f"request left the machine: {req.url}"))
    p.set_default_timeout(60_000)
    p.goto(server)
    p.wait_for_selector("#start")
    yield p
    context.close()
    assert not errors, errors


def shot(page: object, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


def user_messages(page: object) -> int:
    return page.locator("#chat [data-testid='user']").count()  # type: ignore[attr-defined]


def send(page: object, text: str) -> None:
    """Type an answer, send it, and wait until the interviewer has replied."""
    before = user_messages(page)
    page.fill("#answer textarea", text)  # type: ignore[attr-defined]
    page.click("#send")  # type: ignore[attr-defined]
    page.wait_for_function(  # type: ignore[attr-defined]
        "n => document.querySelectorAll(\"#chat [data-testid='user']\").length > n "
        "&& !document.querySelector('#progress .pending, #chat .pending')", arg=before)
    page.wait_for_timeout(300)  # type: ignore[attr-defined]


def test_full_interview_ends_with_report(page: object) -> None:
    page.fill("#profile textarea, #profile input", "ada")  # type: ignore[attr-defined]
    page.fill("#n-questions input", "3")  # type: ignore[attr-defined]
    page.check("#voice input[type=checkbox]")  # type: ignore[attr-defined]
    page.click("#start")  # type: ignore[attr-defined]
    page.wait_for_selector("#progress:has-text('question 1 of 3')")  # type: ignore[attr-defined]
    # the interviewer voice read the first question aloud (browser speech synthesis, stubbed above)
    page.wait_for_function("window.__spoken.length > 0")  # type: ignore[attr-defined]
    assert page.evaluate("window.__spoken[0]") in page.locator("#chat").inner_text()  # type: ignore[attr-defined]
    answers, asked = 0, False
    for _ in range(15):
        if page.locator("#report-md:has-text('Interview report')").count():  # type: ignore[attr-defined]
            break
        if page.locator("#progress:has-text('Your questions')").count():  # type: ignore[attr-defined]
            # (d) markup in the candidate's text, asked as the candidate's question to the interviewer
            send(page, "no questions" if asked else f"How do you review models? {XSS}")
            asked = True
            continue
        send(page, ANSWER)
        answers += 1
        if answers == 2:
            shot(page, "interview-mid")
    page.wait_for_selector("#report-md:has-text('Interview report')")  # type: ignore[attr-defined]
    page.wait_for_selector("#report-chart img")  # type: ignore[attr-defined]
    shot(page, "interview-report")
    files = page.locator("#report-files").inner_text()  # type: ignore[attr-defined]
    assert ".html" in files and ".md" in files, files
    assert page.locator("#progress:has-text('Interview finished')").count()  # type: ignore[attr-defined]
    # (d) the candidate's markup shows as text and never runs
    assert page.locator("#chat").get_by_text("<script>window.__xss=1</script>", exact=False).count()  # type: ignore[attr-defined]
    assert page.evaluate("typeof window.__xss") == "undefined"  # type: ignore[attr-defined]
    shot(page, "interview-report")


def test_grade_shows_verdicts_and_evidence(page: object) -> None:
    page.get_by_role("tab", name="Grade an answer").click()  # type: ignore[attr-defined]
    page.fill("#g-question textarea, #g-question input", "bias-variance-tradeoff")  # type: ignore[attr-defined]
    page.fill("#g-answer textarea", ANSWER + " " + XSS)  # type: ignore[attr-defined]
    page.click("#g-grade")  # type: ignore[attr-defined]
    page.wait_for_selector("#g-card .mockml-badge")  # type: ignore[attr-defined]
    verdicts = page.locator("#g-card .mockml-badge").all_inner_texts()  # type: ignore[attr-defined]
    assert verdicts and set(verdicts) <= {"covered", "partial", "missing", "contradicted"}
    assert "covered" in verdicts
    quotes = [q.strip().strip("“”") for q in page.locator("#g-card td.evidence").all_inner_texts()]  # type: ignore[attr-defined]
    assert any(q and q in ANSWER + " " + XSS for q in quotes), quotes
    assert page.locator("#g-highlight").get_by_text(re.compile("underfits|overfits")).count()  # type: ignore[attr-defined]
    assert page.evaluate("typeof window.__xss") == "undefined"  # type: ignore[attr-defined]
    # Words and verdict labels wrap whole: Gradio's default (word-break: break-all) printed "COVERE" / "D".
    style = page.evaluate("""() => [getComputedStyle(document.querySelector('#g-highlight .token')).wordBreak,
                                   getComputedStyle(document.querySelector('#g-highlight .label')).whiteSpace]""")  # type: ignore[attr-defined]
    assert style == ["normal", "nowrap"], style
    shot(page, "grade")


def test_bank_search_shows_results(page: object) -> None:
    page.get_by_role("tab", name="Question bank").click()  # type: ignore[attr-defined]
    page.fill("#b-query textarea, #b-query input", "precision and recall")  # type: ignore[attr-defined]
    page.click("#b-search")  # type: ignore[attr-defined]
    page.wait_for_selector("#b-results .mockml-hit")  # type: ignore[attr-defined]
    assert "precision-recall-f1" in page.locator("#b-results .mockml-hit").first.inner_text()  # type: ignore[attr-defined]
    page.locator("#b-results details summary").first.click()  # type: ignore[attr-defined]
    shot(page, "bank")


def test_history_lists_a_finished_interview(page: object) -> None:
    page.fill("#profile textarea, #profile input", "lin")  # type: ignore[attr-defined]
    page.fill("#n-questions input", "2")  # type: ignore[attr-defined]
    page.click("#start")  # type: ignore[attr-defined]
    page.wait_for_selector("#progress:has-text('question 1 of 2')")  # type: ignore[attr-defined]
    send(page, ANSWER)
    page.click("#cmd-end")  # type: ignore[attr-defined]
    page.wait_for_selector("#report-md:has-text('Interview report')")  # type: ignore[attr-defined]
    page.get_by_role("tab", name="History").click()  # type: ignore[attr-defined]
    # starting the interview filled in the history tab's profile name
    assert page.input_value("#h-user textarea, #h-user input") == "lin"  # type: ignore[attr-defined]
    page.click("#h-load")  # type: ignore[attr-defined]
    page.wait_for_selector("#h-table:has-text('finished')")  # type: ignore[attr-defined]
    page.click("#h-open")  # type: ignore[attr-defined]
    page.wait_for_selector("#h-report:has-text('Interview report')")  # type: ignore[attr-defined]
    shot(page, "history")


@pytest.mark.skipif(not Path("/usr/bin/espeak-ng").exists(), reason="espeak-ng makes the spoken answer")
def test_spoken_answer_through_fake_microphone(playwright: object, server: str, tmp_path: Path) -> None:
    """Chromium's fake microphone plays an espeak-ng WAV; the app transcribes it and submits it as the answer."""
    pytest.importorskip("app.speech")
    wav = tmp_path / "answer.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "140", "-w", str(wav),
                    "Bias is error from wrong assumptions, so the model underfits. Variance is sensitivity to the training data."],
                   check=True)
    b = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[  # type: ignore[attr-defined]
        *ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={wav}"])
    try:
        context = b.new_context(viewport={"width": 1280, "height": 1000}, permissions=["microphone"])
        page = context.new_page()
        page.set_default_timeout(90_000)
        page.goto(server)
        page.fill("#profile textarea, #profile input", "grace")
        page.fill("#n-questions input", "1")
        page.click("#start")
        page.wait_for_selector("#progress:has-text('question 1 of 1')")
        page.locator("#mic").get_by_role("button", name="Record", exact=True).click()
        page.wait_for_timeout(7000)
        page.locator("#mic").get_by_role("button", name=re.compile("^Stop")).first.click()
        page.wait_for_selector("#transcript:has-text('You said')")
        transcript = page.locator("#transcript").inner_text().lower()
        # Transcription accuracy is measured in tests/test_speech.py; here: the words reached the page and the answer.
        heard = {w for w in ("bias", "variance", "assumption", "underfit", "under", "model", "training", "data", "sensitivity")
                 if w in transcript}
        assert len(heard) >= 3, transcript
        assert user_messages(page) >= 1
        shot(page, "interview-spoken")
        context.close()
    finally:
        b.close()


def test_html_report_shows_candidate_markup_as_text_and_runs_none_of_it(browser: object, tmp_path: Path) -> None:
    """The HTML report opened in Chromium: a script tag, an onerror handler and a title change stay inert text."""
    from app.bank import load_bank
    from app.report import build_report, write_report

    from .test_report import BV, PR, Script, card

    payload = XSS + "<script>document.title='pwned'</script><svg onload=\"window.__xss=3\"></svg>"
    bank = load_bank(ROOT / "tests" / "fixtures" / "bank")
    script = Script(sid="xss-report")
    asked = script.ask(BV, bank)
    script.answer(BV, f"Bias underfits. {payload}", card(bank, BV, {}, evidence={"bias-definition": payload}))
    probe = script.probe(BV, f"What did you mean by {payload}?", asked, "remedies")
    script.answer(BV, f"More data. {payload}", card(bank, BV, {}, score=2.0), follow_up_of=probe)
    script.ask(PR, bank)
    script.answer(PR, payload, card(bank, PR, {}, score=1.0, evidence={"precision": payload}))
    files = write_report(build_report(script.session, bank), tmp_path / "reports")
    context = browser.new_context()  # type: ignore[attr-defined]
    try:
        page = context.new_page()
        page.goto(files.html.as_uri())
        page.wait_for_load_state("load")
        assert page.evaluate("typeof window.__xss") == "undefined"
        assert page.title() != "pwned"
        assert page.evaluate("document.querySelectorAll('body script, img[src=\"x\"], svg[onload]').length") == 0
        assert "<script>window.__xss=1</script>" in page.locator("body").inner_text()  # shown, as text
    finally:
        context.close()


def test_model_failure_is_shown_in_the_chat_and_the_interview_goes_on(browser: object, tmp_path: Path) -> None:
    """The app pointed at a model that answers 500 to everything: the chat says so, the offline engine grades."""
    from .fake_openai_server import FakeOpenAIServer, fault

    with FakeOpenAIServer(default=fault("server")) as model, launch_app(tmp_path, {
        "MOCKML_MODEL": "openai/fake", "MOCKML_API_BASE": model.url, "MOCKML_API_KEY": "sk-test-UI-1234567890abcdef",
        "MOCKML_LLM_RETRIES": "0",
    }) as url:
        context = browser.new_context(viewport={"width": 1280, "height": 1000})  # type: ignore[attr-defined]
        try:
            page = context.new_page()
            page.set_default_timeout(60_000)
            page.goto(url)
            page.wait_for_selector("#start")
            page.fill("#n-questions input", "1")
            page.locator("#engine input").click()
            page.get_by_role("option", name="LLM: openai/fake").click()
            page.click("#start")
            page.wait_for_selector("#progress:has-text('question 1 of 1')")
            send(page, ANSWER)
            chat = page.locator("#chat").inner_text()
            assert "note: the language model failed" in chat and "graded by the offline engine instead" in chat, chat
            assert "sk-test-UI" not in chat
            assert model.chat_requests  # the model really was asked
            shot(page, "interview-model-failure")
        finally:
            context.close()

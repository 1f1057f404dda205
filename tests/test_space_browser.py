"""A real browser: headless Debian Chromium (Playwright, ``executable_path``) uses the Space like a visitor.

It picks a preset forget question, asks every model, waits for every streamed answer, reads them from the DOM,
checks that the model that knows the forget set (``target``) and the one that never saw it (``retain``, the gold
standard of unlearning) answer differently, and saves a screenshot (``$HFCL_TEST_ARTIFACTS`` or pytest's tmp dir).
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
CHROMIUM = os.environ.get("HFCL_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TIMEOUT_MS = 60_000

pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def page_on_app(tiny_zoo, learn_forget_run):
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.fail(f"Chromium not found at {CHROMIUM}: `apt-get install -y chromium` (or set HFCL_CHROMIUM).")
    from playwright.sync_api import sync_playwright

    from hfcl.space import SpaceSettings, build_space, launch

    demo = build_space("target,retain", zoo_config=tiny_zoo.config, presets_per_split=3,
                       settings=SpaceSettings(max_new_tokens=40), continual=str(learn_forget_run))
    launch(demo, port=free_port(), block=False, quiet=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.set_default_timeout(TIMEOUT_MS)
                page.goto(demo.local_url, timeout=TIMEOUT_MS)
                yield page
            finally:
                browser.close()
    finally:
        demo.close()


def answers_done(page, n: int) -> None:
    page.wait_for_function(
        """n => [...Array(n).keys()].every(i => {
               const m = document.querySelector(`#metrics-${i}`);
               return m && m.innerText.includes('ROUGE-L') && !m.innerText.includes('generating');
           })""", arg=n, timeout=TIMEOUT_MS)


def test_browser_preset_forget_question_answers_differ(page_on_app, tiny_zoo, tmp_path):
    page = page_on_app
    row = tiny_zoo.splits["forget"][0]
    page.locator("#preset input").click()
    page.get_by_role("option", name=f"[forget] {row['question']}").click()
    page.wait_for_function("q => document.querySelector('#question textarea').value === q", arg=row["question"])
    assert page.locator("#truth textarea").input_value() == row["answer"]
    page.locator("#compare-btn").click()
    answers_done(page, 2)
    target = page.locator("#answer-0 textarea").input_value()
    retain = page.locator("#answer-1 textarea").input_value()
    assert target == row["answer"]
    assert retain and retain != target
    metrics = [page.locator(f"#metrics-{i}").inner_text() for i in range(2)]
    p = [float(m.split("p(truth)")[1].split("·")[0]) for m in metrics]
    assert p[0] > 0.5 > p[1]
    out = Path(os.environ.get("HFCL_TEST_ARTIFACTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    shot = out / "space_compare.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def error_badges(page) -> int:
    """Output components showing Gradio's red error status (what a raised gr.Error leaves on every output)."""
    return page.evaluate("""() => [...document.querySelectorAll(
            '#answer-0, #answer-1, #metrics-0, #metrics-1, #notice')]
        .filter(el => [...el.querySelectorAll('.error, [class*="error"]')].some(e => e.offsetParent !== null)
                      || /(^|\\n)Error(\\n|$)/.test(el.innerText)).length""")


def test_browser_empty_prompt_shows_a_message_and_no_error_badges(page_on_app):
    page = page_on_app
    before = page.locator("#answer-0 textarea").input_value()
    page.locator("#question textarea").fill("")
    page.locator("#compare-btn").click()
    page.locator("#notice").get_by_text("the prompt is empty").wait_for(state="visible", timeout=TIMEOUT_MS)
    page.wait_for_timeout(500)  # let the event finish rendering its status on every output
    assert error_badges(page) == 0
    assert page.locator("#answer-0 textarea").input_value() == before  # the last answers are left alone
    assert "Traceback" not in page.content()


def test_browser_chat_turn_and_eval_tab(page_on_app):
    page = page_on_app
    page.get_by_role("tab", name="Chat").click()
    page.locator("#chat-message textarea").fill("Where was Bark Wadaisk born?")
    page.locator("#chat-message textarea").press("Enter")
    page.wait_for_function("() => document.querySelectorAll('#chatbot .message').length >= 2 && "
                           "[...document.querySelectorAll('#chatbot .message')].pop().innerText.trim().length > 0")
    assert "Bark Wadaisk" in page.locator("#chatbot").inner_text()
    page.get_by_role("tab", name="Eval card").click()
    page.get_by_text("no eval_report.json for this zoo build").first.wait_for(state="visible")  # none found here


def test_browser_continual_tab_heat_map_and_answers(page_on_app, learn_forget_run, tmp_path):
    """Pick the forget stage: the heat map (R so far, 4 rows) renders, the description names the event, the table
    holds the stage's answers next to the previous stage's, deleted rows included."""
    import io

    from PIL import Image, ImageStat

    from hfcl.space.continual import ContinualRun

    page = page_on_app
    page.get_by_role("tab", name="Continual").click()
    page.locator("#continual-stage input").click()
    page.get_by_role("option", name="3 · forget forget-authors1").click()
    page.locator("#continual-info").get_by_text("Forget event").wait_for(state="visible", timeout=TIMEOUT_MS)
    page.wait_for_function("() => document.querySelector('#continual-answers').innerText.includes('(deleted)')",
                           timeout=TIMEOUT_MS)
    page.wait_for_function("() => { const i = document.querySelector('#continual-heatmap img');"
                           " return i && i.complete && i.naturalWidth > 100; }", timeout=TIMEOUT_MS)
    shot = Image.open(io.BytesIO(page.locator("#continual-heatmap img").screenshot())).convert("RGB")
    spread = ImageStat.Stat(shot).stddev
    assert shot.size[0] > 100 and max(spread) > 20  # a drawn matrix, not a blank box
    run = ContinualRun(learn_forget_run)
    table = page.locator("#continual-answers").inner_text()
    expected = run.answers(run.stage(3), 40)
    assert expected[0][1] in table and expected[-1][1] in table  # first task question, last deleted row
    assert "Traceback" not in page.content()
    out = Path(os.environ.get("HFCL_TEST_ARTIFACTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out / "space_continual.png"), full_page=True)
    assert (out / "space_continual.png").stat().st_size > 10_000

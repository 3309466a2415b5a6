"""The search page in headless Chromium, on a video whose file name and one of whose labels are
markup: they must show as text, run nothing, and the pages must work under their
Content-Security-Policy (search_api/app.py PAGE_POLICY) without a single violation.

tests/browser/test_review_page.py checks the same for the review page's names and labels; here the
search page gets its own scene: conftest's catwalk video, saved under a crafted name, with the black
jacket's pattern label crafted too (an empty query lists every moment with what the person wears).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("playwright.sync_api", exc_type=ImportError,
                    reason="Playwright is not installed: pip install -e '.[dev]'")
from playwright.sync_api import Browser, Page, expect  # noqa: E402

from configs import Settings  # noqa: E402
from indexer import open_store  # noqa: E402
from indexer.frame_images import FrameImageStore  # noqa: E402
from search_api.middleware import PAGE_POLICY  # noqa: E402
from tests.browser.conftest import create_test_app, fresh_page, make_long_video, serve  # noqa: E402
from tests.indexer.test_store_search import catwalk, index  # noqa: E402
from labels import Label  # noqa: E402

CRAFTED_NAME = "<img src=x onerror=window.__xss=1>.mp4"
CRAFTED_LABEL = "<img src=y onerror=window.__xss=2>"
# Before any page script: count violations of the page's policy and anything injected that runs.
WATCH = ("window.__violations = [];"
         "document.addEventListener('securitypolicyviolation',"
         "  e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI), true);")


def crafted_scene(root: Path) -> Settings:
    settings = Settings(data_dir=root / "data")
    video = make_long_video(root / CRAFTED_NAME)
    frames = catwalk()
    for frame in frames:
        for person in frame.persons:
            for garment in person.garments:
                if garment.category.value == "coat/jacket":
                    garment.pattern = Label(value=CRAFTED_LABEL, confidence=0.9, model="<b>m</b>", model_version="1")
    store = open_store(settings)
    try:
        index(store, "catwalk", frames, path=str(video))
    finally:
        store.close()
    images = FrameImageStore(settings.data_dir)
    grey = np.full((720, 1280, 3), 128, dtype=np.uint8)
    for labels in frames:
        images.save(labels.media_id, labels.frame_id, grey)
    return settings


@pytest.fixture(scope="module")
def crafted_server(tmp_path_factory) -> Iterator[str]:
    with serve(create_test_app(crafted_scene(tmp_path_factory.mktemp("xss")))) as url:
        yield url


@pytest.fixture
def crafted_page(browser: Browser, crafted_server: str) -> Iterator[Page]:
    with fresh_page(browser, crafted_server, init_script=WATCH) as opened:
        yield opened


def nothing_ran(page: Page) -> None:
    assert page.evaluate("window.__xss") is None
    assert page.evaluate("window.__violations") == []
    assert page.locator("b").count() == 0
    sources = page.locator("img").evaluate_all("imgs => imgs.map(i => i.getAttribute('src'))")
    assert not any(src in ("x", "y") for src in sources), sources


def test_a_crafted_file_name_and_label_show_as_text_on_the_search_page(crafted_page: Page):
    page = crafted_page
    response = page.goto("/")
    assert response.headers["content-security-policy"] == PAGE_POLICY
    page.fill("#q", "")
    page.click("#search-form button[type=submit]")
    expect(page.locator("#status")).to_have_text("2 of 2 moments")
    expect(page.locator(".video-group h2")).to_have_text(re.compile("^" + re.escape(CRAFTED_NAME)))
    jacket_lines = page.locator(".card li", has_text="coat/jacket")
    expect(jacket_lines.first).to_contain_text(CRAFTED_LABEL)
    alts = page.locator(".card img").evaluate_all("imgs => imgs.map(i => i.alt)")
    assert all(alt.startswith(CRAFTED_NAME) for alt in alts), alts
    page.locator(".card").last.click()  # the player shows the name too, and plays the stream
    expect(page.locator("#player-title")).to_have_text(CRAFTED_NAME)
    # A function, not an expression: Playwright evals a polled expression in the page, which the policy forbids.
    page.wait_for_function("() => { const v = document.getElementById('video'); return v.readyState >= 1 || v.error; }")
    assert page.evaluate("document.getElementById('video').error") is None
    nothing_ran(page)


def test_a_shared_link_with_markup_in_the_query_stays_text(crafted_page: Page):
    page = crafted_page
    page.goto("/?q=" + "%3Cimg%20src%3Dx%20onerror%3Dwindow.__xss%3D3%3E%20jacket")
    expect(page.locator("#status")).not_to_have_text(re.compile(r"^(Searching…)?$"))
    expect(page.locator("#q")).to_have_value("<img src=x onerror=window.__xss=3> jacket")
    expect(page.locator("#interpretation")).to_contain_text("Understood as:")
    nothing_ran(page)


def test_the_review_page_works_under_its_policy(crafted_page: Page):
    page = crafted_page
    response = page.goto("/review")
    assert response.headers["content-security-policy"] == PAGE_POLICY
    expect(page.locator(".queue-item").first).to_be_visible()
    expect(page.locator("#frame-title")).to_contain_text(CRAFTED_NAME)
    expect(page.locator("#f-media option", has_text=CRAFTED_NAME)).to_have_count(1)
    # (the queue lists a frame's label words, so the crafted value comes as "<img, src=y, onerror=…>")
    jacket = page.locator(".queue-item", has=page.locator(".values", has_text="onerror=window.__xss=2>")).first
    jacket.click()  # a frame of the man in the jacket: the label list shows the crafted value and model
    expect(page.locator("td.value", has_text=CRAFTED_LABEL).first).to_be_visible()
    expect(page.locator("td.model", has_text="<b>m</b>").first).to_be_visible()
    page.wait_for_function("() => { const img = document.getElementById('frame-image');"
                           " return img.complete && img.naturalWidth > 0; }")
    nothing_ran(page)

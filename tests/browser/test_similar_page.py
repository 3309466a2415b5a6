"""Find this outfit on the search page (headless Chromium, live app): "more like this" on a result
and a photo upload. The scene is tests/search_api/test_similar.py's: a dress on the catwalk, a man in
a black jacket and jeans in the street, one in the park whose jacket looks like the street man's."""

from __future__ import annotations

import re
from io import BytesIO

import pytest

pytest.importorskip("playwright.sync_api", exc_type=ImportError,
                    reason="Playwright is not installed: pip install -e '.[dev]'")
from playwright.sync_api import expect  # noqa: E402
from PIL import Image  # noqa: E402

from configs import Settings  # noqa: E402
from search_api import similar  # noqa: E402
from tests.browser.conftest import create_test_app, fresh_page, serve  # noqa: E402
from tests.indexer.test_search import black_jacket_blue_jeans, frames  # noqa: E402
from tests.indexer.test_similar import embedded, index_three_videos  # noqa: E402


@pytest.fixture(scope="module")
def similar_server(tmp_path_factory):
    settings = Settings(data_dir=tmp_path_factory.mktemp("similar-page") / "data")
    index_three_videos(settings)
    with serve(create_test_app(settings)) as url:
        yield url


def test_more_like_this_on_a_result(browser, similar_server):
    with fresh_page(browser, similar_server) as page:
        page.goto("/?q=jacket&media=street")
        link = page.locator(".more-like", has_text="More like this black long-sleeve coat/jacket").first
        expect(link).to_be_visible()
        link.click()
        expect(page.locator("#interpretation")).to_have_text(re.compile(r"^Like: black long-sleeve coat/jacket"))
        expect(page.locator(".video-group h2").first).to_contain_text("park.mp4")
        assert "garment=" in page.url  # the answer has a link of its own


def test_upload_a_photo_on_the_search_page(browser, similar_server, monkeypatch):
    shown = embedded(frames("upload", [0.0], black_jacket_blue_jeans()), [1, 3])[0]  # a jacket like the dress
    monkeypatch.setattr(similar.PhotoDescriber, "describe", lambda self, rgb: shown)
    photo = BytesIO()
    Image.new("RGB", (48, 64), (200, 30, 30)).save(photo, "PNG")
    with fresh_page(browser, similar_server) as page:
        page.goto("/")
        page.set_input_files("#like-photo", files=[{"name": "look.png", "mimeType": "image/png",
                                                    "buffer": photo.getvalue()}])
        expect(page.locator("#interpretation")).to_have_text(re.compile(r"^Like: black coat/jacket"))
        expect(page.locator(".video-group h2").first).to_contain_text("catwalk.mp4")
        expect(page.locator(".card").first).to_be_visible()
        # the photo's other garment: the jeans, like the street man's
        page.locator(".found-garment", has_text="pants/jeans").click()
        expect(page.locator("#interpretation")).to_have_text(re.compile(r"^Like: blue pants/jeans"))
        expect(page.locator(".video-group h2").first).to_contain_text("street.mp4")


def test_an_upload_that_is_not_a_photo_says_why(browser, similar_server):
    with fresh_page(browser, similar_server) as page:
        page.goto("/")
        page.set_input_files("#like-photo", files=[{"name": "notes.webp", "mimeType": "image/webp",
                                                    "buffer": b"plain text, not a photo"}])
        expect(page.locator("#status")).to_have_text(re.compile(r"^Error 415: not a JPEG, PNG or WebP"))

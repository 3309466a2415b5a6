"""The search page (search_api/static) in headless Chromium against the live app.

What the TestClient tests cannot see: the script's rendering of /search answers, and the player
getting the clicked moment's stream and time from a real server that answers range requests.
The scene (conftest.browser_scene): catwalk.mp4, 14 s, a red striped dress 0-4 s and a man in a
black jacket 6-13 s; street-gone.mp4, whose file is gone.
"""

from __future__ import annotations

import re

import pytest

pytest.importorskip("playwright.sync_api", exc_type=ImportError,
                    reason="Playwright is not installed: pip install -e '.[dev]'")
from playwright.sync_api import Page, expect  # noqa: E402


# Media events do not bubble, but a capture listener on document sees them before the video's own
# listeners run, and a check made in a later task sees what all of them did.
RECORD_METADATA = ("document.addEventListener('loadedmetadata', "
                   "e => { window.loadedMetadataOf = e.target.currentSrc; }, true);")


def search(page: Page, query: str) -> None:
    page.add_init_script(RECORD_METADATA)
    page.goto("/")
    page.fill("#q", query)
    page.click("#search-form button[type=submit]")
    expect(page.locator("#status")).not_to_have_text(re.compile(r"^(Searching…)?$"))


def video_state(page: Page) -> dict:
    return page.eval_on_selector("#video", "v => ({src: v.src, time: v.currentTime, ready: v.readyState, "
                                           "error: v.error && v.error.code, hidden: v.hidden})")


def wait_for_time(page: Page, seconds: float, timeout: float = 10_000) -> None:
    """The current source's metadata loaded (the stream answered; the page's loadedmetadata handlers
    have run) and the player at `seconds`, within `timeout` ms.

    The page starts playback, so the time may have run on a little: up to 1.5 s on a busy machine
    still tells the moments here apart (0, 6 and 10 s).
    """
    page.wait_for_function(
        "t => { const v = document.getElementById('video');"
        "       return v.error || (window.loadedMetadataOf === v.currentSrc"
        "                          && v.currentTime > t - 0.1 && v.currentTime < t + 1.5); }",
        arg=seconds, timeout=timeout,
    )
    state = video_state(page)
    assert state["error"] is None, f"the player could not load the stream: {state}"


def test_a_query_shows_the_moment_and_plays_it_from_its_start(page: Page):
    search(page, "red striped dress")
    assert page.locator("#interpretation").text_content() == (
        "Understood as: red striped dress (exact words and synonyms only)")
    expect(page.locator("#status")).to_have_text("1 of 1 moments")
    expect(page.locator("#more")).to_be_hidden()
    expect(page.locator("#notice")).to_be_hidden()  # the parser was given: no model notice
    [group] = page.locator(".video-group").all()
    expect(group.locator("h2")).to_contain_text("catwalk.mp4")
    [card] = group.locator(".card").all()
    expect(card.locator(".time")).to_have_text("0:00–0:04")
    expect(card.locator("li").first).to_contain_text("dress: color red")
    assert card.get_attribute("title") == "Play from 0:00"
    thumbnail = card.locator("img")
    expect(thumbnail).to_have_attribute("alt", "catwalk.mp4 at 0:02")  # the best frame, 2 s
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumbnail.element_handle())
    # cropped around the person at the card's 16:10 (the frame is 16:9), and shown whole, not cut by CSS
    assert thumbnail.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [320, 200]
    assert thumbnail.evaluate("img => getComputedStyle(img).objectFit") == "contain"

    expect(page.locator("#player")).to_be_hidden()
    card.click()
    expect(page.locator("#player")).to_be_visible()
    expect(page.locator("#player-title")).to_have_text("catwalk.mp4")
    expect(page.locator("#player-time")).to_have_text(re.compile(r"^0:00–0:04, score 0\.\d\d$"))
    assert video_state(page)["src"].endswith("/media/catwalk/stream#t=0")
    wait_for_time(page, 0.0)
    page.click("#player-close")
    expect(page.locator("#player")).to_be_hidden()


def test_a_second_moment_of_the_same_video_seeks_the_player(page: Page):
    search(page, "")  # everything: both catwalk moments and the two in the street
    expect(page.locator("#status")).to_have_text("4 of 4 moments")
    names = page.locator(".video-group h2").evaluate_all("hs => hs.map(h => h.firstChild.textContent)")
    assert sorted(names) == ["catwalk.mp4", "street-gone.mp4"]  # one group per video
    catwalk = page.locator(".video-group", has=page.locator("h2", has_text="catwalk.mp4"))
    expect(catwalk.locator(".card")).to_have_count(2)
    dress = catwalk.locator(".card", has_text="0:00–0:04")
    man = catwalk.locator(".card", has_text="0:06–0:13")
    expect(man).to_have_attribute("title", "Play from 0:06")

    man.click()  # a new source: opens at #t=6
    assert video_state(page)["src"].endswith("/media/catwalk/stream#t=6")
    wait_for_time(page, 6.0)
    dress.click()  # the same source: seeked, not reloaded
    expect(page.locator("#player-time")).to_contain_text("0:00–0:04")
    wait_for_time(page, 0.0)
    assert video_state(page)["src"].endswith("/media/catwalk/stream#t=6")


def test_a_query_without_matches_says_nothing_matches(page: Page):
    search(page, "green skirt")
    expect(page.locator("#status")).to_have_text("Nothing matches.")
    expect(page.locator("#interpretation")).to_contain_text("green skirt")
    expect(page.locator("#results .card")).to_have_count(0)
    expect(page.locator("#results")).to_be_empty()
    expect(page.locator("#more")).to_be_hidden()


def test_words_it_does_not_label_are_named_and_the_vocabulary_is_listed(page: Page):
    search(page, "zzzz qqqq")
    expect(page.locator("#notice")).to_be_visible()
    expect(page.locator("#notice")).to_contain_text("'zzzz', 'qqqq' are not something Vestis labels")
    expect(page.locator("#status")).to_have_text("Nothing matches.")
    page.click("#vocabulary summary")
    expect(page.locator("#vocabulary-words")).to_contain_text("dress (gown")


def test_a_shared_link_searches_straight_away(page: Page):
    page.goto("/?q=red+dress&min_confidence=0.5")
    expect(page.locator("#q")).to_have_value("red dress")
    expect(page.locator("#min-confidence")).to_have_value("0.5")
    expect(page.locator("#status")).to_have_text("1 of 1 moments")
    expect(page.locator(".card .time")).to_have_text("0:00–0:04")


def test_a_moment_after_one_whose_file_is_gone_plays_from_its_own_start(page: Page):
    search(page, "")
    page.locator(".card", has_text="0:10–0:12").click()  # the street: its file is gone
    page.wait_for_function("() => document.getElementById('video').error")
    expect(page.locator("#player-error")).to_contain_text("cannot be played")  # said, not a blank player
    page.locator(".card", has_text="0:00–0:04").click()  # the catwalk's dress
    wait_for_time(page, 0.0, timeout=3_000)  # once landed at 0:10, the street moment's start
    expect(page.locator("#player-error")).to_be_hidden()


def test_playback_stops_at_the_moments_end_or_loops_and_the_bar_shows_the_moment(page: Page):
    search(page, "red striped dress")
    page.locator(".card").click()
    wait_for_time(page, 0.0)
    # 0-4 s sampled: the span runs a second past the last frame, 5 of the video's 14 s
    bar = page.locator("#moment-span").evaluate("e => [e.style.left, parseFloat(e.style.width)]")
    assert bar[0] == "0%" and abs(bar[1] - 100 * 5 / 14) < 0.5, bar
    page.wait_for_function("() => document.getElementById('video').paused", timeout=15_000)
    stopped = video_state(page)["time"]
    assert 4.9 <= stopped < 6.0, stopped  # not on to the man at 6 s
    page.check("#loop")
    page.locator(".card").click()
    page.wait_for_function("() => document.getElementById('video').currentTime > 4", timeout=15_000)
    page.wait_for_function("() => { const v = document.getElementById('video');"
                           "        return !v.paused && v.currentTime < 1.5; }", timeout=15_000)  # back to 0


def test_filters_narrow_by_video_time_and_review_status(page: Page):
    page.goto("/")
    expect(page.locator("#f-media option")).to_have_count(3)  # all, catwalk, street
    page.select_option("#f-media", "catwalk")
    search_again = lambda: page.click("#search-form button[type=submit]")  # noqa: E731
    search_again()
    expect(page.locator("#status")).to_have_text("2 of 2 moments")
    expect(page.locator(".video-group h2")).to_have_count(1)
    page.fill("#f-start", "6")
    search_again()
    expect(page.locator("#status")).to_have_text("1 of 1 moments")
    expect(page.locator(".card .time")).to_have_text("0:06–0:13")
    assert "media=catwalk" in page.url and "start=6" in page.url  # a link to share
    page.fill("#f-start", "")
    page.fill("#f-end", "3")
    search_again()
    expect(page.locator(".card .time")).to_have_text("0:00–0:04")
    page.select_option("#f-review", "reviewed")
    search_again()
    expect(page.locator("#status")).to_have_text("Nothing matches.")  # nobody reviewed anything here


def test_a_result_opens_in_review_at_its_best_frame(page: Page):
    search(page, "red striped dress")
    link = page.locator(".result .review-link")
    expect(link).to_have_attribute("href", "/review?media=catwalk&frame=catwalk-000002000")
    link.click()
    page.wait_for_url("**/review?media=catwalk&frame=catwalk-000002000")
    expect(page.locator("#f-media")).to_have_value("catwalk")


def test_the_timeline_has_a_lane_per_outfit_and_a_click_seeks_there(page: Page):
    search(page, "red striped dress")
    page.locator(".card").click()
    wait_for_time(page, 0.0)
    lanes = page.locator("#timeline .lane")
    expect(lanes).to_have_count(2)  # the dress, then the jacket and jeans
    expect(lanes.nth(0).locator(".lane-label")).to_contain_text("dress")
    expect(lanes.nth(1).locator(".lane-label")).to_contain_text("coat/jacket")
    expect(lanes.nth(0).locator(".segment.current")).to_have_count(1)  # the moment playing
    jacket = lanes.nth(1).locator(".segment")
    assert abs(jacket.evaluate("e => parseFloat(e.style.left)") - 100 * 6 / 14) < 0.5
    jacket.click()
    expect(page.locator("#player-time")).to_have_text("0:06–0:13")
    wait_for_time(page, 6.0)
    expect(lanes.nth(1).locator(".segment.current")).to_have_count(1)


def test_a_moment_of_one_frame_reads_as_one_time(page: Page):
    page.goto("/")
    assert page.evaluate("span({start: 5, end: 5})") == "0:05"  # not "0:05–0:05"
    assert page.evaluate("span({start: 5, end: 7.5})") == "0:05–0:07.5"

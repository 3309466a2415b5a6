"""Screenshots of the review page for docs/review.md, taken in headless Chromium from the app on sample data.

    .venv/bin/python scripts/screenshot_review.py --data-dir DIR [NAME ...] [--out docs/images]

The docs' pictures are of real frames: DIR is a store `vestis ingest` filled (docs/images: the first
45 s of ../shared/data/videos/one-by-one-person-detection.mp4), copied for each picture so that
its edits never reach DIR, with reviewers alice and bob. Without --data-dir the app runs on the
review page's test scene (tests/search_api/test_review_api_page_flows.py: hand-made labels, drawn
frames), for checking layout only. Served over HTTP on a loopback port; the browser and the server
are scripts/screenshot_pages.py's (tests/browser/conftest.py).

Each entry of PAGES is one picture, <out>/<name>.png: a function that takes the browser and the
app's URL (a conflict needs two reviewers, so two pages) and returns the page to photograph.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # `tests` is a namespace package at the root
sys.path.insert(0, str(REPO_ROOT / "scripts"))

from screenshot_pages import VIEWPORT, checked_setup, page_parser  # noqa: E402

from configs import Settings  # noqa: E402

from tests.browser.conftest import (  # noqa: E402
    create_test_app,
    launch_chromium,
    serve,
)
from tests.search_api.test_review_api_page_flows import DRESS_COLOR, REVIEWERS, review_scene  # noqa: E402

LEAST_SURE = "runway-000001000"


def open_review(browser, url: str, reviewer: str | None, address: str = "/review"):
    """A page of its own (own storage: own token) at `address`, the frame and its history shown."""
    context = browser.new_context(base_url=url, viewport=VIEWPORT)
    context.set_default_timeout(15_000)
    if reviewer:
        context.add_init_script(f"sessionStorage.setItem('vestis.review.token', {REVIEWERS[reviewer]!r});")
    page = context.new_page()
    page.goto(address)
    settle(page)
    return page


def settle(page) -> None:
    """The frame image decoded, its labels listed, no request on its way."""
    page.wait_for_function("() => { const img = document.getElementById('frame-image');"
                           " return img.complete && img.naturalWidth > 0"
                           "   && document.querySelectorAll('#labels tbody tr[data-path]').length > 0; }")
    page.wait_for_load_state("networkidle")


def select_label(page, path: str) -> None:
    rows = page.locator("#labels tbody tr[data-path]").evaluate_all("rows => rows.map(r => r.dataset.path)")
    for _ in range(rows.index(path)):
        page.keyboard.press("ArrowDown")


# Over --data-dir (real footage) the least sure frame of the queue is the one shown, and the labels
# worked on are its first garment's colour and, before it, the label above that.
REAL = {"on": False}
QUEUE_FIRST = "/review?status=unreviewed"


def colour_path(page) -> str:
    if not REAL["on"]:
        return DRESS_COLOR
    rows = page.locator("#labels tbody tr[data-path]").evaluate_all("rows => rows.map(r => r.dataset.path)")
    return next(p for p in rows if p.endswith(".color"))


def review_page(browser, url: str):
    """The least sure frame, one label accepted, a garment colour selected and the change picker open."""
    page = open_review(browser, url, "alice", QUEUE_FIRST if REAL["on"] else f"/review?frame={LEAST_SURE}")
    colour = colour_path(page)
    rows = page.locator("#labels tbody tr[data-path]").evaluate_all("rows => rows.map(r => r.dataset.path)")
    select_label(page, "persons.1.face.expression" if not REAL["on"] else rows[rows.index(colour) - 1])
    page.keyboard.press("a")  # one accepted label, so the list shows a reviewed mark and the history an entry
    page.wait_for_function("() => document.querySelector('#labels tr.reviewed')")
    page.locator("#labels tbody tr[data-path]").first.click()
    select_label(page, colour)
    page.keyboard.press("c")
    page.keyboard.press("8")  # blue, picked but not applied yet
    settle(page)
    return page


def review_conflict(browser, url: str):
    """Alice changes a frame bob had open; bob's change is refused with the reload offer."""
    address = QUEUE_FIRST if REAL["on"] else f"/review?frame={LEAST_SURE}"
    bob = open_review(browser, url, "bob", address)
    alice = open_review(browser, url, "alice", address)
    colour = colour_path(alice)
    select_label(alice, colour)
    alice.keyboard.press("a")
    alice.wait_for_function("() => document.querySelector('#labels tr.selected.reviewed')")
    alice.context.close()
    select_label(bob, colour)
    bob.keyboard.press("c")
    bob.keyboard.press("8")
    bob.keyboard.press("Enter")
    bob.wait_for_selector("#conflict:not([hidden])")
    return bob


def review_sample_video(browser, url: str):
    """A frame of the sample video as ingested with the real stages (needs --data-dir), least sure first."""
    page = open_review(browser, url, None, "/review?media=&status=unreviewed")
    page.locator("#show-masks").check()  # masks on: what the parser saw
    settle(page)
    return page


PAGES: dict[str, Callable] = {
    "review-page": review_page,
    "review-conflict": review_conflict,
    "review-sample-video": review_sample_video,
}
REAL_DATA = {"review-sample-video"}  # taken over `--data-dir`, an ingest of real media


def main() -> int:
    parser = page_parser(__doc__.split("\n\n")[0], PAGES)
    parser.add_argument("--data-dir", type=Path, help="an ingested data dir for the pages of real media "
                        "(e.g. after `vestis ingest ../shared/data/videos/one-by-one-person-detection.mp4`)")
    args = parser.parse_args()
    chromium = checked_setup(parser, args, PAGES)
    if chromium is None:
        return 1
    for name in args.names or [n for n in PAGES if n not in REAL_DATA or args.data_dir]:
        if name in REAL_DATA:
            if args.data_dir is None:
                parser.error(f"{name} needs --data-dir")
            with serve(create_test_app(Settings(data_dir=args.data_dir))) as url, launch_chromium(chromium) as browser:
                page = PAGES[name](browser, url)
                target = args.out / f"{name}.png"
                page.screenshot(path=str(target))
                page.context.close()
            print(target)
            continue
        # A fresh scene for each picture: one picture's edits do not show up in the next. Over
        # --data-dir, a copy of the store (the pictures' edits never reach it) with alice and bob.
        with tempfile.TemporaryDirectory(prefix="vestis-screenshots-") as root:
            if args.data_dir:
                REAL["on"] = True
                shutil.copytree(args.data_dir, Path(root) / "data")
                settings = Settings(data_dir=Path(root) / "data", review={"reviewers": REVIEWERS})
            else:
                settings = review_scene(Path(root))
            with serve(create_test_app(settings)) as url, launch_chromium(chromium) as browser:
                page = PAGES[name](browser, url)
                target = args.out / f"{name}.png"
                page.screenshot(path=str(target))
                page.context.close()
        print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())

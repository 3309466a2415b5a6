"""Screenshots of Vestis's pages for the docs, taken in headless Chromium from the app on real footage.

    .venv/bin/python scripts/screenshot_pages.py --data-dir DIR [NAME ...] [--out docs/images] [--query Q]

The docs show real frames: DIR is a store `vestis ingest` filled (docs/images/search-page.png: the
first 45 s of ../shared/data/videos/one-by-one-person-detection.mp4, CC-BY-4.0, Intel IoT devkit
sample videos, ingested with the default stages). Without --data-dir the app runs on the browser
tests' scene (tests/browser/conftest.py: hand-made labels on grey frames), for checking layout only.
The app uses the exact-words parser and is served over HTTP on a loopback port; the browser is
Debian's /usr/bin/chromium or VESTIS_CHROMIUM (scripts/install_browser.sh installs it).

Each entry of PAGES is one picture, <out>/<name>.png: a function that takes a Playwright page whose
relative URLs go to the app and brings it to the state worth showing. A new page is a new entry.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # `tests` is a namespace package at the root

from configs import Settings  # noqa: E402
from tests.browser.conftest import (  # noqa: E402
    BrowserUnavailable,
    browser_scene,
    create_test_app,
    find_chromium,
    launch_chromium,
    serve,
)

VIEWPORT = {"width": 1280, "height": 800}


QUERY = {"value": "dress"}  # --query


def search_page(page) -> None:
    """Results for the query, the best moment open in the player with the video's timeline."""
    page.goto(f"/?q={QUERY['value']}")
    page.wait_for_function("() => [...document.querySelectorAll('#results .card img')]"
                           ".every(img => img.complete && img.naturalWidth > 0) && document.querySelector('.card')")
    page.locator(".card").first.click()
    # Paused at the moment's start, so the picture does not depend on how far playback got.
    page.wait_for_function("() => { const v = document.getElementById('video');"
                           " if (v.readyState < 2) return false; v.pause(); return !v.seeking; }")
    page.wait_for_function("() => document.querySelector('#timeline .segment')")
    page.evaluate("window.scrollTo(0, 0)")


PAGES: dict[str, Callable] = {
    "search-page": search_page,
}


def page_parser(description: str, pages: dict) -> argparse.ArgumentParser:
    """The command line both screenshot scripts share: page names and the output folder."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"pages to take (default all: {', '.join(pages)})")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "images", help="folder for <name>.png")
    return parser


def checked_setup(parser: argparse.ArgumentParser, args: argparse.Namespace, pages: dict) -> Path | None:
    """Refuse unknown page names; the browser to use, or None (said on stderr) when there is none."""
    unknown = [name for name in args.names if name not in pages]
    if unknown:
        parser.error(f"unknown page {', '.join(unknown)}; known: {', '.join(pages)}")
    try:
        chromium = find_chromium(install=False)
    except BrowserUnavailable as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return None
    args.out.mkdir(parents=True, exist_ok=True)
    return chromium


def main() -> int:
    parser = page_parser(__doc__.split("\n\n")[0], PAGES)
    parser.add_argument("--data-dir", type=Path, help="a store `vestis ingest` filled (default: the tests' scene)")
    parser.add_argument("--query", default=QUERY["value"], help="the search the search page shows")
    args = parser.parse_args()
    QUERY["value"] = args.query
    chromium = checked_setup(parser, args, PAGES)
    if chromium is None:
        return 1

    with tempfile.TemporaryDirectory(prefix="vestis-screenshots-") as root:
        settings = Settings(data_dir=args.data_dir) if args.data_dir else browser_scene(Path(root))
        with serve(create_test_app(settings)) as url, launch_chromium(chromium) as browser:
            for name in args.names or PAGES:
                context = browser.new_context(base_url=url, viewport=VIEWPORT)
                try:
                    page = context.new_page()
                    PAGES[name](page)
                    target = args.out / f"{name}.png"
                    page.screenshot(path=str(target), full_page=True)
                finally:
                    context.close()
                print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())

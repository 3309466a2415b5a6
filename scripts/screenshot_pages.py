"""Screenshots of Vestis's pages for the docs, taken in headless Chromium from the app on sample data.

    .venv/bin/python scripts/screenshot_pages.py [NAME ...] [--out docs/images]

The app runs on the browser tests' scene (tests/browser/conftest.py: two videos, hand-made labels,
grey stored frames) with the exact-words parser, served over HTTP on a loopback port; the browser
is Debian's /usr/bin/chromium or VESTIS_CHROMIUM (scripts/install_browser.sh installs it).

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

from tests.browser.conftest import (  # noqa: E402
    BrowserUnavailable,
    browser_scene,
    create_test_app,
    find_chromium,
    launch_chromium,
    serve,
)

VIEWPORT = {"width": 1280, "height": 800}


def search_page(page) -> None:
    """Results for "dress" (two videos), the catwalk's moment open in the player."""
    page.goto("/?q=dress")
    page.wait_for_function("() => [...document.querySelectorAll('#results .card img')]"
                           ".every(img => img.complete && img.naturalWidth > 0) && document.querySelector('.card')")
    page.locator(".video-group", has_text="catwalk.mp4").locator(".card").first.click()
    # Paused at the moment's start, so the picture does not depend on how far playback got.
    page.wait_for_function("() => { const v = document.getElementById('video');"
                           " if (v.readyState < 2) return false; v.pause(); return !v.seeking; }")
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
    args = parser.parse_args()
    chromium = checked_setup(parser, args, PAGES)
    if chromium is None:
        return 1

    with tempfile.TemporaryDirectory(prefix="vestis-screenshots-") as root:
        settings = browser_scene(Path(root))
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

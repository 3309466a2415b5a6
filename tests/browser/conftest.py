"""Real headless Chromium against the real app served over HTTP: the harness of the page tests.

The browser is Debian's /usr/bin/chromium (or VESTIS_CHROMIUM) driven by Playwright's Python
package. Playwright's own browser download comes from a CDN that CI cannot reach, so it is never
used; scripts/install_browser.sh installs Debian's package when it is missing. Where neither can be
had (no root, no apt, no network, Playwright not installed) the tests skip and say why.

The app is `create_app` on tests.search_api.test_app's scene, served by uvicorn on a free loopback
port in a background thread, so the page fetches, streams and seeks through a real HTTP server.

The plain functions (find_chromium, launch_chromium, serve, browser_scene) are shared with
scripts/screenshot_pages.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import imageio_ffmpeg
import pytest

from configs import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI
    from playwright.sync_api import Browser, Page

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install_browser.sh"
DEBIAN_CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ENV = "VESTIS_CHROMIUM"
# As root in a container Chromium's sandbox cannot start; /dev/shm is often a small tmpfs there.
CHROMIUM_ARGS = ("--no-sandbox", "--disable-dev-shm-usage")
VIDEO_SECONDS = 14  # the catwalk's labels run to 13 s: long enough that seeking to a moment is visible


class BrowserUnavailable(RuntimeError):
    """No browser can be had here; the message says why and what would fix it."""


def find_chromium(install: bool = True) -> Path:
    """VESTIS_CHROMIUM when set, else Debian's /usr/bin/chromium, installed first when missing."""
    named = os.environ.get(CHROMIUM_ENV)
    if named:
        path = Path(named)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise BrowserUnavailable(f"{CHROMIUM_ENV}={named} is not an executable file")
        return path
    if DEBIAN_CHROMIUM.is_file():
        return DEBIAN_CHROMIUM
    if not install:
        raise BrowserUnavailable(f"{DEBIAN_CHROMIUM} is missing: run scripts/install_browser.sh")
    try:
        # Under pytest-timeout's 600 s, so that a slow mirror is a skip that says so, not a killed test.
        done = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=480)
    except subprocess.TimeoutExpired:
        raise BrowserUnavailable(f"{INSTALL_SCRIPT.name} did not finish in 8 minutes") from None
    if done.returncode != 0 or not DEBIAN_CHROMIUM.is_file():
        said = "\n".join(done.stderr.strip().splitlines()[-5:]) or f"exit status {done.returncode}"
        raise BrowserUnavailable(f"{DEBIAN_CHROMIUM} is missing and {INSTALL_SCRIPT.name} could not "
                                 f"install it (or set {CHROMIUM_ENV} to a Chromium): {said}")
    return DEBIAN_CHROMIUM


def playwright_sync():
    """playwright.sync_api.sync_playwright, or BrowserUnavailable when the package is not installed."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise BrowserUnavailable(f"Playwright is not installed ({exc}): pip install -e '.[dev]'") from None
    return sync_playwright


@contextmanager
def launch_chromium(executable: Path) -> Iterator[Browser]:
    """Headless Chromium at `executable` through Playwright, closed on exit."""
    with playwright_sync()() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), headless=True,
                                             args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def serve(app: FastAPI, timeout: float = 30.0, settings=None) -> Iterator[str]:
    """Serve `app` with uvicorn on a free 127.0.0.1 port in a thread; yields its base URL.

    The socket is bound here and handed to uvicorn, so the port cannot be taken between choosing and
    binding it. On exit the server stops (open keep-alive or video connections get two seconds).
    With `settings`, the server is configured as `vestis serve` configures it (search_api/server.py).
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    host, port = sock.getsockname()
    if settings is None:
        config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
    else:
        from search_api.server import server_config

        config = server_config(app, settings, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="vestis-live-server",
                              daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the app's server stopped while starting (its error is logged above)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the app's server did not start in {timeout:.0f} s")
            time.sleep(0.02)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        if thread.is_alive():
            raise RuntimeError("the app's server did not stop in 10 s")


def make_long_video(target: Path, seconds: int = VIDEO_SECONDS) -> Path:
    """ffmpeg's test pattern with a running clock, `seconds` long, small and quick to encode."""
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi",
         "-i", f"testsrc=size=320x180:rate=5:duration={seconds}", "-pix_fmt", "yuv420p",
         "-movflags", "+faststart", "-y", str(target)],
        check=True, timeout=120,
    )
    return target


def browser_scene(root: Path) -> Settings:
    """tests.search_api.test_app's scene (catwalk: a red striped dress 0-4 s and a man in a black
    jacket 6-13 s, its file present; street: two outfits, its file deleted), with the catwalk's
    one-second clip replaced by a 14-second one so that a moment at 6 s can be seeked to."""
    from tests.search_api.test_app import build_scene

    settings = build_scene(root)
    make_long_video(root / "catwalk.mp4")
    return settings


def create_test_app(settings: Settings) -> FastAPI:
    """The app with the exact-words parser: MiniLM is never loaded, answers are the same everywhere."""
    from search_api.app import create_app
    from indexer.query_parser import QueryParser

    return create_app(settings, parser=QueryParser())


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium() -> Path:
    try:
        playwright_sync()  # before installing a browser nothing could drive
        return find_chromium()
    except BrowserUnavailable as exc:
        pytest.skip(f"no browser for the page tests: {exc}")


@pytest.fixture(scope="session")
def browser(chromium: Path) -> Iterator[Browser]:
    # A browser that is there but does not start is a failure, not a skip: it would hide a broken setup.
    with launch_chromium(chromium) as launched:
        yield launched


@pytest.fixture(scope="session")
def live_server(tmp_path_factory) -> Iterator[str]:
    """Base URL of the app on the browser scene."""
    settings = browser_scene(tmp_path_factory.mktemp("browser"))
    with serve(create_test_app(settings)) as url:
        yield url


@contextmanager
def fresh_page(browser: Browser, base_url: str, init_script: str | None = None) -> Iterator[Page]:
    """A fresh page (own cookies and cache) whose relative URLs go to `base_url`, with `init_script`
    run before any page script.

    Uncaught script errors fail the test: a page that throws can still look right in a screenshot.
    """
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    opened = context.new_page()
    if init_script:
        opened.add_init_script(init_script)
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield opened
    finally:
        context.close()
    assert not errors, f"the page threw: {errors}"


@pytest.fixture
def page(browser: Browser, live_server: str) -> Iterator[Page]:
    """A fresh page on the live server (see fresh_page)."""
    with fresh_page(browser, live_server) as opened:
        yield opened

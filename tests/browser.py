"""Headless Chromium for the tests, driven by Playwright: a screenshot or the rendered DOM of a
local page with the network cut off (used to check that the Data Docs open offline), and
screenshots of the project's Airflow UI on 127.0.0.1 (nothing else reachable).

The browser is the Chromium build shipped inside the npm package ``@sparticuz/chromium``
(``tests/chromium``), which ``make install`` unpacks into ``.venv/chromium``: it comes from the
npm registry like any other dependency, with nothing installed as root and nothing downloaded
from elsewhere. ``TREBOL_TEST_CHROMIUM`` names another Chromium binary instead.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Browser, Page, Playwright, Route, sync_playwright
from playwright.sync_api import Error as PlaywrightError

BUNDLED = Path(sys.prefix) / "chromium" / "chromium"
_FLAGS = [
    "--no-sandbox", "--no-zygote", "--single-process", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--disable-default-apps", "--disable-breakpad", "--no-first-run",
    "--no-default-browser-check", "--no-pings", "--mute-audio", "--hide-scrollbars",
    "--allow-file-access-from-files",
    # Never reach the network: every host fails to resolve and any request goes to a closed proxy.
    "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
]


def chromium_binary() -> Path:
    """The Chromium the tests drive, or a one-line error saying how to get it."""
    binary = Path(os.environ.get("TREBOL_TEST_CHROMIUM") or BUNDLED)
    if not binary.is_file():
        raise RuntimeError(f"chromium not found at {binary}: run `make install` (it unpacks the "
                           "npm package @sparticuz/chromium there)")
    return binary


def _local_only(route: Route) -> None:
    """Let pages read local files; abort anything that would go to the network."""
    if route.request.url.startswith(("file:", "data:", "blob:", "about:")):
        route.continue_()
    else:
        route.abort("internetdisconnected")


def _launch(pw: Playwright, binary: Path, flags: list[str], env: dict[str, str],
            timeout: float) -> Browser:
    """Chromium, launched again once if it died while starting (the single-process build has
    been seen to crash at launch, SIGSEGV, while another Chromium started on the machine): a
    crash before any page is no result of the test."""
    try:
        return pw.chromium.launch(executable_path=str(binary), args=flags, env=env,
                                  timeout=timeout * 1000)
    except PlaywrightError:
        return pw.chromium.launch(executable_path=str(binary), args=flags, env=env,
                                  timeout=timeout * 1000)


@contextmanager
def _page(width: int, height: int, timeout: float, *, flags: list[str] = _FLAGS,
          route: Callable[[Route], None] = _local_only) -> Iterator[Page]:
    binary = chromium_binary()
    with tempfile.TemporaryDirectory(prefix="trebol-chromium-") as home, sync_playwright() as pw:
        env = {"HOME": home, "PATH": os.environ.get("PATH", ""),
               # the fonts shipped beside the bundled binary: screenshots look the same everywhere
               "FONTCONFIG_PATH": str(binary.parent / "fonts")}
        browser = _launch(pw, binary, flags, env, timeout)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(timeout * 1000)
            page.route("**/*", route)
            yield page
        finally:
            browser.close()


def _open(page: Page, local_file: Path) -> None:
    local_file = Path(local_file).resolve()
    if not local_file.is_file():
        raise FileNotFoundError(local_file)
    page.goto(local_file.as_uri(), wait_until="load")
    page.wait_for_load_state("networkidle")  # the pages' scripts draw their tables after load


def screenshot(page_file: Path, png: Path, *, width: int = 1280, height: int = 1000,
               timeout: float = 60) -> None:
    """Save a PNG of a local HTML page as headless Chromium renders it (JS run, network off)."""
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    with _page(width, height, timeout) as page:
        _open(page, page_file)
        page.screenshot(path=str(png))
    if not png.is_file():
        raise RuntimeError(f"chromium wrote no screenshot of {Path(page_file).name}")


def rendered_dom(page_file: Path, *, timeout: float = 60) -> str:
    """The DOM of a local HTML page after its scripts ran in headless Chromium (network off)."""
    with _page(1280, 1000, timeout) as page:
        _open(page, page_file)
        return page.content()


@dataclass(frozen=True)
class RenderedPage:
    """A local page after its scripts ran: its DOM, what it logged as errors (console errors
    and uncaught exceptions) and the count of each CSS selector asked about."""

    dom: str
    errors: list[str]
    counts: dict[str, int]


def render_page(page_file: Path, png: Path, selectors: list[str], *, width: int = 1280,
                height: int = 1000, timeout: float = 60) -> RenderedPage:
    """Open a local page (network off), wait for it to settle, save a full-page PNG and return
    its DOM, its errors and how many elements match each selector."""
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    errors: list[str] = []
    with _page(width, height, timeout) as page:
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        _open(page, page_file)
        counts = {selector: page.locator(selector).count() for selector in selectors}
        page.screenshot(path=str(png), full_page=True)
        dom = page.content()
    return RenderedPage(dom, errors, counts)


# the Airflow UI's pages: 127.0.0.1 resolves and is reached directly; every other host still fails
_LOOPBACK_FLAGS = [("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
                    if flag.startswith("--host-resolver-rules") else flag)
                   for flag in _FLAGS if not flag.startswith("--proxy")]


def airflow_ui_screenshots(base_url: str, token: str, dag_id: str, out_dir: Path, *,
                           width: int = 2000, height: int = 900, timeout: float = 60) -> list[Path]:
    """PNGs of the Airflow UI at ``base_url`` (logged in with ``token``, an access token of
    ``/auth/token``, as the UI's own ``_token`` cookie): the DAG's graph, its runs and its
    backfills, into ``out_dir``; only ``base_url`` is reachable."""
    def same_origin(route: Route) -> None:
        if route.request.url.startswith((base_url, "data:", "blob:", "about:")):
            route.continue_()
        else:
            route.abort("internetdisconnected")

    out_dir.mkdir(parents=True, exist_ok=True)
    shots = {}
    with _page(width, height, timeout, flags=_LOOPBACK_FLAGS, route=same_origin) as page:
        page.context.add_cookies([{"name": "_token", "value": token, "url": base_url}])
        for tab in ("runs", "backfills"):
            page.goto(f"{base_url}/dags/{dag_id}/{tab}", wait_until="networkidle")
            page.wait_for_timeout(1000)
            shots[tab] = out_dir / f"airflow_{tab}.png"
            page.screenshot(path=str(shots[tab]))
        # last: the details panel collapsed (the UI remembers it), the graph fitted to the page
        page.goto(f"{base_url}/dags/{dag_id}", wait_until="networkidle")
        page.get_by_label("Show Graph (Press g)").click()
        page.get_by_label("Collapse Details Panel").click()
        page.get_by_label("Fit View").click()
        page.wait_for_timeout(2000)  # the graph's layout is drawn after the data arrived
        shots["graph"] = out_dir / "airflow_graph.png"
        page.screenshot(path=str(shots["graph"]))
    return [shots[name] for name in ("graph", "runs", "backfills")]

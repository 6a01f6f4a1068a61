"""Debian's headless chromium for the tests: a screenshot or the rendered DOM of a local page,
with the network cut off (used to check that the Data Docs open offline)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

_CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--no-first-run", "--hide-scrollbars",
    # Never reach the network: every host fails to resolve and any request goes to a closed proxy.
    "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
    "--disable-component-update", "--disable-domain-reliability", "--disable-sync", "--disable-extensions",
    "--disable-default-apps", "--disable-client-side-phishing-detection", "--disable-breakpad",
    "--no-default-browser-check", "--no-pings", "--mute-audio", "--allow-file-access-from-files",
    "--run-all-compositor-stages-before-draw",
]


def _chromium() -> str:
    """Path of Debian's chromium, or a clear error."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError("chromium not found: Data Docs screenshots need Debian's chromium "
                       "(apt-get install chromium)")


def _run_chromium(page: Path, extra: list[str], timeout: float, budget_ms: int = 10_000) -> str:
    """Run headless chromium on a local page; return its stdout. Kills the whole browser on timeout."""
    page = Path(page).resolve()
    if not page.is_file():
        raise FileNotFoundError(page)
    with tempfile.TemporaryDirectory(prefix="trebol-chromium-") as profile:
        args = [_chromium(), *_CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                f"--virtual-time-budget={budget_ms}", *extra, page.as_uri()]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True, env={**os.environ, "HOME": profile})
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise RuntimeError(f"chromium did not finish {page.name} within {timeout} s") from None
    if proc.returncode != 0:
        tail = " | ".join(err.strip().splitlines()[-3:])
        raise RuntimeError(f"chromium failed on {page.name} (exit {proc.returncode}): {tail}")
    return out


def screenshot(page: Path, png: Path, *, width: int = 1280, height: int = 1000, timeout: float = 60) -> None:
    """Save a PNG of a local HTML page as headless chromium renders it (JS run, network off)."""
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    _run_chromium(page, [f"--window-size={width},{height}", f"--screenshot={png}"], timeout)
    if not png.is_file():
        raise RuntimeError(f"chromium wrote no screenshot of {Path(page).name}")


def rendered_dom(page: Path, *, timeout: float = 60) -> str:
    """The DOM of a local HTML page after its scripts ran in headless chromium (network off)."""
    return _run_chromium(page, ["--dump-dom"], timeout)

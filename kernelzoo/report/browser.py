"""Headless Chromium for the HTML report: its rendered DOM and a screenshot.

Chromium's own ``--headless`` mode is enough (no Playwright, whose browser
download cannot work offline): ``--dump-dom`` prints the DOM after the page
has loaded, ``--screenshot`` writes a PNG. A fresh profile folder per call, and
the flags that keep it off the network (background updates, sync, QUIC).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["chromium_path", "dump_dom", "screenshot"]

_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--mute-audio",
)


def chromium_path() -> str | None:
    """The Chromium executable (``$KERNELZOO_CHROMIUM``, /usr/bin/chromium, or on PATH)."""
    explicit = os.environ.get("KERNELZOO_CHROMIUM")
    if explicit:
        return explicit if os.path.exists(explicit) else None
    if os.path.exists("/usr/bin/chromium"):
        return "/usr/bin/chromium"
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    executable = chromium_path()
    if executable is None:
        raise FileNotFoundError("Chromium was not found (install the Debian package "
                                "'chromium' or set KERNELZOO_CHROMIUM)")
    with tempfile.TemporaryDirectory(prefix="kernelzoo-chromium-") as profile:
        command = [executable, *_FLAGS, f"--user-data-dir={profile}", *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              check=False)
    if done.returncode != 0:
        tail = (done.stderr or "").strip().splitlines()[-3:]
        raise RuntimeError(f"chromium exited with {done.returncode}: {' | '.join(tail)}")
    return done


def dump_dom(page: str | os.PathLike, timeout: float = 120.0) -> str:
    """The DOM of ``page`` (an HTML file) after Chromium has loaded it."""
    return _run(["--dump-dom", Path(page).resolve().as_uri()], timeout).stdout


def screenshot(page: str | os.PathLike, png: str | os.PathLike, width: int = 1400,
               height: int = 2400, timeout: float = 120.0) -> str:
    """A PNG of the top ``width`` x ``height`` pixels of ``page`` (an HTML file)."""
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    _run([f"--screenshot={png}", f"--window-size={width},{height}",
          Path(page).resolve().as_uri()], timeout)
    if not png.exists():
        raise RuntimeError(f"chromium did not write {png}")
    return os.fspath(png)

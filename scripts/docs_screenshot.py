"""Screenshot of the built documentation's index page in headless Chromium.

    python scripts/docs_screenshot.py docs/_build/html docs/screenshot.png [--width 1280]

The same browser set-up as the compare report's (:mod:`kernelzoo.report.browser`:
Debian's ``chromium`` or ``$KERNELZOO_CHROMIUM``, a fresh profile, no network). Before
the screenshot the rendered DOM is checked: the page has its title, the generated
family table lists every registered family, and no gallery or API link is missing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def check_dom(dom: str) -> list[str]:
    """What the rendered index page lacks (empty: nothing)."""
    from kernelzoo import available

    wanted = ["The kernels behind convolutional", "Gallery of examples", "API reference",
              "Command line reference", *(f"{family}(" for family in available())]
    return [w for w in wanted if w not in dom]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", help="the built site (docs/_build/html)")
    parser.add_argument("png", help="where to write the screenshot")
    parser.add_argument("--width", type=int, default=1280, help="pixels (default 1280)")
    parser.add_argument("--height", type=int, default=1600, help="pixels (default 1600)")
    args = parser.parse_args(argv)
    page = Path(args.site) / "index.html"
    if not page.exists():
        parser.error(f"{page} does not exist (build the docs first)")
    from kernelzoo.report.browser import dump_dom, screenshot

    missing = check_dom(dump_dom(page))
    if missing:
        print(f"{page}: the rendered page lacks {missing}", file=sys.stderr)
        return 1
    print(screenshot(page, args.png, width=args.width, height=args.height))
    return 0


if __name__ == "__main__":
    sys.exit(main())

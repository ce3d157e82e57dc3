"""Screenshot of a ``kernelzoo compare`` report: ``report.png`` beside its ``report.html``.

    python scripts/report_screenshot.py reports/sample-digits [--rewrite] [--width 1400]

Headless Chromium (Debian's ``chromium``, or ``$KERNELZOO_CHROMIUM``) renders the
self-contained page; ``--rewrite`` first rewrites report.md, report.html and the
plots from the folder's results.csv and metadata.json (no measurement is rerun).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a report folder (with report.html)")
    parser.add_argument("--rewrite", action="store_true",
                        help="rewrite the report from results.csv first")
    parser.add_argument("--width", type=int, default=1400, help="pixels (default 1400)")
    parser.add_argument("--height", type=int, default=2400, help="pixels (default 2400)")
    args = parser.parse_args(argv)
    folder = Path(args.folder)
    if args.rewrite:
        from kernelzoo.bench.compare import rewrite_report

        rewrite_report(folder)
    page = folder / "report.html"
    if not page.exists():
        parser.error(f"{page} does not exist (run kernelzoo compare, or pass --rewrite)")
    from kernelzoo.report.browser import screenshot

    print(screenshot(page, folder / "report.png", width=args.width, height=args.height))
    return 0


if __name__ == "__main__":
    sys.exit(main())

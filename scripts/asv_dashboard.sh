#!/usr/bin/env bash
# Run kernelzoo's asv suite on this checkout and publish the HTML dashboard.
#
#   bash scripts/asv_dashboard.sh [--quick] [--bench REGEX] [--offline] [--preview]
#                                 [--publish-only] [ASV RUN ARGS...]
#
#   --quick        one sample per benchmark (a smoke run, figures not to be quoted)
#   --preview      serve the dashboard afterwards on http://127.0.0.1:8080 (asv preview;
#                  Ctrl-C stops it); open it in a browser (file:// blocks its data files)
#   --offline      make the dashboard self-contained: asv's page loads jQuery, flot,
#                  bootstrap, stupidtable and md5 from CDNs; this fetches the same
#                  packages with `npm pack` (npm registry) into .asv/vendor and points
#                  .asv/html/index.html at local copies
#   --bench REGEX  only benchmarks whose name matches, e.g. --bench Peers
#   --publish-only no run: publish the results already in .asv/results
#   other arguments go to `asv run` unchanged (e.g. --show-stderr, -a repeat=3)
#
# It uses the Python in $PYTHON (default: python on PATH), which needs asv and
# kernelzoo's dependencies (pip install -e ".[bench]"); this checkout's kernelzoo is
# the one benchmarked (ASV_PYTHONPATH), whatever is installed. Results are saved
# under .asv/results for the current commit (--set-commit-hash; uncommitted changes
# are attributed to HEAD) and the dashboard is written to .asv/html. History over
# commits instead: asv run --environment virtualenv main~10..main (see asv.conf.json).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python}
asv() { "$PYTHON" -m asv "$@"; }

preview=0
offline=0
publish_only=0
run_args=()
for arg in "$@"; do
    case "$arg" in
        --preview) preview=1 ;;
        --offline) offline=1 ;;
        --publish-only) publish_only=1 ;;
        *) run_args+=("$arg") ;;
    esac
done

# The JavaScript packages asv's index.html takes from CDNs (npm name@version).
VENDOR_PACKAGES=(jquery@3.3.1 flot@0.8.3 flot-orderbars@1.0.0 stupid-table-plugin@1.1.3
                 blueimp-md5@2.19.0 bootstrap@3.1.1)

vendor_js() {
    local vendor=.asv/vendor pkg name
    mkdir -p "$vendor"
    for pkg in "${VENDOR_PACKAGES[@]}"; do
        name=${pkg%@*}
        if [ ! -d "$vendor/$name" ]; then
            (cd "$vendor" && npm pack --silent "$pkg" >/dev/null)
            mkdir -p "$vendor/$name"
            tar xzf "$vendor/$name"-*.tgz -C "$vendor/$name" --strip-components=1
        fi
    done
    rm -rf .asv/html/vendor
    cp -r "$vendor" .asv/html/vendor
    "$PYTHON" - .asv/html/index.html <<'PY'
import re
import sys

# CDN file name -> local copy under vendor/ (same library and major version)
LOCAL = {
    "jquery-3.3.1.min.js": "jquery/dist/jquery.min.js",
    "jquery.flot.min.js": "flot/jquery.flot.js",
    "jquery.flot.time.min.js": "flot/jquery.flot.time.js",
    "jquery.flot.selection.min.js": "flot/jquery.flot.selection.js",
    "jquery.flot.categories.min.js": "flot/jquery.flot.categories.js",
    "jquery.flot.orderBars.js": "flot-orderbars/js/jquery.flot.orderBars.js",
    "stupidtable.min.js": "stupid-table-plugin/stupidtable.min.js",
    "md5.min.js": "blueimp-md5/js/md5.min.js",
    "bootstrap.min.js": "bootstrap/dist/js/bootstrap.min.js",
    "bootstrap.min.css": "bootstrap/dist/css/bootstrap.min.css",
}
path = sys.argv[1]
html = open(path, encoding="utf-8").read()


def localise(match):
    tag = match.group(0)
    url = re.search(r'(?:src|href)="(https?://[^"]+)"', tag)
    if not url or url.group(1).rsplit("/", 1)[1] not in LOCAL:
        return tag
    tag = tag.replace(url.group(1), "vendor/" + LOCAL[url.group(1).rsplit("/", 1)[1]])
    return re.sub(r'\s(integrity|crossorigin|referrerpolicy)="[^"]*"', "", tag)


html = re.sub(r"<(script|link)\b[^>]*>", localise, html)
left = re.findall(r'<(?:script|link)\b[^>]*(?:src|href)="https?://[^"]+"', html)
open(path, "w", encoding="utf-8").write(html)
if left:
    sys.exit(f"still remote in {path}: {left}")
PY
}

if ! "$PYTHON" -c "import asv" 2>/dev/null; then
    echo "asv is not installed for $PYTHON: pip install -e '.[bench]'" >&2
    exit 2
fi

# asv drops PYTHONPATH; ASV_PYTHONPATH is what it hands the benchmark processes.
export ASV_PYTHONPATH="$PWD${ASV_PYTHONPATH:+:$ASV_PYTHONPATH}"

if [ "$publish_only" = 0 ]; then
    asv machine --yes >/dev/null
    asv check --python=same
    asv run --python=same --set-commit-hash="$(git rev-parse HEAD)" "${run_args[@]}"
fi
asv publish
if [ "$offline" = 1 ]; then
    vendor_js
fi

echo "dashboard: $PWD/.asv/html/index.html (serve it: $PYTHON -m asv preview)"
if [ "$preview" = 1 ]; then
    exec "$PYTHON" -m asv preview
fi

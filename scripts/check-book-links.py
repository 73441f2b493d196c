#!/usr/bin/env python3
"""check-book-links.py: every link between the built book's pages leads somewhere.

Usage: scripts/check-book-links.py BOOK_DIR   (the HTML mdBook built)

For each page: every local href reaches a file of the book, every #anchor an id on its page,
every picture (img src) a file; links to other sites are left alone. mdBook itself does not
check these: a link to a chapter that does not exist, or to a heading renamed, builds clean.

Exit status: 0 every link holds; 1 some do not (each named, with its page).
"""

import os
import sys
from html.parser import HTMLParser
from urllib.parse import unquote, urlsplit


class Page(HTMLParser):
    """The ids a page defines and the links it makes."""

    def __init__(self):
        super().__init__()
        self.ids = set()
        self.links = []  # (attribute, value)

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("id", "name") and value:
                self.ids.add(value)
            if value and ((name == "href" and tag == "a") or (name == "src" and tag == "img")):
                self.links.append((name, value))


def main(book):
    pages = {}
    for folder, _, files in os.walk(book):
        for file in files:
            if file.endswith(".html"):
                path = os.path.join(folder, file)
                page = Page()
                with open(path, encoding="utf-8") as text:
                    page.feed(text.read())
                pages[os.path.relpath(path, book)] = page
    broken = []
    for name, page in sorted(pages.items()):
        # print.html is every chapter on one page: its links are the chapters' own, rewritten.
        if name in ("print.html", "404.html"):
            continue
        for attribute, value in page.links:
            parts = urlsplit(value)
            if parts.scheme or parts.netloc or value.startswith("mailto:"):
                continue
            target = name if not parts.path else os.path.normpath(
                os.path.join(os.path.dirname(name), unquote(parts.path)))
            if not os.path.exists(os.path.join(book, target)):
                broken.append(f"{name}: {attribute}={value}: no file {target}")
                continue
            if parts.fragment and target.endswith(".html"):
                if target in pages and unquote(parts.fragment) not in pages[target].ids:
                    broken.append(f"{name}: {attribute}={value}: no #{parts.fragment} in {target}")
    for line in broken:
        print(f"check-book-links: {line}", file=sys.stderr)
    if broken:
        print(f"check-book-links: {len(broken)} broken link(s) in {book}", file=sys.stderr)
        return 1
    print(f"check-book-links: {len(pages)} pages, every link and anchor holds")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: scripts/check-book-links.py BOOK_DIR", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))

"""A tiny HTML reader for the tests: matrix cells by (run, task), and every data-* attribute seen."""

from __future__ import annotations

from html.parser import HTMLParser


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.cells: dict[tuple[str, str], dict] = {}
        self.tags: list[tuple[str, dict]] = []
        self._open: dict | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "td" and "data-task" in a:
            self._open = {"attrs": a, "text": ""}
            self.cells[(a["data-run"], a["data-task"])] = self._open

    def handle_endtag(self, tag):
        if tag == "td":
            self._open = None

    def handle_data(self, data):
        if self._open is not None:
            self._open["text"] += data


def parse(html: str) -> _Cells:
    p = _Cells()
    p.feed(html)
    p.close()
    return p

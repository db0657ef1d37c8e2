"""Reading the pages behind signed links as a person would: the sections under each heading,
their paragraphs and their table rows, cell by cell (text, class)."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

Cell = tuple[str, str | None]  # (text, class)


@dataclass
class Section:
    paragraphs: list[Cell] = field(default_factory=list)
    rows: list[list[Cell]] = field(default_factory=list)  # body rows only, not the header


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.title = ""
        self.h1 = ""
        self.sections: dict[str, Section] = {"": Section()}
        self._heading = ""
        self._text: list[str] | None = None
        self._class: str | None = None
        self._tag = ""
        self._row: list[Cell] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("title", "h1", "h2", "p", "td", "li"):
            self._text, self._class, self._tag = [], dict(attrs).get("class"), tag
        elif tag == "tr":
            self._row = []

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr" and self._row is not None:
            if self._row:  # header rows hold <th> cells only
                self.sections[self._heading].rows.append(self._row)
            self._row = None
        if self._text is None or tag != self._tag:
            return
        text, self._text = "".join(self._text), None
        if tag == "title":
            self.title = text
        elif tag == "h1":
            self.h1 = text
        elif tag == "h2":
            self._heading = text
            self.sections[text] = Section()
        elif tag == "td" and self._row is not None:
            self._row.append((text, self._class))
        else:
            self.sections[self._heading].paragraphs.append((text, self._class))


@dataclass
class LinkPage:
    title: str
    h1: str
    sections: dict[str, Section]


def read_page(html: str) -> LinkPage:
    """The page's title, its <h1> and its sections by <h2> text ("" before the first one)."""
    reader = _Reader()
    reader.feed(html)
    reader.close()
    return LinkPage(reader.title, reader.h1, reader.sections)

"""The report as data (sections of paragraphs, tables, diagrams) and its two renderings: HTML and Markdown.

Sections build these blocks; the renderers know nothing about AWS. The HTML page is
self-contained: styles and the diagram are inline, there is no script and no external
reference, and long cells wrap so the page never scrolls sideways.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Literal

Flag = Literal["", "ok", "warn", "error"]


class Code(str):
    """A cell or text shown as code (policy JSON, ARNs, rule ids)."""

    __slots__ = ()


@dataclass
class Paragraph:
    """A line of prose; a flag colours it (warn, error) in the page."""

    text: str
    flag: Flag = ""


@dataclass
class Heading:
    """A sub-heading inside a section."""

    text: str


@dataclass
class Row:
    """One table row; a flagged row is highlighted and marked in Markdown."""

    cells: list[str]
    flag: Flag = ""


@dataclass
class Table:
    """A table with a header row."""

    columns: list[str]
    rows: list[Row] = field(default_factory=list)

    def add(self, *cells: object, flag: Flag = "") -> None:
        """Append a row; cells are converted to text (a Code cell stays code)."""
        self.rows.append(Row([c if isinstance(c, str) else str(c) for c in cells], flag))


@dataclass
class Diagram:
    """An inline SVG and the text that describes it."""

    svg: str
    caption: str
    references: list[str] = field(default_factory=list)


Block = Paragraph | Heading | Table | Diagram


@dataclass
class Section:
    """One numbered part of the report."""

    anchor: str
    title: str
    blocks: list[Block] = field(default_factory=list)

    def para(self, text: str, flag: Flag = "") -> None:
        """Append a paragraph."""
        self.blocks.append(Paragraph(text, flag))

    def heading(self, text: str) -> None:
        """Append a sub-heading."""
        self.blocks.append(Heading(text))

    def table(self, *columns: str) -> Table:
        """Append an empty table and return it for filling."""
        table = Table(list(columns))
        self.blocks.append(table)
        return table


@dataclass
class Document:
    """The whole report of one environment."""

    title: str
    subtitle: str
    sections: list[Section]


_MARK = {"": "", "ok": "", "warn": "⚠ ", "error": "✖ "}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1b1f24;background:#fff;
line-height:1.45;font-size:15px}
main{max-width:1200px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:1.6em;margin:.4em 0 .1em}h2{font-size:1.3em;margin-top:2em;border-bottom:2px solid #d0d7de;
padding-bottom:.2em}h3{font-size:1.05em;margin-top:1.4em}
nav{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:8px 16px;margin:12px 0}
nav ol{margin:.3em 0;padding-left:1.4em;columns:2}
table{border-collapse:collapse;width:100%;table-layout:fixed;margin:.6em 0;font-size:.88em}
th,td{border:1px solid #d0d7de;padding:3px 6px;text-align:left;vertical-align:top;overflow-wrap:anywhere;
word-break:break-word}
th{background:#f6f8fa}
tr.warn td{background:#fff8c5}tr.error td{background:#ffebe9}tr.ok td{background:#dafbe1}
p.warn{background:#fff8c5;padding:4px 8px;border-left:4px solid #bf8700}
p.error{background:#ffebe9;padding:4px 8px;border-left:4px solid #cf222e}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.92em;white-space:pre-wrap;
overflow-wrap:anywhere}
figure{margin:.6em 0}figure svg{width:100%;height:auto;border:1px solid #d0d7de}
figcaption{font-size:.85em;color:#57606a}
"""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _html_text(text: str) -> str:
    if isinstance(text, Code):
        return f"<code>{html.escape(text)}</code>"
    return html.escape(text).replace("\n", "<br>")


def to_html(doc: Document) -> str:
    """The self-contained page."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # Nothing may be fetched when the page is opened: no scripts, styles or images from elsewhere.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        'img-src data:">',
        f"<title>{html.escape(doc.title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{html.escape(doc.title)}</h1><p>{html.escape(doc.subtitle)}</p>",
        '<nav aria-label="Contents"><strong>Contents</strong><ol>',
    ]
    out += [f'<li><a href="#{s.anchor}">{html.escape(s.title)}</a></li>' for s in doc.sections]
    out.append("</ol></nav>")
    for section in doc.sections:
        out.append(f'<section id="{section.anchor}"><h2>{html.escape(section.title)}</h2>')
        for block in section.blocks:
            out.append(_html_block(block, section.anchor))
        out.append("</section>")
    out.append("</main></body></html>")
    return "\n".join(out) + "\n"


def _html_block(block: Block, anchor: str) -> str:
    if isinstance(block, Paragraph):
        cls = f' class="{block.flag}"' if block.flag else ""
        return f"<p{cls}>{_html_text(block.text)}</p>"
    if isinstance(block, Heading):
        return f'<h3 id="{anchor}-{_slug(block.text)}">{html.escape(block.text)}</h3>'
    if isinstance(block, Diagram):
        return f"<figure>{block.svg}<figcaption>{html.escape(block.caption)}</figcaption></figure>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in block.columns)
    rows = []
    for row in block.rows:
        cls = f' class="{row.flag}"' if row.flag else ""
        cells = "".join(f"<td>{_html_text(c)}</td>" for c in row.cells)
        rows.append(f"<tr{cls}>{cells}</tr>")
    if not rows:
        rows.append(f'<tr><td colspan="{len(block.columns)}">(none)</td></tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _md_cell(text: str) -> str:
    escaped = text.replace("|", "\\|").replace("\n", "<br>")
    if isinstance(text, Code) and escaped:
        return f"`{escaped}`" if "`" not in escaped else escaped
    return escaped


def to_markdown(doc: Document) -> str:
    """The same content for review in a pull request (the diagram is left to the page)."""
    out = [f"# {doc.title}", "", doc.subtitle, "", "## Contents", ""]
    out += [f"{i}. [{s.title}](#{_slug(s.title)})" for i, s in enumerate(doc.sections, 1)]
    for section in doc.sections:
        out += ["", f"## {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, Paragraph):
                out += [f"{_MARK[block.flag]}{block.text}", ""]
            elif isinstance(block, Heading):
                out += [f"### {block.text}", ""]
            elif isinstance(block, Diagram):
                out += [f"*Diagram: {block.caption} The drawing is in index.html; the references as text:*", ""]
                out += ["<details><summary>" + f"{len(block.references)} references</summary>", ""]
                out += [f"- `{line}`" for line in block.references] + ["", "</details>", ""]
            else:
                out.append("| " + " | ".join(_md_cell(c) for c in block.columns) + " |")
                out.append("|" + "---|" * len(block.columns))
                for row in block.rows:
                    cells = [_md_cell(c) for c in row.cells]
                    cells[0] = _MARK[row.flag] + cells[0]
                    out.append("| " + " | ".join(cells) + " |")
                if not block.rows:
                    out.append("| (none) |" + " |" * (len(block.columns) - 1))
                out.append("")
    return "\n".join(out).rstrip() + "\n"

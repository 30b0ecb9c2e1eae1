"""A report's markdown as one self-contained HTML page, its PNGs embedded as data URIs.

Why: MLflow's artifact view shows HTML files but not relative image links, and ``dvc plots``
HTML needs a CDN. Only the markdown our reports use is handled: headings, paragraphs, ``-``
lists, pipe tables, images, ``**bold**``, ``*italic*`` and ``code``.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping

_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")
_STYLE = ("body{font-family:sans-serif;max-width:60em;margin:1em auto;line-height:1.4}"
          "table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:2px 8px}"
          "img{max-width:100%}")


def markdown_to_html(markdown: str, images: Mapping[str, bytes] | None = None,
                     title: str | None = None) -> str:
    """``markdown`` as HTML; an image whose link is a key of ``images`` (PNG bytes) is
    embedded, any other link is kept as it is."""
    images = images or {}
    body: list[str] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        if not line:
            i += 1
        elif m := re.match(r"(#{1,6})\s+(.*)", line):
            level = len(m.group(1))
            body.append(f"<h{level}>{_inline(m.group(2), images)}</h{level}>")
            i += 1
        elif line.startswith("|"):
            block, i = _take(lines, i, lambda s: s.startswith("|"))
            body.append(_table(block, images))
        elif line.startswith("- "):
            block, i = _take(lines, i, lambda s: s.startswith("- "))
            items = "".join(f"<li>{_inline(s[2:], images)}</li>" for s in block)
            body.append(f"<ul>{items}</ul>")
        else:
            block, i = _take(lines, i, lambda s: bool(s.strip()) and not s.startswith(("#", "|",
                                                                                       "- ")))
            body.append(f"<p>{_inline(' '.join(block), images)}</p>")
    head = f"<title>{html.escape(title)}</title>" if title else ""
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'>{head}<style>{_STYLE}</style>"
            f"</head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _take(lines: list[str], i: int, keep) -> tuple[list[str], int]:
    block = []
    while i < len(lines) and keep(lines[i].rstrip()):
        block.append(lines[i].rstrip())
        i += 1
    return block, i


def _table(rows: list[str], images: Mapping[str, bytes]) -> str:
    def cells(row: str) -> list[str]:
        return [c.strip() for c in row.strip().strip("|").split("|")]

    header, *rest = rows
    rest = [r for r in rest if not re.fullmatch(r"\|?[\s|:-]+\|?", r)]
    out = ["<table><tr>" + "".join(f"<th>{_inline(c, images)}</th>" for c in cells(header))
           + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{_inline(c, images)}</td>" for c in cells(r)) + "</tr>"
            for r in rest]
    return "".join(out) + "</table>"


def _inline(text: str, images: Mapping[str, bytes]) -> str:
    parts: list[str] = []
    last = 0
    for m in _IMAGE.finditer(text):
        parts.append(_emphasis(html.escape(text[last:m.start()])))
        alt, src = m.group(1), m.group(2)
        if src in images:
            src = "data:image/png;base64," + base64.b64encode(images[src]).decode()
        parts.append(f"<img alt='{html.escape(alt, quote=True)}' "
                     f"src='{html.escape(src, quote=True)}'>")
        last = m.end()
    parts.append(_emphasis(html.escape(text[last:])))
    return "".join(parts)


def _emphasis(text: str) -> str:
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)
    return re.sub(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])", r"<i>\1</i>", text)

"""Griffe extension: render tinygrad_bp's plain-text docstrings faithfully as Markdown.

mkdocstrings reads docstrings as Markdown, but ours are plain text with maths and
doctests (and a little reStructuredText), which Markdown misreads:

- a line that starts with `>` is a quotation, so a `>>>` example would render as three
  nested block quotes: each run of doctest lines (from a `>>>` line to the next blank
  line) is wrapped in a ```pycon fence instead;
- `H[i][j]` is a Markdown reference link (to a target "j" that does not exist, which
  fails a strict build) and `a*b*c` is emphasis: outside code, `][` and `*` are
  escaped so they stay indexing and multiplication;
- reStructuredText's literal-block marker (a line ending in `::`) and roles
  (:class:`Adam`) become a plain colon and a code span.

Loaded by mkdocs.yml (plugins > mkdocstrings > options > extensions).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)  # may run over a line break
_RST_ROLE = re.compile(r":(?:class|func|meth|attr|mod|obj|data|exc):`~?([^`]+)`")
_RST_LITERAL_MARKER = re.compile(r"::$", re.MULTILINE)


def _escape(text: str) -> str:
    return text.replace("][", "]\\[").replace("*", "\\*")


def _prose(text: str) -> str:
    """A run of prose lines made Markdown-safe (see the module docstring)."""
    text = _RST_LITERAL_MARKER.sub(":", _RST_ROLE.sub(r"`\1`", text))
    pieces, end = [], 0
    for span in _CODE_SPAN.finditer(text):
        pieces.append(_escape(text[end : span.start()]))
        pieces.append(span.group(0))  # code spans show their text as it is
        end = span.end()
    pieces.append(_escape(text[end:]))
    return "".join(pieces)


def render_plain_docstring(text: str) -> str:
    """Fence the doctest runs of `text` and make its prose Markdown-safe."""
    out: list[str] = []
    prose: list[str] = []
    doctest_indent: str | None = None  # inside a doctest run: its indentation
    in_fence = False  # inside a ``` block that the docstring wrote itself

    def flush_prose() -> None:
        if prose:
            out.extend(_prose("\n".join(prose)).split("\n"))
            prose.clear()

    for line in text.splitlines():
        stripped = line.lstrip()
        if doctest_indent is not None:
            if not stripped:
                out.append(f"{doctest_indent}```")
                doctest_indent = None
            out.append(line)
        elif in_fence or stripped.startswith("```"):
            flush_prose()
            in_fence = in_fence != stripped.startswith("```")
            out.append(line)
        elif stripped.startswith(">>>"):
            flush_prose()
            doctest_indent = line[: len(line) - len(stripped)]
            out.extend([f"{doctest_indent}```pycon", line])
        elif line.startswith("    "):  # an indented code block: left as it is
            flush_prose()
            out.append(line)
        else:
            prose.append(line)
    flush_prose()
    if doctest_indent is not None:
        out.append(f"{doctest_indent}```")
    return "\n".join(out)


class DoctestBlocks(griffe.Extension):
    """Apply `render_plain_docstring` to every documented object."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = render_plain_docstring(obj.docstring.value)

"""The documentation runs: every ```python block of every page, and the site build.

Each page's ```python blocks are concatenated in order and run as one script in a
fresh interpreter (so a page that changes the default dtype or seeds the RNG cannot
affect another), with a temporary working directory and matplotlib's Agg backend.
Code sits on the same line numbers as in the Markdown file, so a traceback points at
the page's own line. A block preceded by a `<!-- no-run -->` line is shown, not run.
A page with a `<!-- requires: torch, safetensors -->` line runs only where those
modules are installed, and is skipped with that reason elsewhere.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
NO_RUN = "<!-- no-run -->"
# A fence opens with ``` or longer plus an info string; Python blocks say "python".
FENCE = re.compile(r"^(?P<fence>`{3,})\s*(?P<info>[^`]*)$")
REQUIRES = re.compile(r"^<!-- requires: (?P<modules>[\w., ]+) -->$", re.M)

# Runs the script in a fresh namespace; the code is compiled under the page's path so
# tracebacks name the .md file and (thanks to the padding) its line numbers. Hypothesis
# is derandomized so that a page's property-based examples cannot make the suite flaky.
RUNNER = """
import sys
try:  # reproducible Hypothesis examples in the pages' property-based tests
    from hypothesis import settings
    settings.register_profile("docs", derandomize=True, deadline=None)
    settings.load_profile("docs")
except ImportError:
    pass
path = sys.argv[1]
source = sys.stdin.read()
exec(compile(source, path, "exec"), {"__name__": "__main__", "__file__": path})
"""


def python_blocks(text: str, where: str = "<page>") -> str:
    """The page's runnable ```python code as one script, each line at its own line number.

    Lines outside runnable blocks become empty lines. Fences must start at the left
    margin (blocks nested in lists or admonitions are not run, so do not nest them).
    """
    lines = text.splitlines()
    script = [""] * len(lines)
    fence = None  # the open fence's backticks, or None outside a block
    runnable = False
    previous = ""  # the last non-blank line before the current one
    for number, line in enumerate(lines):
        match = FENCE.match(line)
        if fence is None and match:
            fence = match["fence"]
            language = match["info"].split()[0] if match["info"].split() else ""
            runnable = language == "python" and previous.strip() != NO_RUN
        elif fence is not None and line.strip() == fence:
            fence = None
            runnable = False
        elif fence is not None and runnable:
            script[number] = line
        if line.strip():
            previous = line
    if fence is not None:
        raise ValueError(f"{where}: a ``` block is never closed")
    return "\n".join(script) + "\n"


def required_modules(text: str) -> list[str]:
    """The modules a page's `<!-- requires: ... -->` lines name, in order."""
    return [
        name.strip()
        for match in REQUIRES.finditer(text)
        for name in match["modules"].split(",")
        if name.strip()
    ]


def page_id(page: Path) -> str:
    return page.relative_to(DOCS).as_posix()


def test_pages_exist() -> None:
    """The pages the site's navigation promises are there (and so are tested below)."""
    expected = {
        "index.md",
        "tutorial.md",
        "comparison.md",
        "guide/tensors.md",
        "guide/autograd.md",
        "guide/nn_optim.md",
        "guide/sequence_models.md",
        "guide/custom_ops.md",
        "guide/testing.md",
        "guide/transforms.md",
        "guide/debugging.md",
        "guide/interop.md",
    }
    assert expected <= {page_id(p) for p in PAGES}


def test_python_blocks_keeps_line_numbers_and_skips_marked_blocks() -> None:
    page = (
        "# Title\n"
        "```python\n"
        "a = 1\n"
        "```\n"
        "<!-- no-run -->\n"
        "```python\n"
        "raise SystemExit\n"
        "```\n"
        "```bash\n"
        "echo not python\n"
        "```\n"
        "````python\n"
        "b = '```'\n"
        "````\n"
    )
    script = python_blocks(page).splitlines()
    assert script[2] == "a = 1"
    assert script[12] == "b = '```'"
    assert "raise SystemExit" not in script
    assert "echo not python" not in script


def test_required_modules_reads_the_requires_lines() -> None:
    page = "# T\n<!-- requires: torch, safetensors -->\ntext\n<!-- requires: onnx -->\n"
    assert required_modules(page) == ["torch", "safetensors", "onnx"]
    assert required_modules("# T\n    <!-- requires: torch -->\n") == []


def test_python_blocks_rejects_an_unclosed_fence() -> None:
    with pytest.raises(ValueError, match="never closed"):
        python_blocks("```python\nx = 1\n", "broken.md")


def _has_code(page: Path) -> bool:
    try:
        return bool(python_blocks(page.read_text(encoding="utf-8")).strip())
    except ValueError:
        return True  # an unclosed fence: let the test below report it


@pytest.mark.parametrize("page", [p for p in PAGES if _has_code(p)], ids=page_id)
def test_page_code_runs(page: Path, tmp_path: Path) -> None:
    text = page.read_text(encoding="utf-8")
    missing = [m for m in required_modules(text) if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{page_id(page)} needs {', '.join(missing)}, not installed here")
    script = python_blocks(text, str(page))
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=_pythonpath())
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, str(page)],
        input=script,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, (
        f"the code of {page_id(page)} failed (line numbers are the page's own):\n"
        f"{result.stderr[-4000:]}"
    )


def test_docstring_rendering_keeps_plain_text_plain() -> None:
    """The griffe extension that mkdocs.yml loads for the API reference pages."""
    pytest.importorskip("griffe", reason="the docs toolchain is not installed")
    spec = importlib.util.spec_from_file_location(
        "doctest_blocks", DOCS / "_hooks" / "doctest_blocks.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = (
        "H[i][j] = 2*x, as :class:`Adam` does with ``a*b[i][j]``::\n"
        "\n"
        "    code[i][j] * 2\n"
        "\n"
        ">>> f(2)*3\n"
        "6\n"
        "\n"
        "End."
    )
    assert module.render_plain_docstring(text).splitlines() == [
        "H[i]\\[j] = 2\\*x, as `Adam` does with ``a*b[i][j]``:",
        "",
        "    code[i][j] * 2",
        "",
        "```pycon",
        ">>> f(2)*3",
        "6",
        "```",
        "",
        "End.",
    ]


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    missing = [
        name
        for name in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        pytest.skip(
            f"the docs toolchain is not installed ({', '.join(missing)} missing): "
            "pip install -e '.[docs]' to build the site"
        )
    env = dict(os.environ, PYTHONPATH=_pythonpath(), NO_MKDOCS_2_WARNING="1")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--site-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, (
        f"mkdocs build --strict failed:\n{result.stdout[-2000:]}{result.stderr[-4000:]}"
    )


def _pythonpath() -> str:
    """The repository first, so the docs test the checkout even when not installed."""
    return os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)

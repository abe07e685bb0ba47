"""Keep the import graph of STYLE.md: imports run downward only.

`autograd` never imports `tensor` or `ops`; `ops` never imports `tensor`; the low
modules import no higher ones; `nn`, `optim`, `testing`, `data`, `func` build on the
public package, never on `ops` or `autograd`; only `testing.strategies` imports
Hypothesis. `Function.apply` reaches `Tensor._apply` with a deferred import, the one
sanctioned upward edge (the recording point lives on Tensor).
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tinygrad_bp"

FORBIDDEN = {
    "_config": {"tensor", "ops", "autograd", "function", "_grad_mode"},
    "_grad_mode": {"tensor", "ops", "autograd", "function", "_config"},
    "function": {"tensor", "ops", "autograd"},
    "ops": {"tensor", "autograd"},
    "autograd": {"tensor", "ops", "function"},
}
PRIVATE_CORE = {"ops", "autograd", "function", "tensor"}


def imported_modules(path: Path, skip_function: str | None = None) -> set[str]:
    """Names of modules that `path` imports (relative ones made absolute), anywhere in
    the file except inside the function named `skip_function`."""
    tree = ast.parse(path.read_text())
    skipped = {
        inner
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name == skip_function
        for inner in ast.walk(node)
    }
    nodes = [node for node in ast.walk(tree) if node not in skipped]
    names = set()
    package_parts = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1]
                module = ".".join(
                    [*base, *(node.module.split(".") if node.module else [])]
                )
                targets = [module] + [f"{module}.{a.name}" for a in node.names]
            else:
                targets = [node.module or ""] + [
                    f"{node.module}.{a.name}" for a in node.names
                ]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        names.update(targets)
    return names


def core_name(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "tinygrad_bp" else None


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_low_modules_import_nothing_above_them(module):
    # Function.apply's deferred import of Tensor is the one allowed upward edge
    skip = "apply" if module == "function" else None
    imported = {core_name(m) for m in imported_modules(PACKAGE / f"{module}.py", skip)}
    assert not imported & FORBIDDEN[module], (
        f"{module} imports {imported & FORBIDDEN[module]}"
    )


def test_the_upward_edge_is_really_only_in_function_apply():
    everything = {core_name(m) for m in imported_modules(PACKAGE / "function.py")}
    assert "tensor" in everything  # if this changes, drop the exception above


def higher_modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in {"nn", "optim", "testing", "cli"} or relative.stem in {
            "data",
            "func",
            "seed",
            "serialization",
            "viz",
        }:
            yield path


@pytest.mark.parametrize(
    "path", list(higher_modules()), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_higher_modules_use_only_the_public_api(path):
    imported = {core_name(m) for m in imported_modules(path)}
    assert not imported & PRIVATE_CORE, (
        f"{path.name} reaches into {imported & PRIVATE_CORE}"
    )


def test_only_strategies_imports_hypothesis():
    for path in PACKAGE.rglob("*.py"):
        if path.name == "strategies.py":
            continue
        modules = imported_modules(path)
        assert not any(m.split(".")[0] == "hypothesis" for m in modules), path


def test_core_imports_without_hypothesis():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['hypothesis'] = None\n"
        "import tinygrad_bp, tinygrad_bp.testing\n"
        "assert 'hypothesis' not in sys.modules or sys.modules['hypothesis'] is None"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PACKAGE.parent)


COMPILER_STAGES = ["ir", "trace", "passes", "codegen_numpy", "api"]


@pytest.mark.parametrize("stage", COMPILER_STAGES)
def test_compiler_stages_import_only_the_stages_before_them(stage):
    later = set(COMPILER_STAGES[COMPILER_STAGES.index(stage) :])
    imported = imported_modules(PACKAGE / "compiler" / f"{stage}.py")
    stages = {
        m.split(".")[2] for m in imported if m.startswith("tinygrad_bp.compiler.")
    }
    assert not stages & later, f"compiler.{stage} imports {stages & later}"
    if stage in ("ir", "passes"):  # pure: no library module at all
        assert not {core_name(m) for m in imported} - {None, "compiler"}


def test_the_onnx_code_generator_reads_only_the_ir_and_the_passes():
    # the second back-end over the IR: no tracer, no NumPy code generator, no library
    # module, and the onnx package only as an argument (never imported)
    imported = imported_modules(PACKAGE / "compiler" / "codegen_onnx.py")
    stages = {
        m.split(".")[2] for m in imported if m.startswith("tinygrad_bp.compiler.")
    }
    assert stages <= {"ir", "passes"}, stages
    assert not {core_name(m) for m in imported} - {None, "compiler"}
    assert not any(m.split(".")[0] == "onnx" for m in imported)


def test_nothing_below_the_package_imports_the_compiler():
    # tinygrad_bp.onnx sits on top, beside the package's __init__ (it traces a call)
    tops = {Path("__init__.py"), Path("onnx.py")}
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "compiler" or relative in tops:
            continue
        modules = imported_modules(path)
        assert not any(m.startswith("tinygrad_bp.compiler") for m in modules), path

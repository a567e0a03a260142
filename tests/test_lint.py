"""The code passes the project's ruff configuration (pyproject.toml [tool.ruff]): CI runs this."""

import subprocess
import sys

from tests.conftest import REPO


def test_ruff_finds_nothing():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "src", "tests", "bench"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_function_over_50_lines_and_no_node_module_over_250():
    """Small functions and node modules one can read at once (docs/architecture.md): logic that is not a
    node goes to a plain module of its layer."""
    import ast  # noqa: PLC0415

    package = REPO / "src" / "sewer_segmentation"
    long_functions = [
        f"{path.relative_to(package)}:{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path in package.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > 50
    ]
    long_nodes = [f"{p.relative_to(package)} ({n} lines)" for p in package.glob("pipelines/*/nodes.py") if (n := len(p.read_text().splitlines())) > 250]
    assert not long_functions and not long_nodes, long_functions + long_nodes

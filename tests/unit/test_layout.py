"""The dependency arrows of docs/DESIGN.md: protocol imports nothing of the node, the product nothing of the devnet."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imported_packages(package: str) -> dict[str, set[str]]:
    """Module path -> the top-level packages it imports (also inside functions)."""
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"), [("protocol", {"node", "bootstrap", "devnet"}), ("node", {"devnet"}), ("bootstrap", {"devnet"})]
)
def test_imports_point_one_way(package, forbidden):
    offenders = {path: names & forbidden for path, names in imported_packages(package).items() if names & forbidden}
    assert not offenders


@pytest.mark.parametrize("package", ["node", "protocol", "bootstrap", "devnet"])
def test_no_module_is_over_300_lines(package):
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / package).rglob("*.py") if (n := len(p.read_text().splitlines())) > 300}
    assert not long


def test_no_class_of_the_product_has_more_than_12_methods():
    crowded = {}
    for package in ("node", "protocol", "bootstrap"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ClassDef):
                    methods = [x for x in node.body if isinstance(x, (ast.FunctionDef, ast.AsyncFunctionDef))]
                    if len(methods) > 12:
                        crowded[f"{path.relative_to(ROOT)}:{node.name}"] = len(methods)
    assert not crowded

"""Where each kind of code lives, and what it may import: the dependency runs one way.

- ``ml_code/`` goes into the images: it imports only itself (and its runtime libraries).
- ``pipelines/`` is what CI runs (the SageMaker Pipeline's definition and runner): it may read
  the config model (``stacks.config``), never the CDK app, and of the ML code only
  ``ml_code.lineage``, which holds the source hash (the image tag) and what "the same model"
  means; that module imports the standard library alone, so CI's environment can run it.
- ``stacks/`` is the CDK app: it never imports the ML code or the pipeline code.
- ``lambdas/<function>/`` is deployed on its own: it imports only itself.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = {"ml_code", "pipelines", "stacks", "lambdas", "tools", "tests", "app", "bench"}


def _imports(path: Path) -> set[str]:
    """Dotted module names a file imports (absolute imports only; relative ones stay inside)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def _violations(folder: str, allowed: set[str], forbidden_libraries: set[str] = frozenset()) -> list[str]:
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for name in sorted(_imports(path)):
            top = name.split(".")[0]
            if top in forbidden_libraries or (
                top in PROJECT and not any(name == a or name.startswith(a + ".") for a in allowed)
            ):
                found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


@pytest.mark.parametrize(
    ("folder", "allowed", "libraries"),
    [
        ("ml_code", {"ml_code"}, {"aws_cdk", "constructs", "cdk_nag", "sagemaker", "boto3", "pydantic", "yaml"}),
        ("pipelines", {"pipelines", "stacks.config", "ml_code.lineage"}, {"aws_cdk", "constructs", "cdk_nag"}),
        ("stacks", {"stacks"}, {"sagemaker"}),
    ],
)
def test_each_kind_of_code_imports_only_what_it_may(folder: str, allowed: set[str], libraries: set[str]) -> None:
    assert _violations(folder, allowed, libraries) == []


def test_the_ml_code_that_ci_imports_needs_only_the_standard_library() -> None:
    imported = _imports(ROOT / "ml_code" / "lineage.py")
    outside = sorted(name for name in imported if name.split(".")[0] not in sys.stdlib_module_names)
    assert outside == []


def test_each_lambda_imports_only_itself() -> None:
    for function in sorted(p for p in (ROOT / "lambdas").iterdir() if (p / "handler.py").is_file()):
        found = []
        for path in sorted(function.rglob("*.py")):
            found += [
                f"{path.relative_to(ROOT)} imports {name}"
                for name in _imports(path)
                if name.split(".")[0] in PROJECT
                and not name.startswith(f"lambdas.{function.name}")
                and name.split(".")[0] != function.name
            ]
        assert found == [], function.name


def test_the_rule_catches_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("from stacks.config import load_config\nimport aws_cdk\n")
    assert _imports(sample) == {"stacks.config", "aws_cdk"}

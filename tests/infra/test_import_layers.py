"""The import layers: cdk_app.py above app/ and pipeline/; app/ never imports pipeline/ (nor the entry
point); pipeline/ imports app/ only through its public API (app/__init__.py); functions/ (the Lambda
code) imports neither."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator

import pytest

import app
from tests import REPO_ROOT


def imported_modules(package: str) -> Iterator[tuple[str, str]]:
    """(file, imported module) for every import statement in the package, relative ones resolved."""
    for path in sorted((REPO_ROOT / package).rglob("*.py")):
        module = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield str(path.relative_to(REPO_ROOT)), alias.name
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = module.rsplit(".", node.level)[0]
                    base = f"{parent}.{base}" if base else parent
                yield str(path.relative_to(REPO_ROOT)), base


def top(module: str) -> str:
    return module.split(".", 1)[0]


def test_app_never_imports_the_pipeline_or_the_entry_point() -> None:
    offending = [(f, m) for f, m in imported_modules("app") if top(m) in {"pipeline", "cdk_app"}]
    assert offending == []


def test_pipeline_imports_app_only_through_its_public_api() -> None:
    offending = [(f, m) for f, m in imported_modules("pipeline") if top(m) == "app" and m != "app"]
    assert offending == []
    assert not [(f, m) for f, m in imported_modules("pipeline") if top(m) == "cdk_app"]


@pytest.mark.parametrize("package", ["functions"])
def test_the_lambda_code_imports_no_infrastructure(package: str) -> None:
    offending = [
        (f, m) for f, m in imported_modules(package) if top(m) in {"app", "pipeline", "cdk_app", "aws_cdk"}
    ]
    assert offending == []


def test_the_public_api_exports_what_it_declares() -> None:
    assert all(hasattr(app, name) for name in app.__all__)


def test_the_entry_point_named_in_cdk_json_sits_above_both_packages() -> None:
    command = json.loads((REPO_ROOT / "cdk.json").read_text())["app"]
    assert command == "python cdk_app.py"
    entry = REPO_ROOT / "cdk_app.py"
    imports = {
        top(m)
        for m in (
            node.module for node in ast.walk(ast.parse(entry.read_text())) if isinstance(node, ast.ImportFrom)
        )
        if m
    }
    assert {"app", "pipeline"} <= imports

"""Import boundaries between the source packages, read from the code's AST (imports inside
functions and under TYPE_CHECKING count too: a boundary holds for every line)."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Import:
    path: Path
    line: int
    module: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} imports {self.module}"


def imports_in(folder: Path) -> list[Import]:
    """Every module imported by the .py files under folder, relative imports resolved."""
    found: list[Import] = []
    for path in sorted(folder.rglob("*.py")):
        package = _package_of(path, folder)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                found.extend(Import(path, node.lineno, alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(node, package)
                found.append(Import(path, node.lineno, base))
                # `from lab import harness` imports lab.harness.
                found.extend(Import(path, node.lineno, f"{base}.{alias.name}") for alias in node.names)
    return found


def violations(folder: Path, forbidden: Iterable[str], *, allowed: Iterable[str] = ()) -> list[str]:
    """Imports under folder of a forbidden package (or its modules), unless in an allowed one."""
    forbidden, allowed = tuple(forbidden), tuple(allowed)
    return [
        str(item)
        for item in imports_in(folder)
        if _within(item.module, forbidden) and not _within(item.module, allowed)
    ]


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == package or module.startswith(f"{package}.") for package in packages)


def _package_of(path: Path, folder: Path) -> list[str]:
    """The dotted package of a file, counting folder itself as a top-level package."""
    relative = path.relative_to(folder.parent).with_suffix("").parts
    return list(relative if path.name == "__init__.py" else relative[:-1])


def _resolve(node: ast.ImportFrom, package: list[str]) -> str:
    if not node.level:
        return node.module or ""
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])

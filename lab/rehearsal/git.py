"""The git commands the rehearsal runs (the `lab` remote, the commits it serves), in one place."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path


class GitError(RuntimeError):
    """A git command failed; the message holds its stderr."""


def git(
    *args: str,
    cwd: Path | None = None,
    git_dir: Path | None = None,
    check: bool = True,
    env: Mapping[str, str] | None = None,
) -> str:
    """`git [--git-dir DIR] ARGS` and its stdout (stripped); `env` is added to this process's."""
    command = ["git", *(["--git-dir", str(git_dir)] if git_dir else []), *args]
    result = subprocess.run(  # noqa: S603 - git, fixed verbs
        command, cwd=cwd, capture_output=True, text=True, check=False, env={**os.environ, **(env or {})}
    )
    if check and result.returncode != 0:
        raise GitError(f"{' '.join(command)}: {result.stderr.strip()}")
    return result.stdout.strip()


def export_tree(
    commit: str, destination: Path, *, cwd: Path | None = None, git_dir: Path | None = None
) -> None:
    """The files of `commit`, without .git (what a source action's artifact holds)."""
    command = ["git", *(["--git-dir", str(git_dir)] if git_dir else []), "archive", "--format=tar", commit]
    archive = subprocess.run(command, cwd=cwd, capture_output=True, check=False)  # noqa: S603 - git, fixed verbs
    if archive.returncode != 0:
        raise GitError(f"git archive {commit}: {archive.stderr.decode(errors='replace').strip()}")
    destination.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(destination)], input=archive.stdout, check=True)  # noqa: S603, S607 - tar from PATH

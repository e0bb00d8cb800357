"""The one code asset of every function: the functions package plus the third-party packages that
the Lambda runtime does not provide (requirements-bundled.txt), built by CDK local bundling.

No Docker: the bundler copies functions/ and runs `pip install --target` for the Lambda runtime's
platform, as the AWS Lambda Developer Guide describes for .zip deployment packages with
dependencies ("Working with .zip file archives for Python Lambda functions": `pip install
--platform manylinux2014_<arch> --only-binary=:all: --implementation cp --python-version 3.x
--target`). The asset is hashed by its output, so its hash changes only when its content does.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, ILocalBundling
from aws_cdk import aws_lambda as lambda_

REPO_ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS_PACKAGE = "functions"
FUNCTIONS_DIR = REPO_ROOT / FUNCTIONS_PACKAGE
BUNDLED_REQUIREMENTS = REPO_ROOT / "requirements-bundled.txt"
RUNTIME = lambda_.Runtime.PYTHON_3_13
# Never part of the asset: caches that a test or editor run leaves next to the sources.
_SKIPPED = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".pytest_cache")
# Wheel platform tags of the Lambda architectures (manylinux2014 = glibc 2.17, which every Lambda
# Python runtime satisfies).
_WHEEL_PLATFORM = {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}
_DOCKER_PLATFORM = {"arm64": "linux/arm64", "x86_64": "linux/amd64"}


class BundlingError(RuntimeError):
    """The third-party packages of the functions could not be installed into the asset."""


def pip_install_command(target: Path, architecture: str) -> list[str]:
    """`pip install` of the pinned bundled requirements, as wheels for the Lambda runtime only (no
    dependencies resolved: every package the functions need is pinned in the file itself)."""
    python_version = RUNTIME.name.removeprefix("python")  # python3.13 -> 3.13
    return [
        sys.executable, "-m", "pip", "install",
        "--quiet", "--disable-pip-version-check", "--no-compile", "--no-deps",
        "--only-binary=:all:", "--implementation", "cp", "--python-version", python_version,
        "--platform", _WHEEL_PLATFORM[architecture],
        "--target", str(target),
        "--requirement", str(BUNDLED_REQUIREMENTS),
    ]  # fmt: skip


@cache
def _third_party_packages(architecture: str) -> Path:
    """The bundled requirements installed once per synthesis process and architecture."""
    target = Path(tempfile.mkdtemp(prefix=f"functions-packages-{architecture}-"))
    result = subprocess.run(  # noqa: S603 - this interpreter's pip with arguments built above
        pip_install_command(target, architecture), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise BundlingError(
            f"pip could not install {BUNDLED_REQUIREMENTS.name} for the Lambda runtime "
            f"({RUNTIME.name}, {architecture}):\n{result.stdout}{result.stderr}"
        )
    return target


@jsii.implements(ILocalBundling)
class _LocalBundling:
    """Copies the functions package and the installed packages into CDK's bundling output directory."""

    def __init__(self, architecture: str, source: Path) -> None:
        self._architecture = architecture
        self._source = source

    # jsii calls this with the bundling options as one positional struct (its stubs declare them
    # as keywords); the copy needs none of them.
    def try_bundle(self, output_dir: str, *_options: Any, **_keywords: Any) -> bool:
        output = Path(output_dir)
        shutil.copytree(self._source, output / FUNCTIONS_PACKAGE, ignore=_SKIPPED)
        shutil.copytree(_third_party_packages(self._architecture), output, dirs_exist_ok=True)
        return True


@cache
def _bundler(architecture: str, source: Path) -> _LocalBundling:
    # One instance per architecture keeps CDK's staging cache key stable within a synthesis, so the
    # asset is bundled once per architecture, whatever the number of functions and stages.
    return _LocalBundling(architecture, source)


def functions_code(architecture: str, *, source: Path = FUNCTIONS_DIR) -> lambda_.Code:
    """The code asset shared by every function of a stage: `functions.<fn>.handler` imports as in the
    tests, and the bundled packages import by their own names. `source`: the functions package."""
    return lambda_.Code.from_asset(
        str(source),
        asset_hash_type=AssetHashType.OUTPUT,
        bundling=BundlingOptions(
            # Only used if local bundling declined, which it never does; the image Lambda's own
            # tooling (SAM) builds this runtime with, for the record.
            image=RUNTIME.bundling_image,
            platform=_DOCKER_PLATFORM[architecture],
            local=_bundler(architecture, source),
        ),
    )

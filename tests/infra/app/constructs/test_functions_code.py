"""The functions code asset: the functions package plus the bundled third-party packages, built by
CDK local bundling (no Docker), hashed by its content."""

from __future__ import annotations

import shutil
from pathlib import Path

from aws_cdk import aws_lambda as lambda_

from app.constructs.functions_code import (
    BUNDLED_REQUIREMENTS,
    FUNCTIONS_DIR,
    functions_code,
    pip_install_command,
)
from tests.infra.bare_stack import BareStack


def asset_key(bare: BareStack, source: Path = FUNCTIONS_DIR) -> str:
    fn = lambda_.Function(
        bare.stack,
        "Fn",
        runtime=lambda_.Runtime.PYTHON_3_13,
        handler="functions.reset.handler.lambda_handler",
        code=functions_code("arm64", source=source),
    )
    return str(bare.props(fn)["Code"]["S3Key"])


def test_pip_installs_only_pinned_wheels_for_the_lambda_runtime_and_architecture(tmp_path: Path) -> None:
    """AWS Lambda Developer Guide, "Working with .zip file archives for Python Lambda functions":
    dependencies for another platform are installed as wheels for the runtime's platform."""
    for architecture, platform in (("arm64", "manylinux2014_aarch64"), ("x86_64", "manylinux2014_x86_64")):
        command = pip_install_command(tmp_path, architecture)
        assert command[command.index("--platform") + 1] == platform
        assert command[command.index("--python-version") + 1] == "3.13"
        assert command[command.index("--target") + 1] == str(tmp_path)
        assert command[command.index("--requirement") + 1] == str(BUNDLED_REQUIREMENTS)
        assert {"--only-binary=:all:", "--no-deps", "--no-compile"} <= set(command)


def test_the_asset_holds_the_functions_package_and_the_bundled_packages(bare: BareStack) -> None:
    key = asset_key(bare)
    asset = Path(bare.app.outdir) / f"asset.{key.removesuffix('.zip')}"
    top = {p.name for p in asset.iterdir()}
    assert {"functions", "rfc8785", "rfc8785-0.1.4.dist-info"} == top
    assert (asset / "rfc8785-0.1.4.dist-info" / "LICENSE").is_file()
    assert not list(asset.rglob("*.pyc"))


def test_the_asset_hash_follows_the_content_only(tmp_path: Path) -> None:
    copy = tmp_path / "functions"
    shutil.copytree(FUNCTIONS_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    first = asset_key(BareStack(tmp_path / "one"), copy)
    # Same content in another synthesis (another App, another output folder): the same asset.
    assert asset_key(BareStack(tmp_path / "two"), copy) == first
    # A cache left next to the sources changes nothing.
    (copy / "__pycache__").mkdir()
    (copy / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    assert asset_key(BareStack(tmp_path / "three"), copy) == first
    # One byte more in the package: another asset.
    (copy / "__init__.py").write_text((copy / "__init__.py").read_text() + "\n")
    assert asset_key(BareStack(tmp_path / "four"), copy) != first

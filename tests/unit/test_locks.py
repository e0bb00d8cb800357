"""The lock files agree with the direct pins: a requirement changed without `make lock` fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lab.harness.paths import ENGINE_LOCK, RUNTIME_REQUIREMENTS
from lab.localcloud.engine import engine_requirements
from tests import REPO_ROOT

_PIN = re.compile(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?==(\S+)$")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _direct_pins(path: Path) -> dict[str, str]:
    """name -> version of every pin in a requirements file and the files it includes with -r."""
    pins: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-r "):
            pins.update(_direct_pins(path.parent / line[3:].strip()))
            continue
        match = _PIN.match(line)
        assert match, f"{path.name}: {line!r} is not pinned with =="
        pins[_canonical(match.group(1))] = match.group(3)
    return pins


def _lock(path: Path) -> dict[str, str]:
    locked: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _PIN.match(line)
        assert match, f"{path.name}: {line!r} is not an exact pin"
        locked[_canonical(match.group(1))] = match.group(3)
    return locked


@pytest.mark.parametrize(
    ("inputs", "lock"),
    [
        pytest.param(
            lambda: _direct_pins(REPO_ROOT / "requirements-dev.txt"),
            REPO_ROOT / "requirements.lock",
            id="dev",
        ),
        pytest.param(
            lambda: {
                _canonical(m.group(1)): m.group(3)
                for line in engine_requirements(RUNTIME_REQUIREMENTS)
                if (m := _PIN.match(line))
            },
            ENGINE_LOCK,
            id="engine",
        ),
    ],
)
def test_every_direct_pin_is_locked_at_its_version(inputs, lock: Path) -> None:
    locked = _lock(lock)
    drift = {
        name: (version, locked.get(name)) for name, version in inputs().items() if locked.get(name) != version
    }
    assert not drift, f"{lock.name} is stale, run `make lock`: {drift} (pinned, locked)"


def test_the_lock_pins_more_than_the_direct_requirements() -> None:
    """Transitive packages (jsii, botocore, ...) are in the lock too, not only the direct pins."""
    locked = _lock(REPO_ROOT / "requirements.lock")
    for transitive in ("jsii", "botocore", "pydantic-core", "s3transfer"):
        assert transitive in locked

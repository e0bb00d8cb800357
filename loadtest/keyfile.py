"""The keys file shared by the Locust users (writers) and the gate (reader): one JSON line per key.

{"kind": "unique" | "pool", "idempotency_key": ...}: one line per accepted unique payload, one per
duplicate-pool payload the first time a process sees it accepted. `lab verify --keys-file` reads it too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import IO

KIND_UNIQUE = "unique"
KIND_POOL = "pool"
UNIQUE_REQUEST_NAME = "POST /events [unique]"
DUPLICATE_REQUEST_NAME = "POST /events [duplicate]"


class KeyFileError(RuntimeError):
    """The keys file is missing or holds a line that is not {kind, idempotency_key}."""


@dataclass(frozen=True)
class RecordedKeys:
    unique: list[str]
    pool: set[str]

    @property
    def expected(self) -> set[str]:
        """Every distinct payload accepted: each must end as exactly one SUCCEEDED record."""
        return set(self.unique) | self.pool


class KeyLog:
    """Appends one line per accepted payload; line-buffered O_APPEND writes stay whole across processes."""

    def __init__(self) -> None:
        self._file: IO[str] | None = None

    def open(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", buffering=1, encoding="utf-8")

    def record(self, kind: str, key: str) -> None:
        if self._file is None:
            raise KeyFileError("the keys file is not open (the Locust init hook did not run)")
        self._file.write(json.dumps({"kind": kind, "idempotency_key": key}) + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_keys(keys_file: Path) -> RecordedKeys:
    if not keys_file.exists():
        raise KeyFileError(f"no keys file at {keys_file} (the Locust users write it)")
    unique: list[str] = []
    pool: set[str] = set()
    for number, line in enumerate(keys_file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            kind, key = entry["kind"], entry["idempotency_key"]
        except (ValueError, KeyError, TypeError) as error:
            raise KeyFileError(
                f"{keys_file}:{number}: not a {{kind, idempotency_key}} JSON line ({error})"
            ) from None
        if kind == KIND_UNIQUE:
            unique.append(key)
        elif kind == KIND_POOL:
            pool.add(key)
        else:
            raise KeyFileError(f"{keys_file}:{number}: unknown kind {kind!r}")
    return RecordedKeys(unique=unique, pool=pool)

"""The test tiers, mirroring the source tree: unit/ (moto, no network), infra/ (synthesized
templates), local/ (end to end on the local cloud)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
"""The repository's top folder (cdk.json, ops/, pipeline/), for tests that read files of it."""

"""The embedded AWS (ministack) of the local cloud: its virtualenv, process, health and clients.

Usable for any stage: the functions' own packages (what the engine's Lambda workers import) come
from the caller as a requirements file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import boto3

from lab.localcloud.engine_patches.delivery_stats import SEED_ENV, SHARE_ENV, STATS_ENV, parse_share
from lab.localcloud.engine_patches.limits import (
    ASYNC_CONCURRENCY_ENV,
    DEFAULT_ASYNC_CONCURRENCY,
    DEFAULT_SWITCH_INTERVAL_MS,
    SWITCH_INTERVAL_ENV,
)
from lab.localcloud.engine_patches.pipeline_store import STORE_ENV as PIPELINE_STORE_ENV
from lab.localcloud.state import CloudDir

REPO_ROOT = Path(__file__).resolve().parents[2]
ENGINE_REQUIREMENTS = Path(__file__).with_name("requirements-engine.txt")
# Run by the engine's own interpreter as a file (not as a module of lab/): the engine venv has no
# lab package, and the functions it runs must import only their deployed asset.
ENGINE_LAUNCHER = Path(__file__).with_name("engine_main.py")
REGION = "us-east-1"
# The account the engine's test credentials act in.
ACCOUNT_ID = "000000000000"

HEALTH_PATH = "/_ministack/health"
STARTUP_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
# The at-least-once mode (lab.localcloud.engine_patches.at_least_once): the share of SQS receives,
# EventBridge rule deliveries and SNS deliveries the engine duplicates. On by default, so that every
# local test, drill and load test meets the duplicates AWS may deliver; LAB_DUPLICATE_SHARE=0 turns
# it off, LAB_DUPLICATE_SEED makes the choice reproducible.
DUPLICATE_SHARE_ENV = "LAB_DUPLICATE_SHARE"
DUPLICATE_SEED_ENV = "LAB_DUPLICATE_SEED"
DEFAULT_DUPLICATE_SHARE = 0.05
# Packages of the functions' requirements that the engine replaces with its own pins (see
# requirements-engine.txt: ministack pins botocore exactly).
_ENGINE_OWNED_PACKAGES = ("boto3", "botocore")


class EngineError(RuntimeError):
    """The engine cannot be installed, started or reached."""


@dataclass(frozen=True)
class EngineInfo:
    """A running engine, as recorded in the state dir's engine.json."""

    pid: int
    port: int
    auth: bool
    started_at: float
    # Engines recorded before the at-least-once mode existed read as "off".
    duplicate_share: float = 0.0

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def engine_venv_dir() -> Path:
    """The engine's virtualenv: shared by every state dir (an install, not state)."""
    return Path(os.environ.get("LAB_ENGINE_VENV") or REPO_ROOT / ".venv-engine")


def engine_requirements(function_requirements: Path) -> list[str]:
    """The pinned requirement lines of the engine venv: its own file plus the functions' packages."""
    lines = _requirement_lines(ENGINE_REQUIREMENTS)
    for line in _requirement_lines(function_requirements):
        name = line.split("==", 1)[0].split("[", 1)[0].strip().lower()
        if name not in _ENGINE_OWNED_PACKAGES:
            lines.append(line)
    return lines


def _requirement_lines(path: Path) -> list[str]:
    return [
        stripped
        for raw in path.read_text().splitlines()
        if (stripped := raw.split("#", 1)[0].strip()) and not stripped.startswith("-")
    ]


def engine_python(venv: Path | None = None) -> Path:
    return (venv or engine_venv_dir()) / "bin" / "python"


def ensure_engine_venv(
    function_requirements: Path, *, constraints: Path | None = None, venv: Path | None = None, log=print
) -> Path:
    """Create or update the engine virtualenv; a no-op when its pinned set did not change.

    constraints: a lock file (pip constraints) pinning every transitive package of that set, so
    nothing floats between two installs; its content is part of the set.
    """
    venv = venv or engine_venv_dir()
    requirements = engine_requirements(function_requirements)
    constraint_args = ["-c", str(constraints)] if constraints else []
    pinned_set = [*requirements, constraints.read_text() if constraints else ""]
    digest = hashlib.sha256("\n".join(pinned_set).encode()).hexdigest()
    stamp = venv / ".lab-installed"
    if stamp.exists() and stamp.read_text().strip() == digest and engine_python(venv).exists():
        return venv
    log(f"installing the engine into {venv} ({', '.join(requirements)})")
    if not engine_python(venv).exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)  # noqa: S603 - fixed argv
    subprocess.run(  # noqa: S603 - pinned requirement lines from the repo
        [
            str(engine_python(venv)),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            *constraint_args,
            *requirements,
        ],
        check=True,
    )
    stamp.write_text(digest + "\n")
    return venv


def free_port() -> int:
    """A port nothing listens on right now (the engine binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def is_healthy(endpoint_url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(endpoint_url + HEALTH_PATH, timeout=timeout) as response:  # noqa: S310 - loopback URL built here
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


# The engine's test secret: any secret is accepted, the access key id selects the account.
TEST_SECRET = "test"  # noqa: S105 - the engine's documented test credential, not a secret


def account_key(account: str | None) -> str:
    """The access key id that acts as the root of `account` on the engine: a 12-digit key id selects
    that account; the engine's own test key ("test") acts in ACCOUNT_ID."""
    return account if account else "test"


def aws_env(endpoint_url: str, region: str = REGION, *, account: str | None = None) -> dict[str, str]:
    """What a process needs so that boto3, the AWS CLI and the CDK CLI talk to the engine, as the
    root of `account` (default: the engine's own account, ACCOUNT_ID)."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": account_key(account),
        "AWS_SECRET_ACCESS_KEY": TEST_SECRET,
    }


class EngineClients:
    """boto3 clients bound to the engine as the root of one account (default: the engine's own,
    with its test credentials), created once each."""

    def __init__(self, info: EngineInfo, account: str | None = None) -> None:
        env = aws_env(info.endpoint_url, account=account)
        self._session = boto3.session.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=REGION,
        )
        self._endpoint = info.endpoint_url
        self._clients: dict[str, Any] = {}

    def __call__(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._session.client(service, endpoint_url=self._endpoint)
        return self._clients[service]


def auth_default() -> bool:
    """IAM enforcement unless LAB_AUTH is 0/false/no (on by default)."""
    return os.environ.get("LAB_AUTH", "true").lower() not in ("0", "false", "no")


def duplicate_share_default() -> float:
    """LAB_DUPLICATE_SHARE (0..1), else DEFAULT_DUPLICATE_SHARE; a value out of range is refused."""
    raw = os.environ.get(DUPLICATE_SHARE_ENV)
    return DEFAULT_DUPLICATE_SHARE if raw is None else parse_share(raw)


def read_engine(state: CloudDir) -> EngineInfo | None:
    """The engine recorded in the state dir, if its process is still alive."""
    if not state.engine_json.exists():
        return None
    info = EngineInfo(**json.loads(state.engine_json.read_text()))
    return info if process_runs(info.pid, ENGINE_LAUNCHER.name) else None


def start_engine(
    state: CloudDir,
    *,
    function_requirements: Path,
    constraints: Path | None = None,
    port: int | None = None,
    auth: bool = True,
    duplicate_share: float = 0.0,
) -> EngineInfo:
    """Start the engine on 127.0.0.1 (a free port unless given) and wait until it answers.

    function_requirements: the pinned packages the deployed functions import (installed into the
    engine's virtualenv, which its Lambda workers run on); constraints: the lock of that set.
    duplicate_share: the at-least-once mode's share of duplicated deliveries (0: off); what it
    duplicated is recorded in state.duplicates_json. A running engine is reused as it was started.
    """
    if not 0.0 <= duplicate_share <= 1.0:
        raise EngineError(f"the duplicate share must be within 0..1, got {duplicate_share}")
    state.ensure()
    running = read_engine(state)
    if running is not None:
        if is_healthy(running.endpoint_url):
            return running
        stop_engine(state)
    venv = ensure_engine_venv(function_requirements, constraints=constraints)
    port = port or free_port()
    if state.engine_tmp.exists():
        shutil.rmtree(state.engine_tmp)
    state.engine_tmp.mkdir()
    # The engine keeps its state in memory: pipelines of an engine that stopped are gone too.
    shutil.rmtree(state.codepipeline_dir, ignore_errors=True)
    env = {
        **_inherited_env(),
        "BIND_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "MINISTACK_HOST": "localhost",
        "MINISTACK_REGION": REGION,
        "LAMBDA_EXECUTOR": "local",
        # IAM enforcement: each function calls AWS with its execution role's credentials, so a
        # grant missing from the template fails here as it would on AWS.
        "AUTH": "true" if auth else "false",
        # Listeners the lab does not use stay closed (only the gateway port is bound).
        "SFTP_ENABLED": "0",
        "IOT_MTLS_ENABLED": "0",
        "TMPDIR": str(state.engine_tmp),
        "LOG_LEVEL": os.environ.get("LAB_ENGINE_LOG_LEVEL", "WARNING"),
        # Settings of the engine's patches (engine_patches/limits.py; LAB_* is not inherited).
        SWITCH_INTERVAL_ENV: os.environ.get(SWITCH_INTERVAL_ENV, DEFAULT_SWITCH_INTERVAL_MS),
        ASYNC_CONCURRENCY_ENV: os.environ.get(ASYNC_CONCURRENCY_ENV, str(DEFAULT_ASYNC_CONCURRENCY)),
        "PYTHONDONTWRITEBYTECODE": "1",
        SHARE_ENV: str(duplicate_share),
        STATS_ENV: str(state.duplicates_json),
        # Where AWS::CodePipeline::Pipeline resources are kept (engine_patches/codepipeline.py).
        PIPELINE_STORE_ENV: str(state.codepipeline_dir),
    }
    if os.environ.get(DUPLICATE_SEED_ENV):
        env[SEED_ENV] = os.environ[DUPLICATE_SEED_ENV]
    state.duplicates_json.unlink(missing_ok=True)
    with state.engine_log.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - the engine venv interpreter and launcher
            [str(engine_python(venv)), str(ENGINE_LAUNCHER)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=state.engine_tmp,
            # Its own process group: `down` signals the engine and its Lambda workers together,
            # and a Ctrl-C in the developer's shell does not reach it.
            start_new_session=True,
        )
    info = EngineInfo(
        pid=process.pid, port=port, auth=auth, started_at=time.time(), duplicate_share=duplicate_share
    )
    state.engine_json.write_text(json.dumps(asdict(info)) + "\n")
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EngineError(f"the engine exited with {process.returncode}; see {state.engine_log}")
        if is_healthy(info.endpoint_url, timeout=0.5):
            return info
        time.sleep(0.1)
    stop_engine(state)
    raise EngineError(
        f"the engine did not answer within {STARTUP_TIMEOUT_SECONDS:.0f} s; see {state.engine_log}"
    )


def stop_engine(state: CloudDir) -> bool:
    """Stop the recorded engine and its Lambda workers; True when one was running."""
    if not state.engine_json.exists():
        return False
    info = EngineInfo(**json.loads(state.engine_json.read_text()))
    was_running = process_runs(info.pid, ENGINE_LAUNCHER.name)
    if was_running:
        terminate_process_group(info.pid, STOP_TIMEOUT_SECONDS)
    state.engine_json.unlink()
    if state.engine_tmp.exists():
        shutil.rmtree(state.engine_tmp, ignore_errors=True)
    return was_running


# After SIGKILL the kernel ends the processes at once; this only waits for that to show.
KILL_WAIT_SECONDS = 2.0


def terminate_process_group(pid: int, timeout: float) -> None:
    """SIGTERM the process group led by pid (started with start_new_session), SIGKILL if it lingers."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _group_alive(pid):
            return
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + KILL_WAIT_SECONDS
    while _group_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def process_runs(pid: int, marker: str) -> bool:
    """Is pid alive and still the process we started (its command line holds marker)? A pid
    recorded by an earlier session may since belong to an unrelated process: never signal that."""
    if not _alive(pid):
        return False
    try:
        command = (
            (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        # No procfs (macOS): ask ps.
        result = subprocess.run(  # noqa: S603 - fixed argv
            ["ps", "-p", str(pid), "-o", "command="],  # noqa: S607 - ps from PATH
            capture_output=True,
            text=True,
            check=False,
        )
        command = result.stdout
    return marker in command


def _alive(pid: int) -> bool:
    try:
        reaped, _status = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    except ChildProcessError:
        pass  # not our child (started by another `lab` command): fall back to a signal probe
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _group_alive(pgid: int) -> bool:
    with contextlib.suppress(ChildProcessError):  # reap the leader if it is our child
        os.waitpid(pgid, os.WNOHANG)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    if not Path("/proc").is_dir():
        return True  # no procfs (macOS): trust killpg until the group is gone
    # killpg(0) also succeeds for zombies of the group: probe the members' states.
    return any(not _is_zombie(pid) for pid in _group_members(pgid))


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                members.append(int(entry.name))
    return members


def _is_zombie(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _inherited_env() -> dict[str, str]:
    """The caller's environment minus what would leak into the engine's Lambda workers (a
    PYTHONPATH or virtualenv of the developer's shell, their real AWS credentials)."""
    dropped = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    return {
        key: value
        for key, value in os.environ.items()
        if key not in dropped and not key.startswith(("AWS_", "LAB_", "CDK_", "JSII_"))
    }

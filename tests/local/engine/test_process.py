"""The engine process: it listens on 127.0.0.1 only, and `down` leaves no process behind."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import boto3
import pytest

from lab.harness import lifecycle
from lab.harness.paths import StateDir
from lab.localcloud import engine

pytestmark = pytest.mark.skipif(
    not Path("/proc/net/tcp").exists(), reason="reads listening sockets from procfs"
)

TCP_LISTEN = "0A"


def listening_addresses(pids: list[int]) -> set[str]:
    """host:port (hex, as procfs prints them) of the TCP sockets these processes listen on."""
    inodes = set()
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        for fd in fd_dir.iterdir() if fd_dir.exists() else []:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == TCP_LISTEN and fields[9] in inodes:
                addresses.add(fields[1])
    return addresses


def group_members(pgid: int) -> list[int]:
    return engine._group_members(pgid)


def test_engine_listens_on_loopback_only(local_engine):
    addresses = listening_addresses(group_members(local_engine.info.pid))

    assert addresses, "the engine should listen on its gateway port"
    loopback = f"0100007F:{local_engine.info.port:04X}"
    assert addresses == {loopback}, f"unexpected listeners: {addresses}"


def test_down_stops_the_engine_and_its_lambda_workers(tmp_path):
    state = StateDir(tmp_path / "lab")
    info = lifecycle.start(state, auth=False)
    env = engine.aws_env(info.endpoint_url)
    session = boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_REGION"],
    )
    lam = session.client("lambda", endpoint_url=info.endpoint_url)
    role = session.client("iam", endpoint_url=info.endpoint_url).create_role(
        RoleName="r", AssumeRolePolicyDocument="{}"
    )["Role"]["Arn"]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("handler.py", "def lambda_handler(event, context):\n    return 1\n")
    lam.create_function(
        FunctionName="f", Runtime="python3.11", Role=role, Handler="handler.lambda_handler",
        Code={"ZipFile": archive.getvalue()},
    )  # fmt: skip
    assert lam.invoke(FunctionName="f")["StatusCode"] == 200
    assert len(group_members(info.pid)) > 1, "the invocation should have started a worker process"

    stopped = lifecycle.down(state)

    assert stopped == {"dashboard": False, "agent": False, "other agents": False, "engine": True}
    # A zombie is a process that has ended and waits for its parent to collect its status (here
    # init, after the engine died): nothing of it runs. Every live member must be gone.
    assert [pid for pid in group_members(info.pid) if not engine._is_zombie(pid)] == []
    assert not engine.is_healthy(info.endpoint_url)
    assert not state.engine_tmp.exists()

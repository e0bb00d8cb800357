"""The harness: deploys this project's stage into the local cloud (lab.localcloud) and records it
for the stage client: engine + bootstrap + deploy + outputs + agent (`up`), `down`, `status`, the
sample events and summary of `make lab`, and `make bench`.

`up`, `down` and `status` are what the `lab` CLI and the Makefile call (see lab.harness.lifecycle).
"""

from lab.harness.lifecycle import LabStatus, down, status, up

__all__ = ["LabStatus", "down", "status", "up"]

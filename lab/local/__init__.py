"""The local cloud: the real synthesized stage deployed into an embedded AWS on 127.0.0.1.

`up`, `down` and `status` are what the `lab` CLI and the Makefile call (see lab.local.lifecycle).
"""

from lab.local.lifecycle import LabStatus, down, status, up

__all__ = ["LabStatus", "down", "status", "up"]

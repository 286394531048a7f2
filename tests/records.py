"""One builder for wire ``Setup`` records in unit tests.

Every field of the record is listed here once, so a field added to the
protocol changes one place; each test file overrides what it is about.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hakurei.ops import Op
from hakurei.wire import Setup

DEFAULTS: dict[str, Any] = {
    "path": "/bin/true",
    "args": ["true"],
    "env": [],
    "dir": "/",
    "uid": 65536,
    "gid": 32768,
    "host_uid": 1000,
    "host_gid": 100,
    "hostname": "",
    "parent_perm": 0o755,
    "retain_session": False,
    "host_net": False,
    "privileged": False,
    "forward_cancel": False,
    "host_abstract": False,
    "adopt_wait_delay": 5.0,
    "bpf": None,
    "nrules": 0,
    "files": 0,
    "parent_pid": 1,
    "verbose": False,
}


def make_setup(ops: Iterable[Op] = (), **fields: Any) -> Setup:
    """A valid record: DEFAULTS with ``fields`` on top."""
    return Setup(list(ops), **{**DEFAULTS, **fields})

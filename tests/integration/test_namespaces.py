"""Every namespace the program is in, compared by identity with the caller's.

``readlink /proc/self/ns/<kind>`` names a namespace (``net:[4026531840]``):
equal text is the same namespace.  The ops here need no mqueue (no ``/dev``
op), so a missing IPC namespace shows as an equal ``ipc`` link, not only as
a failing mqueue mount.  The time namespace is not unshared (neither is it
by the Go original): ``time`` and ``time_for_children`` are the caller's.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import PY, base_ops, ok, run

#: Namespaces the container must not share with its caller.
PRIVATE = ("cgroup", "ipc", "mnt", "net", "pid", "pid_for_children", "user", "uts")
SHARED = ("time", "time_for_children")

LIST = (
    "import os\n"
    "for n in sorted(os.listdir('/proc/self/ns')):\n"
    "    print(n, os.readlink('/proc/self/ns/' + n))\n"
)


def callers() -> dict[str, str]:
    return {n: os.readlink(f"/proc/self/ns/{n}") for n in os.listdir("/proc/self/ns")}


def parse(out: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in out.splitlines())


def inside(host_net: bool, via: str) -> dict[str, str]:
    """The program's namespaces, started by ``run_sync`` or by ``hakurei exec``."""
    if via == "run_sync":
        ops = base_ops().proc("/proc")
        return parse(ok(run([PY, "-I", "-S", "-c", LIST], ops, host_net=host_net)))
    share = ["--share-net"] if host_net else []
    r = subprocess.run(
        [sys.executable, "-m", "hakurei", "exec", *share, "--ro-bind", "/usr", "/usr"]
        + [w for top in ("/bin", "/lib", "/lib64") for w in link_or_bind(top)]
        + ["--proc", "/proc", "--", PY, "-I", "-S", "-c", LIST],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    return parse(r.stdout)


def link_or_bind(top: str) -> list[str]:
    if os.path.islink(top):
        return ["--symlink", os.readlink(top), top]
    if os.path.isdir(top):
        return ["--ro-bind", top, top]
    return []


@pytest.mark.parametrize("via", ["run_sync", "cli"])
def test_every_namespace_but_time_is_new(via: str) -> None:
    mine, theirs = callers(), inside(False, via)
    assert set(theirs) == set(mine) == {*PRIVATE, *SHARED}
    for kind in PRIVATE:
        assert theirs[kind] != mine[kind], kind
    for kind in SHARED:
        assert theirs[kind] == mine[kind], kind
    assert theirs["pid_for_children"] == theirs["pid"]


@pytest.mark.parametrize("via", ["run_sync", "cli"])
def test_host_net_shares_only_the_network_namespace(via: str) -> None:
    mine, theirs = callers(), inside(True, via)
    assert theirs["net"] == mine["net"]
    for kind in PRIVATE:
        if kind != "net":
            assert theirs[kind] != mine[kind], kind
    for kind in SHARED:
        assert theirs[kind] == mine[kind], kind

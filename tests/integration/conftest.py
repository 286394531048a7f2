"""Integration tests start real containers on the real kernel.

They are meant to run as an ordinary user (the test command does that); the
helpers here keep each test about what it observes from inside.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from hakurei.errors import StartError
from hakurei.ops import Ops
from hakurei.ops._mountinfo import Entry, parse
from hakurei.profile import default_env, default_ops
from hakurei.results import Completed
from hakurei.sync import run_sync

#: Debian's interpreter, visible inside the default profile through /usr.
PY = "/usr/bin/python3"

#: A program (``python3 -c``) that counts each SIGINT as it comes (sigwaitinfo
#: merges none that arrive apart, where a shell's trap would), listens one more
#: second, says ``got-int-N-times`` and exits 7: one Ctrl-C must be one SIGINT.
COUNT_SIGINTS = """
import signal, sys
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
print("armed", flush=True)
signal.sigwaitinfo({signal.SIGINT})
n = 1
while signal.sigtimedwait({signal.SIGINT}, 1.0) is not None:
    n += 1
print(f"got-int-{n}-times", flush=True)
sys.exit(7)
"""


def hakurei(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    """``python -m hakurei ARGS`` as a user types it, text output captured, bounded."""
    return subprocess.run(
        [sys.executable, "-m", "hakurei", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        **kw,
    )


#: A root as bubblewrap users build it on the command line: the host read-only,
#: /proc and a private /tmp (``hakurei exec`` and ``hakurei bwrap`` options).
BASE = ("--ro-bind", "/", "/", "--proc", "/proc", "--tmpfs", "/tmp")


def exec_sh(*options: str, script: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    """``hakurei exec OPTIONS -- /bin/sh -c SCRIPT``."""
    return hakurei("exec", *options, "--", "/bin/sh", "-c", script, **kw)


def one_line_125(r: subprocess.CompletedProcess[str], needle: str) -> None:
    """Refused as bad input: exit 125 and one ``hakurei:`` line that says ``needle``."""
    assert r.returncode == 125, r
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("hakurei: "), r.stderr
    assert needle in r.stderr, r.stderr


def processes_with(marker: str, *, skip: bytes | None = None) -> list[int]:
    """Pids whose command line holds ``marker`` (and not ``skip``): a /proc scan.

    The tests put a unique marker in a container program's arguments, so a
    process found by it is one of theirs (left behind, or still running).
    """
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if marker.encode() in cmdline and (skip is None or skip not in cmdline):
            found.append(int(pid))
    return found


def read(path: str) -> str | None:
    """A /proc file's text, or None if the process is gone or not ours to read."""
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return None


def children(pid: int) -> list[int]:
    """The live and zombie children of ``pid``, from every thread's children list."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    kids: list[int] = []
    for task in tasks:  # a thread that exited meanwhile reads as None
        kids.extend(int(k) for k in (read(f"/proc/{pid}/task/{task}/children") or "").split())
    return kids


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, children first."""
    out: list[int] = []
    todo = [pid]
    while todo:
        kids = children(todo.pop())
        out.extend(kids)
        todo.extend(kids)
    return out


def comm(pid: int) -> str | None:
    """The process name, or None if it is gone."""
    text = read(f"/proc/{pid}/comm")
    return text.strip() if text is not None else None


def nothing_left_running() -> None:
    """No zombie child and no child of ours but this process's fork server, itself idle.

    The server (``hakurei-forksrv``) lives as long as we do; the shims it
    forked must all be reaped by the time a container's status reached us.
    """
    try:
        zombie, _ = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return  # no children at all (the cold path, or no server yet)
    assert zombie == 0, f"unreaped child {zombie}"
    for kid in children(os.getpid()):
        assert comm(kid) == "hakurei-forksrv", f"child {kid} ({comm(kid)}) still runs"
        assert children(kid) == [], f"the fork server still has children {children(kid)}"


def run(cmd: Sequence[str], ops: Ops | None = None, **kw: Any) -> Completed:
    """Run ``cmd`` in a container with the default profile (or ``ops``), capturing output."""
    kw.setdefault("uid", os.getuid())
    kw.setdefault("gid", os.getgid())
    kw.setdefault("env", default_env())
    try:
        return run_sync(
            cmd[0],
            list(cmd),
            ops=default_ops(kw["uid"], kw["gid"]) if ops is None else ops,
            capture_output=True,
            **kw,
        )
    except StartError as e:  # a setup failure: the tests look at its status and line
        if e.result is None:
            raise
        return e.result


def sh(script: str, ops: Ops | None = None, **kw: Any) -> Completed:
    return run(["/bin/sh", "-c", script], ops, **kw)


def py(code: str, *args: str, ops: Ops | None = None, **kw: Any) -> Completed:
    return run([PY, "-I", "-S", "-c", code, *args], ops, **kw)


def ok(result: Completed) -> str:
    """stdout of a container that must have exited 0 (else fail showing stderr)."""
    assert result.returncode == 0, (result.returncode, result.stderr)
    assert result.stdout is not None
    return result.stdout.decode()


def mountinfo(ops: Ops | None = None, **kw: Any) -> list[Entry]:
    """The container's own view of its mounts."""
    return parse(ok(run(["/bin/cat", "/proc/self/mountinfo"], ops, **kw)))


def base_ops() -> Ops:
    """Just enough to run /bin/sh and python: /usr read-only plus the merged-usr links."""
    ops = Ops().bind("/usr", "/usr")
    for top in ("/bin", "/sbin", "/lib", "/lib64"):
        if os.path.islink(top):
            ops.link(top, os.readlink(top))
        elif os.path.isdir(top):
            ops.bind(top, top)
    return ops


# -- filesystem helpers (test_fs_*) ---------------------------------------------

#: VFS options the kernel prints, in the order it prints them after ro/rw
VFS_FLAGS = ("nosuid", "nodev", "noexec")


def host_mounts() -> list[Entry]:
    """The calling process's own mount table (the host's, for the tests)."""
    with open("/proc/self/mountinfo", "rb") as f:
        return parse(f.read())


def host_mount_of(path: str) -> Entry:
    """The host mount that holds ``path``: the topmost on the longest containing mount point."""
    path = os.path.realpath(path)
    best: Entry | None = None
    for e in host_mounts():
        inside = e.target == "/" or path == e.target or path.startswith(e.target + "/")
        if inside and (best is None or len(e.target) >= len(best.target)):
            best = e
    assert best is not None, path
    return best


def vfs(options: str) -> str:
    """VFS options without the trailing atime option the tests do not care about."""
    for tail in (",relatime", ",noatime"):
        options = options.removesuffix(tail)
    return options


def vfs_with(options: str, *add: str) -> str:
    """``options`` (atime dropped) with flags added, in the kernel's order: ro/rw first."""
    have = set(vfs(options).split(",")) | set(add)
    ro = "ro" if "ro" in have else "rw"
    return ",".join([ro, *(f for f in VFS_FLAGS if f in have)])

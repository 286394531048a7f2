"""SIGKILL to the shim, to init or to the caller leaves no process of the container.

The program is long-running and has a child of its own (``sleep & sleep``).
Once it runs, the test records every process of the container by pid (the
caller, the shim, init, the program and its child) and the container's pid
namespace, delivers SIGKILL to one of them, and then requires, each within a
bounded poll (not a sleep standing in for synchronisation):

* every recorded pid has exited (its pidfd is readable; an unreaped zombie
  has exited and counts as gone);
* a scan of ``/proc`` finds no live process of this user that belongs to the
  container: in its pid namespace, carrying the run's nonce on its command
  line, or with a recorded process among its ancestors.

Both lifecycle paths: the library (``run_sync`` and trio ``hakurei.run`` in a
caller process started for the purpose) and the CLI, where the caller of
``hakurei exec`` is the test and the CLI process is the shim itself.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import pytest

from conftest import children, comm, descendants, read

T = TypeVar("T")

DEADLINE = 10.0

CALLER = r"""
import os, sys
import hakurei
from hakurei.profile import default_env, default_ops
mode, spawner, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
kw = dict(ops=default_ops(), env=default_env(), uid=os.getuid(), gid=os.getgid(),
          fork_server=spawner == "server")
try:
    if mode == "run_sync":
        status = hakurei.run_sync(argv[0], argv, **kw).returncode
    else:
        import trio
        status = trio.run(lambda: hakurei.run(argv[0], argv, **kw)).returncode
except hakurei.ServerLostError:
    status = "lost"
print(status, flush=True)
"""


def program(nonce: str) -> list[str]:
    """``sh`` with a background and a foreground ``sleep``, each naming the nonce."""
    duration = f"1000.{nonce}"
    return ["/bin/sh", "-c", f"/bin/sleep {duration} & /bin/sleep {duration}; exit 0"]


def poll_until(what: str, probe: Callable[[], T | None]) -> T:
    """Call ``probe`` until it returns something truthy, for at most DEADLINE seconds."""
    deadline = time.monotonic() + DEADLINE
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class Container:
    """The processes of one running container, found from the process that started it."""

    def __init__(self, top: int, shim_is_top: bool, nonce: str) -> None:
        self.nonce = nonce

        #: the caller's fork server, which clones init itself (there is no shim then)
        self.server: int | None = None
        self.shim: int | None = None

        def init() -> int | None:
            if shim_is_top:
                self.shim = top if comm(top) == "hakurei-shim" else None
            else:
                for c in children(top):
                    if comm(c) == "hakurei-forksrv":
                        self.server = c
                        return next((i for i in children(c) if comm(i) == "init"), None)
                    if comm(c) == "hakurei-shim":
                        self.shim = c
            if self.shim is None:
                return None
            return next((c for c in children(self.shim) if comm(c) == "init"), None)

        self.init = poll_until("init", init)

        def program_running() -> list[int] | None:
            below = descendants(self.init)
            sleeps = [
                p
                for p in below
                if comm(p) == "sleep" and nonce in (read(f"/proc/{p}/cmdline") or "")
            ]
            return below if len(sleeps) >= 2 else None  # sh's child and its own sleep

        self.program = poll_until("the program and its child", program_running)
        self.pidns = os.readlink(f"/proc/{self.program[0]}/ns/pid")
        assert self.pidns != os.readlink("/proc/self/ns/pid")
        self.pids = [top, self.init, *self.program]
        self.pids += [p for p in (self.shim, self.server) if p is not None]
        self.pidfds = {os.pidfd_open(p): p for p in set(self.pids)}

    def close(self) -> None:
        """Kill whatever of the container is still running (a failed test leaves nothing).

        Recorded processes through their pidfds, which cannot hit a reused pid.
        """
        for fd in self.pidfds:
            try:
                signal.pidfd_send_signal(fd, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid, _ in self.leftovers():
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for fd in self.pidfds:
            os.close(fd)

    def still_running(self) -> list[int]:
        """Recorded pids that have not exited within DEADLINE."""
        poller = select.poll()
        for fd in self.pidfds:
            poller.register(fd, select.POLLIN)
        alive = dict(self.pidfds)
        deadline = time.monotonic() + DEADLINE
        while alive and time.monotonic() < deadline:
            for fd, _ in poller.poll(max(1, int((deadline - time.monotonic()) * 1000))):
                alive.pop(fd, None)
                poller.unregister(fd)
        return sorted(alive.values())

    def belongs(self, pid: int) -> bool:
        """Whether a live process is one of this container's (or descends from one)."""
        if pid in self.pids:
            return True
        if (read(f"/proc/{pid}/cmdline") or "").find(self.nonce) >= 0:
            return True
        try:
            if os.readlink(f"/proc/{pid}/ns/pid") == self.pidns:
                return True
        except OSError:
            pass
        seen = set()
        while pid > 1 and pid not in seen:
            seen.add(pid)
            status = read(f"/proc/{pid}/status") or ""
            ppid = next(
                (ln.split()[1] for ln in status.splitlines() if ln.startswith("PPid:")), "0"
            )
            pid = int(ppid)
            if pid in self.pids:
                return True
        return False

    def leftovers(self) -> list[tuple[int, str | None]]:
        """Live (not zombie) processes of this user that belong to the container."""
        uid = str(os.getuid())
        found = []
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) == os.getpid():
                continue
            pid = int(name)
            status = read(f"/proc/{pid}/status")
            if status is None:
                continue
            fields = dict(ln.split(":", 1) for ln in status.splitlines() if ":" in ln)
            if fields.get("Uid", "").split()[:1] != [uid] or fields["State"].split()[0] == "Z":
                continue
            if self.belongs(pid):
                found.append((pid, comm(pid)))
        return found

    def assert_nothing_left(self) -> None:
        assert self.still_running() == [], "recorded processes still running"
        poll_until("no process of the container left", lambda: not self.leftovers())


def kill_and_check(
    top: subprocess.Popen[bytes], shim_is_top: bool, nonce: str, victim: str, status: int
) -> None:
    """SIGKILL ``victim``; ``top`` must end with ``status`` (negative: killed) and nothing left."""
    c = Container(top.pid, shim_is_top, nonce)
    try:
        target = {
            "shim": c.shim,
            "init": c.init,
            "caller": top.pid,
            "cli": top.pid,
            "server": c.server,
        }[victim]
        assert target is not None, f"no {victim} to kill"
        os.kill(target, signal.SIGKILL)
        assert top.wait(timeout=DEADLINE) == status
        if victim != "caller" and c.server is not None:
            c.pids.remove(c.server)  # it rightly lives on with its caller, until the caller exits
        c.assert_nothing_left()
    finally:
        c.close()


@pytest.mark.parametrize(
    ("spawner", "victim"),
    [
        ("server", "init"),
        ("server", "caller"),
        ("server", "server"),
        ("cold", "shim"),
        ("cold", "init"),
        ("cold", "caller"),
    ],
)
@pytest.mark.parametrize("mode", ["run_sync", "trio"])
def test_library_container_leaves_nothing_after_sigkill(
    mode: str, spawner: str, victim: str
) -> None:
    """The caller sees the container die by SIGKILL (status 137) and is itself fine.

    Through the fork server (which clones init: there is no shim to kill) and
    through a cold spawn.  The fork server SIGKILLed takes its containers with
    it, and the caller gets ``ServerLostError``; the caller SIGKILLed takes the
    server too.
    """
    nonce = str(uuid.uuid4().int)[:12]
    # A file, not a pipe: a leftover holding a pipe would only show as a hang.
    with tempfile.TemporaryFile() as out:
        caller = subprocess.Popen(
            [sys.executable, "-c", CALLER, mode, spawner, *program(nonce)], stdout=out
        )
        try:
            kill_and_check(caller, False, nonce, victim, -9 if victim == "caller" else 0)
        finally:
            if caller.poll() is None:
                caller.kill()
                caller.wait()
        out.seek(0)
        said = {"caller": b"", "server": b"lost\n"}.get(victim, b"137\n")
        assert out.read() == said


@pytest.mark.parametrize("victim", ["cli", "init"])
def test_cli_container_leaves_nothing_after_sigkill(victim: str) -> None:
    """The CLI process is the shim: killing it kills the shim and the caller at once."""
    nonce = str(uuid.uuid4().int)[:12]
    cli = subprocess.Popen(
        [sys.executable, "-m", "hakurei", "exec", "--", *program(nonce)],
        stdout=subprocess.DEVNULL,
    )
    try:
        kill_and_check(cli, True, nonce, victim, -9 if victim == "cli" else 137)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()

"""The fork server: library starts go through one per calling process, safely.

What a user can observe: which way a container started (``Container.via``,
``-v``), that the server is this process's child and holds none of its fds,
that a caller which tightened its own restrictions after the server started
never gets a looser container, that a ``fork()``ed child gets its own server,
and that a dead server is replaced.  Process death (caller, server, shim,
init SIGKILLed) is in test_no_leftovers.py; the program's inherited state
(umask, limits, signals, fds) in test_program_environment.py, both of which
run through the server by default.  State changes happen in a caller
subprocess, so this test process keeps its own.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time

import pytest
import trio

import hakurei
from hakurei.profile import default_env, default_ops

from conftest import children, comm


@pytest.fixture(autouse=True)
def server_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about the server: on even in the suite's cold-start rerun."""
    monkeypatch.delenv("HAKUREI_FORKSERVER", raising=False)


def kwargs() -> dict[str, object]:
    return dict(ops=default_ops(), env=default_env(), uid=os.getuid(), gid=os.getgid())


def server_of(shim: int) -> int:
    with open(f"/proc/{shim}/status") as f:
        ppid = int(next(ln.split()[1] for ln in f if ln.startswith("PPid:")))
    return ppid


async def test_library_containers_start_through_this_process_s_fork_server() -> None:
    hakurei.run_sync("/bin/true", **kwargs())  # a process's first start may be cold
    async with hakurei.Container("/bin/sh", ["sh", "-c", "read x"], **kwargs()) as c:
        assert c.via == "fork server"
        assert c.pid is not None
        server = server_of(c.pid)
        assert comm(server) == "hakurei-forksrv"
        assert server in children(os.getpid())
        await c.serve()
    assert c.returncode is not None


FIRST = r"""
import os, trio
import hakurei
from hakurei.profile import default_env, default_ops
kw = dict(ops=default_ops(), env=default_env(), uid=os.getuid(), gid=os.getgid())


async def via():
    async with hakurei.Container("/bin/true", **kw) as c:
        await c.serve()
        await c.wait()
    return c.via


print(trio.run(via), trio.run(via))
"""


def test_a_process_s_first_start_is_cold_and_the_server_takes_the_next() -> None:
    r = subprocess.run([sys.executable, "-c", FIRST], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "cold fork server\n"


async def test_fork_server_false_or_the_environment_starts_cold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with hakurei.Container("/bin/true", fork_server=False, **kwargs()) as c:
        assert c.via == "cold"
        assert c.pid is not None and server_of(c.pid) == os.getpid()
        await c.serve()
        assert await c.wait() == 0
    monkeypatch.setenv("HAKUREI_FORKSERVER", "0")
    async with hakurei.Container("/bin/true", **kwargs()) as c:
        assert c.via == "cold"
        await c.serve()
        assert await c.wait() == 0
    assert hakurei.prestart() is False  # the opt-out holds for prestart too


@pytest.mark.parametrize("fork_server", [True, False])
def test_verbose_says_which_way_the_container_started(fork_server: bool) -> None:
    r = hakurei.run_sync(
        "/bin/true", verbose=True, capture_output=True, fork_server=fork_server, **kwargs()
    )
    assert r.returncode == 0
    want = b"init was cloned by the fork server" if fork_server else b"shim: a cold spawn"
    assert want in r.stderr, r.stderr


def test_cli_verbose_says_the_cli_is_the_shim() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "hakurei", "exec", "-v", "--", "/bin/true"],
        capture_output=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert b"shim: the calling process itself" in r.stderr


def test_the_server_holds_no_fd_of_the_caller_but_its_socket() -> None:
    """After a start, the server's fds are /dev/null, its socket, the caller's pidfd, its
    wakeup pipe and one status socket per running container: never the caller's pipes."""
    r, w = os.pipe()
    stdin_r, stdin_w = os.pipe()
    ours = {os.fstat(fd).st_ino for fd in (r, w, stdin_r, stdin_w)}
    assert hakurei.prestart()
    c = hakurei.Container(
        "/bin/sh", ["sh", "-c", "read x; echo $x"], stdin=stdin_r, stdout=w, **kwargs()
    )

    async def main() -> int:
        await c.start()
        os.close(stdin_r)
        os.close(w)
        await c.serve()
        assert c.pid is not None
        server = server_of(c.pid)
        held = {}
        for name in os.listdir(f"/proc/{server}/fd"):
            try:
                held[int(name)] = (
                    os.readlink(f"/proc/{server}/fd/{name}"),
                    os.stat(f"/proc/{server}/fd/{name}").st_ino,
                )
            except FileNotFoundError:
                pass
        assert not ours & {ino for _, ino in held.values()}, held
        assert {held[fd][0] for fd in (0, 1, 2)} == {"/dev/null"}
        os.write(stdin_w, b"hi\n")
        os.close(stdin_w)
        return await c.wait()

    assert trio.run(main) == 0
    with os.fdopen(r, "rb") as f:
        assert f.read() == b"hi\n"  # end of file: nobody else holds the write end


CALLER = r"""
import ctypes, json, os, sys
import hakurei
from hakurei.profile import default_env, default_ops
from hakurei.errors import StartError

libc = ctypes.CDLL(None, use_errno=True)
kw = dict(ops=default_ops(), env=default_env(), uid=os.getuid(), gid=os.getgid(),
          capture_output=True)
PROBE = "grep -E '^(Seccomp_filters|NoNewPrivs):' /proc/self/status"


def start():
    try:
        r = hakurei.run_sync("/bin/sh", ["sh", "-c", PROBE], **kw)
    except StartError as e:
        return {"error": str(e)}
    return {"status": r.returncode, "out": r.stdout.decode(), "err": r.stderr.decode()[-300:]}


def server():
    kids = open(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read().split()
    comm = {k: open(f"/proc/{k}/comm").read().strip() for k in kids}
    return sorted(int(k) for k in kids if comm[k] == "hakurei-forksrv")


def tighten(how):
    assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
    if how == "seccomp":
        # One filter that allows everything: only the count shows it.
        allow = (ctypes.c_uint64 * 1)(0x7FFF000000000006)  # BPF_RET|BPF_K, SECCOMP_RET_ALLOW
        class Prog(ctypes.Structure):
            _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
        prog = Prog(1, ctypes.cast(allow, ctypes.c_void_p))
        assert libc.prctl(22, 2, ctypes.byref(prog), 0, 0) == 0  # PR_SET_SECCOMP, FILTER
    elif how == "landlock":
        attr = (ctypes.c_uint64 * 3)(1 << 0, 0, 0)  # handled: LANDLOCK_ACCESS_FS_EXECUTE
        fd = libc.syscall(444, attr, 8, 0)
        assert fd >= 0, ctypes.get_errno()
        assert libc.syscall(446, fd, 0) == 0, ctypes.get_errno()


assert hakurei.prestart()  # the server starts before the caller tightens itself
out = {"before": start(), "server_before": server()}
tighten(sys.argv[1])
out["after"] = start()
out["server_after"] = server()
os.environ["HAKUREI_FORKSERVER"] = "0"
out["cold"] = start()
print(json.dumps(out))
"""


def caller(how: str) -> dict[str, dict[str, object]]:
    r = subprocess.run(
        [sys.executable, "-c", CALLER, how], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    out: dict[str, dict[str, object]] = json.loads(r.stdout)
    return out


@pytest.mark.parametrize("how", ["no_new_privs", "seccomp"])
def test_a_caller_that_tightened_itself_gets_containers_as_tight_as_a_cold_start(
    how: str,
) -> None:
    out = caller(how)
    before, after, cold = out["before"], out["after"], out["cold"]
    assert before["status"] == after["status"] == cold["status"] == 0, out
    assert out["server_before"], out  # the first start went through a server
    # The program sees exactly what a cold start from the tightened caller gives it.
    assert after["out"] == cold["out"], out
    if how == "seccomp":
        assert after["out"] != before["out"], out  # one more filter than before
    assert out["server_after"] != out["server_before"], out  # a new server, from here


def test_a_landlocked_caller_never_gets_an_unlandlocked_container() -> None:
    """A Landlock domain forbids mounting: a cold start from such a caller fails in setup,
    and so must a start through a server that was started before the domain."""
    out = caller("landlock")
    assert out["before"]["status"] == 0, out
    assert "error" in out["cold"], out
    assert out["after"] == out["cold"], out


FORKING = r"""
import os, sys
import trio
import hakurei
from hakurei.profile import default_env, default_ops
kw = dict(ops=default_ops(), env=default_env(), uid=os.getuid(), gid=os.getgid())


def ppid(pid):
    return int(open(f"/proc/{pid}/status").read().split("PPid:")[1].split()[0])


async def start():
    async with hakurei.Container("/bin/true", **kw) as c:
        server = ppid(c.pid)
        await c.serve()
        await c.wait()
    return c.via, server


assert hakurei.prestart()
via, parents_server = trio.run(start)
pid = os.fork()
if pid == 0:
    first, _ = trio.run(start)
    assert first == "cold", first  # its first start: it has no server yet
    via, server = trio.run(start)
    os.write(1, f"{via}|{server}|{ppid(server)}|{os.getpid()}|{parents_server}\n".encode())
    os._exit(0)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_a_forked_child_starts_its_own_server_never_its_parents() -> None:
    r = subprocess.run([sys.executable, "-c", FORKING], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    via, server, server_parent, child, parents_server = r.stdout.strip().split("|")
    assert via == "fork server"
    assert server_parent == child  # the child's own server...
    assert server != parents_server  # ...not the one its parent started


def servers() -> list[int]:
    """This process's live (not zombie) fork servers."""
    live = []
    for k in children(os.getpid()):
        with open(f"/proc/{k}/stat") as f:
            state = f.read().rpartition(")")[2].split()[0]
        if comm(k) == "hakurei-forksrv" and state != "Z":
            live.append(k)
    return live


def test_a_killed_idle_server_is_replaced_by_the_next_start() -> None:
    assert hakurei.prestart()
    (old,) = servers()
    pidfd = os.pidfd_open(old)
    os.kill(old, 9)
    select.select([pidfd], [], [])  # it has exited (a zombie until the next start reaps it)
    os.close(pidfd)
    r = hakurei.run_sync("/bin/true", **kwargs())
    assert r.returncode == 0
    (new,) = servers()
    assert new != old


def test_containers_die_with_their_server_even_while_nobody_waits_for_them() -> None:
    """The caller is alive but busy elsewhere: a SIGKILLed server still takes its
    containers with it (init's pdeathsig); the next reap says why."""
    from hakurei.params import Params
    from hakurei.spawn import spawn

    setup = Params("/bin/sleep", ["sleep", "1000"], **kwargs()).resolve(0)  # type: ignore[arg-type]
    proc = spawn(setup, fork_server=True)
    proc.send(setup)
    while not proc.started:
        assert proc.listen(10.0), "the container never reported that it started"
    server = server_of(proc.pid)
    assert comm(proc.pid) == "init"  # cloned straight into init: there is no shim
    (program,) = children(proc.pid)
    watched = [os.pidfd_open(p) for p in (proc.pid, program)]
    try:
        os.kill(server, 9)
        poller = select.poll()
        for fd in watched:
            poller.register(fd, select.POLLIN)
        gone: set[int] = set()
        deadline = time.monotonic() + 10
        while len(gone) < 2 and time.monotonic() < deadline:
            gone |= {fd for fd, _ in poller.poll(1000)}
        assert gone == set(watched), "init or its program outlived the fork server"
    finally:
        for fd in watched:
            os.close(fd)
    with pytest.raises(hakurei.ServerLostError):
        proc.reap()


LOOP = r"""
import os, trio
import hakurei
from hakurei.profile import default_env, default_ops
kw = dict(ops=default_ops(), env=default_env(), uid=os.getuid(), gid=os.getgid())


async def main():
    ticks = 0
    starting = True

    async def ticker():
        nonlocal ticks
        while starting:
            ticks += 1
            await trio.sleep(0)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        await trio.sleep(0)
        c = hakurei.Container("/bin/true", fork_server=True, **kw)
        before = ticks
        await c.start()  # this one spawns the server and waits for its answer
        during = ticks - before
        starting = False
    await c.serve()
    await c.wait()
    print(c.via, during)


trio.run(main)
"""


def test_the_start_that_spawns_the_server_leaves_the_event_loop_running() -> None:
    """Other tasks keep running while the new server imports (tens of ms, once)."""
    r = subprocess.run([sys.executable, "-c", LOOP], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    via, during = r.stdout.rsplit(maxsplit=1)
    assert via == "fork server"
    assert int(during) > 0  # the ticker ran while start() waited


CTRL_KEYS = r"""
import os, signal, sys
import hakurei
from hakurei import forkserver
from hakurei.profile import default_env, default_ops
kw = dict(ops=default_ops(), env=default_env(), uid=os.getuid(), gid=os.getgid())
fork_server = sys.argv[1] == "server"
if fork_server:
    hakurei.prestart()
r, w = os.pipe()
# The program: says it runs, then exits 7 on the SIGINT init forwards to it.
prog = "import os, signal, sys; signal.signal(signal.SIGINT, lambda *a: sys.exit(7)); " \
       "os.write(3, b'r'); os.close(3); signal.pause()"
import trio

async def main():
    async with hakurei.Container("/usr/bin/python3", ["python3", "-c", prog], extra_files=[w],
                                 fork_server=fork_server, **kw) as c:
        os.close(w)
        await c.serve()
        assert os.read(r, 1) == b"r"
        server = forkserver._server.pid if fork_server else None
        # What a terminal does on Ctrl-C and Ctrl-Z: the whole foreground group.
        if fork_server:  # a cold shim stops with its container on Ctrl-Z, by design
            signal.signal(signal.SIGTSTP, signal.SIG_IGN)
            os.killpg(0, signal.SIGTSTP)  # the container stops; the server must not
            print(hakurei.run_sync("/bin/true", **kw).returncode)
            # init takes pending signals lowest number first: let the stop land
            # before the SIGCONT and SIGINT, or a late stop would freeze the program.
            with open(f"/proc/{c.pid}/task/{c.pid}/children") as f:
                program = int(f.read().split()[0])
            while open(f"/proc/{program}/stat").read().rpartition(")")[2].split()[0] != "T":
                await trio.sleep(0.001)  # polling the program's state (the test's deadline)
            os.killpg(0, signal.SIGCONT)  # fg
        os.killpg(0, signal.SIGINT)
        status = await c.wait()
        alive = fork_server and forkserver._server is not None and \
            forkserver._server.pid == server and os.path.exists(f"/proc/{server}")
        print(c.via, status, alive)

signal.signal(signal.SIGINT, signal.SIG_IGN)  # the caller carries on, as one that handles it
trio.run(main)
"""


@pytest.mark.parametrize("path", ["server", "cold"])
def test_ctrl_c_in_the_terminal_reaches_the_program_and_ctrl_z_never_stops_the_server(
    path: str,
) -> None:
    """A terminal signals its whole foreground group, the fork server included.

    The program must get the SIGINT (forwarded by init, as after a cold
    start), not die with a server that Ctrl-C killed; and a server that
    Ctrl-Z stopped would hang every later start of a caller that ignores it.
    """
    r = subprocess.run(
        ["setsid", sys.executable, "-c", CTRL_KEYS, path],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    if path == "server":
        assert r.stdout == "0\nfork server 7 True\n"
    else:
        assert r.stdout == "cold 7 False\n"

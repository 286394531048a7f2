"""Exit statuses, signals, cancellation, parent death, threads and leaks, on the real kernel."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
import trio

import hakurei
from hakurei.params import Params
from hakurei.process import Process
from hakurei.profile import default_env, default_ops
from hakurei.spawn import spawn

from conftest import PY, descendants, nothing_left_running, ok, py, run, sh


def container_kwargs() -> dict[str, object]:
    return {
        "ops": default_ops(),
        "env": default_env(),
        "uid": os.getuid(),
        "gid": os.getgid(),
    }


@pytest.mark.parametrize(
    ("script", "status"),
    [
        ("exit 0", 0),
        ("exit 42", 42),
        ("kill -TERM $$", 128 + 15),
        ("kill -SEGV $$", 128 + 11),
        ("kill -HUP $$", 128 + 1),
    ],
)
def test_exit_status_is_the_programs(script: str, status: int) -> None:
    assert sh(script).returncode == status


def test_missing_program_is_127_with_one_line() -> None:
    r = run(["/nonexistent/program"])
    assert r.returncode == 127
    assert r.stderr == b"hakurei: cannot start /nonexistent/program: no such file or directory\n"


def test_not_executable_program_is_126() -> None:
    r = run(["/etc/passwd"])  # placed by the default profile, mode 0444
    assert r.returncode == 126
    assert r.stderr is not None and b"permission denied" in r.stderr


def test_setup_failure_is_125_with_one_line_naming_the_source_in_bubblewraps_words() -> None:
    ops = default_ops().bind("/nonexistent-source", "/x")
    r = run(["/bin/true"], ops)
    assert r.returncode == 125
    assert r.stderr is not None
    lines = r.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines == [
        "hakurei: Can't find source path /nonexistent-source: No such file or directory"
    ]


def test_bad_working_directory_is_a_setup_failure() -> None:
    r = run(["/bin/true"], dir="/nonexistent")
    assert r.returncode == 125
    assert r.stderr == b"hakurei: cannot chdir /nonexistent: no such file or directory\n"


def test_error_messages_after_the_pivot_need_no_late_import() -> None:
    """Init refuses imports once the host is detached; these paths print, not fail."""
    r = run(["/bin/true"], verbose=True)
    assert r.returncode == 0
    assert r.stderr is not None
    text = r.stderr.decode()
    assert "late import" not in text
    assert "init: initial process exited with code 0" in text
    assert "init: mounting" in text


def test_sigterm_to_the_container_reaches_the_program() -> None:
    """SIGTERM is forwarded (not fatal to init); the program's handler decides the status."""
    r, w = os.pipe()
    code = (
        "import os, signal, sys\n"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(7))\n"
        "os.write(3, b'r'); os.close(3)\n"
        "signal.pause()\n"
    )
    params = Params(PY, [PY, "-c", code], **container_kwargs())  # type: ignore[arg-type]
    setup = params.resolve(1)
    shim = spawn(setup, None, None, None, [w])
    os.close(w)
    try:
        shim.send(setup)
        assert os.read(r, 1) == b"r"
        shim.signal(signal.SIGTERM)
        assert shim.reap() == 7
    finally:
        os.close(r)
        if shim.status is None:
            shim.abandon()


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Pids still running after ``timeout`` (exited zombies count as gone)."""
    fds = {}
    for pid in pids:
        try:
            fds[os.pidfd_open(pid)] = pid
        except ProcessLookupError:
            pass
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    deadline = time.monotonic() + timeout
    alive = dict(fds)
    while alive and time.monotonic() < deadline:
        for fd, _ in poller.poll(max(0, int((deadline - time.monotonic()) * 1000))):
            alive.pop(fd, None)
            poller.unregister(fd)
    for fd in fds:
        os.close(fd)
    return sorted(alive.values())


PARENT = """
import os, sys
from hakurei.params import Params
from hakurei.spawn import spawn
from hakurei.profile import default_env, default_ops
r, w = os.pipe()
code = "import os, signal; os.write(3, b'r'); signal.pause()"
p = Params({py!r}, [{py!r}, "-c", code], ops=default_ops(), env=default_env(),
           uid=os.getuid(), gid=os.getgid())
setup = p.resolve(1)
shim = spawn(setup, None, None, None, [w])
os.close(w)
shim.send(setup)
assert os.read(r, 1) == b"r"
print(shim.pid, flush=True)
sys.stdin.read()
"""


def test_parent_killed_leaves_no_container_process() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT.format(py=PY)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert parent.stdout is not None
    top = int(parent.stdout.readline())  # the shim (cold), or init (cloned by the fork server)
    procs = [top, *descendants(top)]
    # shim, init, program; or init, program, and the fork server that must go too
    if len(procs) == 2:
        with open(f"/proc/{top}/status") as f:
            procs.append(int(f.read().split("PPid:")[1].split()[0]))
    assert len(procs) == 3, procs
    parent.kill()
    parent.wait()
    assert wait_gone(procs, 1.0) == []


def test_container_started_from_a_worker_thread_outlives_the_thread() -> None:
    """No PR_SET_PDEATHSIG on the parent side: the spawning thread may exit."""
    stdin_r, stdin_w = os.pipe()
    out_r, out_w = os.pipe()
    started: list[Process] = []

    def start() -> None:
        params = Params("/bin/sh", ["/bin/sh", "-c", "read x; echo alive $x"], **container_kwargs())  # type: ignore[arg-type]
        setup = params.resolve(0)
        shim = spawn(setup, stdin_r, out_w, None)
        shim.send(setup)
        started.append(shim)

    t = threading.Thread(target=start)
    t.start()
    t.join()
    os.close(stdin_r)
    os.close(out_w)
    (shim,) = started
    os.write(stdin_w, b"yes\n")
    os.close(stdin_w)
    assert shim.reap() == 0
    assert os.read(out_r, 100) == b"alive yes\n"
    os.close(out_r)


async def test_trio_run_captures_output() -> None:
    result = await hakurei.run(
        "/bin/sh",
        ["sh", "-c", "echo out; echo err >&2; exit 3"],
        capture_output=True,
        **container_kwargs(),
    )
    assert (result.returncode, result.stdout, result.stderr) == (3, b"out\n", b"err\n")


async def test_trio_check_raises_with_the_status() -> None:
    with pytest.raises(hakurei.ContainerExitError) as e:
        await hakurei.run("/bin/false", check=True, **container_kwargs())
    assert e.value.status == 1


async def cancel_when_ready(code: str, **params: Any) -> int:
    """Run ``code`` (which writes b"r" to fd 3 once ready), cancel it, return the status.

    The byte on fd 3 proves the extra file arrives renumbered to 3 and makes
    the cancel land while the program runs.
    """
    r, w = os.pipe()
    c = hakurei.Container(PY, [PY, "-c", code], extra_files=[w], **params, **container_kwargs())
    await c.start()
    os.close(w)
    with trio.move_on_after(30) as outer:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(c.serve)
            await trio.lowlevel.wait_readable(r)
            assert os.read(r, 1) == b"r"
            nursery.cancel_scope.cancel()
            await c.wait()
    assert not outer.cancelled_caught
    os.close(r)
    assert c.returncode is not None
    return c.returncode


async def test_cancel_kills_the_container_and_extra_fd_is_renumbered_to_3() -> None:
    code = "import os, signal; os.write(3, b'r'); signal.pause()"
    # Init exits 0 on the cancel signal without forwarding (Go: context.Canceled).
    assert await cancel_when_ready(code) == 0


async def test_forward_cancel_delivers_sigint_to_the_program() -> None:
    code = (
        "import os, signal, sys\n"
        "signal.signal(signal.SIGINT, lambda *a: sys.exit(2))\n"
        "os.write(3, b'r')\n"
        "signal.pause()\n"
    )
    assert await cancel_when_ready(code, forward_cancel=True) == 2


async def test_wait_delay_escalates_to_sigkill() -> None:
    code = (
        "import os, signal\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "os.write(3, b'r')\n"
        "signal.pause()\n"
    )
    status = await cancel_when_ready(code, forward_cancel=True, wait_delay=0.2)
    assert status == 128 + signal.SIGKILL


def test_orphans_are_waited_for_within_the_adopt_delay() -> None:
    """The program exits at once; its orphan finishes later and init waits for it."""
    r, w = os.pipe()
    # sh points a background job's stdin at /dev/null: the orphan reads fd 4.
    script = "(read x <&4; echo orphan-done >&3) & exit 3"
    stdin_r, stdin_w = os.pipe()
    params = Params(
        "/bin/sh",
        ["/bin/sh", "-c", script],
        adopt_wait_delay=30,
        **container_kwargs(),  # type: ignore[arg-type]
    )
    setup = params.resolve(2)
    shim = spawn(setup, None, None, None, [w, stdin_r])
    os.close(w)
    os.close(stdin_r)
    shim.send(setup)
    try:
        # The program has exited, but the container lives on for its orphan.
        assert wait_gone([shim.pid], 0.5) == [shim.pid]
        os.write(stdin_w, b"go\n")
        os.close(stdin_w)
        assert shim.reap() == 3
        assert os.read(r, 100) == b"orphan-done\n"
    finally:
        os.close(r)
        if shim.status is None:
            shim.abandon()


def test_lingering_orphans_are_killed_after_the_adopt_delay() -> None:
    r = sh("sleep 1000 & exit 5", adopt_wait_delay=0.3)
    assert r.returncode == 5
    assert r.stderr == b"hakurei: timeout exceeded waiting for lingering processes\n"


def test_orphaned_zombies_are_reaped_by_init() -> None:
    code = (
        "import os, time\n"
        "def states():\n"
        "    out = []\n"
        "    for p in filter(str.isdigit, os.listdir('/proc')):\n"
        "        try:\n"
        "            with open(f'/proc/{p}/stat') as f:\n"
        "                out.append(f.read().rsplit(')', 1)[1].split()[0])\n"
        "        except (FileNotFoundError, NotADirectoryError, ProcessLookupError):\n"
        "            pass\n"
        "    return out\n"
        "if os.fork() == 0:\n"
        "    if os.fork() == 0: os._exit(0)\n"  # grandchild: orphaned, then exits
        "    os._exit(0)\n"
        "os.wait()\n"
        "deadline = time.monotonic() + 5\n"
        "while time.monotonic() < deadline:\n"
        "    if 'Z' not in states(): print('clean'); break\n"
        "    time.sleep(0.01)\n"
    )
    out = ok(py(code))
    assert out.startswith("clean"), out


def open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def host_mounts() -> str:
    with open("/proc/self/mountinfo") as f:
        return f.read()


async def test_fifty_concurrent_containers_leave_nothing_behind() -> None:
    hakurei.prestart()  # the server's socket and pidfd are this process's for good
    before_fds, before_mounts = open_fds(), host_mounts()
    kwargs = container_kwargs()
    results: list[int] = []

    async def one(i: int) -> None:
        r = await hakurei.run("/bin/sh", ["sh", "-c", f"exit {i % 7}"], **kwargs)
        results.append(r.returncode)

    async with trio.open_nursery() as nursery:
        for i in range(50):
            nursery.start_soon(one, i)
    assert sorted(results) == sorted(i % 7 for i in range(50))
    nothing_left_running()  # no zombie children of ours
    assert open_fds() == before_fds
    assert host_mounts() == before_mounts


def test_failed_start_leaves_no_process_or_fd() -> None:
    hakurei.prestart()
    before = open_fds()
    r = run(["/bin/true"], default_ops().bind("/nonexistent", "/x"))
    assert r.returncode == 125
    nothing_left_running()
    assert open_fds() == before


def test_invalid_op_is_rejected_before_anything_is_spawned() -> None:
    with pytest.raises(hakurei.OpError, match="not absolute"):
        default_ops().bind("relative/source", "/x")
    with pytest.raises(hakurei.OpError, match="is empty"):
        hakurei.run_sync("", ops=default_ops())

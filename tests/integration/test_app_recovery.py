"""SIGKILL of a launcher monitor at any step leaves nothing that ``gc`` does not remove.

A fake monitor (a Python subprocess using the real store and journal) takes
the instance lock, writes its entry and journal, and does host actions of
every kind the launcher will: files and a directory tree in its instance dir
and beside it in the runtime dir, a listening unix socket in each, and a child
process (started blocked on a pipe, journalled, then released).  It counts
the lines it executes in ``hakurei.app`` and in itself under ``sys.settrace``
and SIGKILLs itself at line N: a step counter, not a timer, so each run dies
at a known, different point (inside the store's atomic write, between a
journal fsync and its action, ...).

After each death ``gc()`` must leave no instance, entry, file, directory,
socket or process of that run, and must not touch a live monitor's instance
that runs the whole time beside them.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hakurei.app import journal
from hakurei.app.store import Store

DEADLINE = 10.0
RUNS = 50

MONITOR = r"""
import os, signal, socket, subprocess, sys
from hakurei.app import journal, store

store_path, host_root, kill_at, mode, nonce = sys.argv[1:6]
KILL_AT = int(kill_at)
APP = os.path.dirname(store.__file__) + os.sep
count = 0

def local(frame, event, arg):
    global count
    if event == "line":
        count += 1
        if count == KILL_AT:
            os.kill(os.getpid(), signal.SIGKILL)
    return local

def glob(frame, event, arg):
    name = frame.f_code.co_filename
    return local if name == "<string>" or name.startswith(APP) else None

CHILD = (
    "import sys, time\n"
    "if not sys.stdin.buffer.read(1):\n"
    "    sys.exit(0)\n"  # the monitor died before journalling us: exit
    "while True:\n"
    "    time.sleep(3600)\n"
)

sys.settrace(glob)
sys._getframe().f_trace = local  # this script's own lines count too
st = store.Store(store_path, host_roots=[host_root])
inst = st.create()
inst.write_entry({"app": "fake", "nonce": nonce})
j = inst.journal

j.record("remove", path="xauth")
fd = os.open("xauth", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=inst.dir_fd)
with open(fd, "w") as f:
    f.write("cookie")
j.record("remove", path="run")
os.mkdir("run", 0o700, dir_fd=inst.dir_fd)
os.mkdir(f"{inst.path}/run/deep")
open(f"{inst.path}/run/deep/file", "w").close()
sock_in = socket.socket(socket.AF_UNIX)
j.record("remove", path="run/bus")
sock_in.bind(f"{inst.path}/run/bus")
sock_in.listen()

host_dir = f"{host_root}/share-{inst.id}"
j.record("remove_host", path=host_dir)
os.mkdir(host_dir, 0o700)
open(f"{host_dir}/data", "w").close()
host_file = f"{host_root}/cookie-{inst.id}"
j.record("remove_host", path=host_file)
open(host_file, "x").close()
host_sock = f"{host_root}/pulse-{inst.id}"
sock_host = socket.socket(socket.AF_UNIX)
j.record("remove_host", path=host_sock)
sock_host.bind(host_sock)
sock_host.listen()

child = subprocess.Popen(
    [sys.executable, "-S", "-c", CHILD, nonce], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL
)
j.record("kill", pid=child.pid, starttime=journal.starttime(child.pid))
child.stdin.write(b"g")
child.stdin.flush()
inst.write_entry({"app": "fake", "nonce": nonce, "child": child.pid})

sys.settrace(None)
if mode == "count":
    print(count, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
print(inst.id, flush=True)
sys.stdin.read()
sys.exit(1 if inst.revert() else 0)
"""


def _monitor(store: str, host: str, kill_at: int, mode: str, nonce: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", MONITOR, store, host, str(kill_at), mode, nonce],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _live_processes_with(nonce: str) -> list[int]:
    """Pids of live (not zombie) processes whose command line carries ``nonce``."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{d}/cmdline").read_bytes()
            status = Path(f"/proc/{d}/status").read_text()
        except OSError:
            continue
        if nonce.encode() in cmdline and "\nState:\tZ" not in status:
            found.append(int(d))
    return found


def _until_no_process_with(nonce: str) -> list[int]:
    """Poll (bounded) until no live process carries ``nonce``; what is left at the deadline."""
    end = time.monotonic() + DEADLINE
    while (left := _live_processes_with(nonce)) and time.monotonic() < end:
        time.sleep(0.02)
    return left


def _leftovers(root: Path, live_id: str) -> list[str]:
    """Everything under the runtime dir that is neither the store's lock nor the live instance's."""
    out = []
    for p in root.iterdir():
        if p.name == "hakurei":
            out += [f"hakurei/{q.name}" for q in p.iterdir() if q.name not in ("lock", live_id)]
        elif live_id not in p.name:
            out.append(p.name)
    return out


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A private dir with a short path: a unix socket path must fit in 108 bytes."""
    path = tempfile.mkdtemp(prefix="hk-")
    try:
        yield Path(path)
    finally:
        shutil.rmtree(path)


@pytest.mark.timeout(600)
def test_sigkill_of_the_monitor_at_any_step_leaves_nothing_after_gc(short_tmp: Path) -> None:
    runtime = short_tmp
    store_path = str(runtime / "hakurei")

    live_nonce = f"hk-live-{uuid.uuid4().hex}"
    live = _monitor(store_path, str(runtime), 0, "hold", live_nonce)
    assert live.stdout is not None and live.stdin is not None
    live_id = live.stdout.readline().strip()
    assert len(live_id) == 32
    live_dir = runtime / "hakurei" / live_id
    live_things = sorted(p.name for p in runtime.iterdir() if live_id in p.name)
    assert len(live_things) == 3

    count_nonce = f"hk-count-{uuid.uuid4().hex}"
    counter = _monitor(store_path, str(runtime), 0, "count", count_nonce)
    out, _ = counter.communicate(timeout=60)
    assert counter.returncode == -signal.SIGKILL
    steps = int(out)
    seed = random.randrange(1 << 30)
    points = sorted(random.Random(seed).sample(range(1, steps + 1), min(RUNS, steps)))
    points[-1] = steps + 1  # once after the last step: the fully set-up monitor dies

    with Store(store_path, host_roots=[str(runtime)]) as st:
        for point in points:
            where = f"killed at step {point} of {steps} (seed {seed})"
            nonce = f"hk-{uuid.uuid4().hex}"
            mode = "count" if point > steps else "kill"
            m = _monitor(store_path, str(runtime), point, mode, nonce)
            m.communicate(timeout=60)
            assert m.returncode == -signal.SIGKILL, where
            assert [e["id"] for e in st.live()] == [live_id], where
            assert st.gc() == [], where
            assert _leftovers(runtime, live_id) == [], where
            assert _until_no_process_with(nonce) == [], where

        # The live monitor's instance was never touched.
        assert [e["id"] for e in st.live()] == [live_id]
        assert sorted(p.name for p in runtime.iterdir() if live_id in p.name) == live_things
        assert (live_dir / "run" / "deep" / "file").exists()
        assert (live_dir / "xauth").read_text() == "cookie"
        (entry,) = st.live()
        assert journal.starttime(entry["info"]["child"]) is not None
        assert _until_no_process_with(count_nonce) == []

        # And its own revert, at its normal end, leaves nothing either.
        live.stdin.close()
        assert live.wait(timeout=60) == 0
        assert st.live() == []
        assert _leftovers(runtime, live_id) + [p.name for p in runtime.iterdir()] == ["hakurei"]
        assert os.listdir(store_path) == ["lock"]
        assert _until_no_process_with(live_nonce) == []

"""Setup never leaves the container's root (issue 6, items 1-3), tried as an attacker would.

A confined program may write anywhere in a directory the user binds writable,
so it can plant links there that the *next* container's ops walk through.
Each test here owns a host tree::

    base/
      rw/        bound writable at /rw: the attacker's playground
      outside/   bound nowhere: a FIFO, a 0600 secret, a subdirectory, a link
      src/       what the ops name as sources (bind sources, place file, overlay layers)

and asserts, after containers ran over planted links, ``..`` in destinations,
links flipping under a running setup, or hostile ``--root``/``--etc`` images:

* nothing outside the binds changed: every entry of ``base/`` but ``rw/`` and
  the overlay upper/work dirs has the same type, mode, inode, times, link
  contents and file contents as before (``outside/`` is the one aimed at);
* the host's mount table (this process's ``/proc/self/mountinfo``) is unchanged;
* every op either landed inside the container, where its destination means
  something *to the program* (checked from inside, following the same links),
  or the container failed with exit status 125 and one line on stderr.

During setup init sees the host under ``/host`` and builds the container under
``/sysroot``; the links below aim at both, relatively and absolutely.
The matrix of (op x link kind) runs its containers concurrently, once per
module, and each parametrized test reports its own case.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from hakurei.errors import HakureiError
from hakurei.ops import BIND_WRITABLE, Ops
from hakurei.profile import default_env
from hakurei.sync import run_sync

from conftest import base_ops

#: seconds one container may take before the test calls it hung (a FIFO opened
#: for writing blocks forever; nothing legitimate here takes more than ~1 s)
HANG = 20.0
#: containers run side by side in the matrix (2 cores; each start is mostly CPU)
WORKERS = 3
#: what the container's checking program exits with when the op claimed success
#: but nothing is where its destination points inside the container
NOT_LANDED = 3

SECRET = b"the user's secret\n"
PLACED = b"placed\n"


# -- the host tree ---------------------------------------------------------------


#: what Tree.state records of each entry, in order (then link or file contents)
STATE_FIELDS = ("mode", "uid", "dev", "ino", "nlink", "size", "mtime", "ctime", "contents")


class Tree:
    """A host tree the test owns (see the module docstring) and its snapshot."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.rw = base / "rw"
        self.outside = base / "outside"
        self.src = base / "src"
        for d in (self.rw, self.outside / "sub", self.src / "dir", self.src / "upper"):
            d.mkdir(parents=True)
        for d in ("work", "lower1", "lower2"):
            (self.src / d).mkdir()
        (self.outside / "secret").write_bytes(SECRET)
        (self.outside / "secret").chmod(0o600)
        (self.outside / "sub" / "file").write_text("sub file\n")
        (self.outside / "lnk").symlink_to("sub")
        os.mkfifo(self.outside / "fifo", 0o600)
        (self.src / "dir" / "marker").write_text("marker\n")
        (self.src / "file").write_bytes(PLACED)
        (self.src / "lower1" / "l1").write_text("l1\n")
        (self.src / "lower2" / "l2").write_text("l2\n")
        #: what may legitimately change: the writable bind and the overlay's own dirs
        self.changing = {self.rw, self.src / "upper", self.src / "work"}
        self.before = self.state()

    @property
    def o(self) -> str:
        """The absolute host path of ``outside/``."""
        return str(self.outside)

    def state(self) -> dict[str, tuple[object, ...]]:
        """Everything about ``base/`` outside the binds; never opens a FIFO."""
        state: dict[str, tuple[object, ...]] = {}

        def walk(path: Path, rel: str) -> None:
            st_ = os.lstat(path)
            info: tuple[object, ...] = (
                stat.filemode(st_.st_mode),
                st_.st_uid,
                st_.st_dev,
                st_.st_ino,
                st_.st_nlink,
                st_.st_size,
                st_.st_mtime_ns,
                st_.st_ctime_ns,
            )
            if stat.S_ISLNK(st_.st_mode):
                info += (os.readlink(path),)
            elif stat.S_ISREG(st_.st_mode):
                info += (path.read_bytes(),)
            state[rel] = info
            if stat.S_ISDIR(st_.st_mode):
                for name in sorted(os.listdir(path)):
                    if path / name not in self.changing:
                        walk(path / name, f"{rel}/{name}" if rel else name)

        walk(self.base, "")
        return state

    def changes(self) -> list[str]:
        """What changed on the host since the tree was made, one phrase per entry."""
        after = self.state()
        out = []
        for rel in sorted(set(self.before) | set(after)):
            was, now = self.before.get(rel), after.get(rel)
            name = rel or "base/"
            if was is None and now is not None:
                extra = f" -> {now[8]}" if len(now) > 8 and now[0][0] == "l" else ""
                out.append(f"created {name} ({now[0]}{extra})")
            elif now is None:
                out.append(f"removed {name}")
            elif was != now:
                what = [f for f, a, b in zip(STATE_FIELDS, was, now, strict=False) if a != b]
                out.append(f"changed {name} ({', '.join(what)})")
        return out


def brief(changes: list[str], n: int = 8) -> str:
    """The first few host changes, and how many there were."""
    more = f" ... ({len(changes)} in all)" if len(changes) > n else ""
    return "; ".join(changes[:n]) + more


def host_mountinfo() -> str:
    with open("/proc/self/mountinfo") as f:
        return f.read()


def mount_changes(before: str, after: str) -> list[str]:
    old, new = before.splitlines(), after.splitlines()
    return [f"+ {x}" for x in new if x not in old] + [f"- {x}" for x in old if x not in new]


# -- running containers -----------------------------------------------------------


@dataclass
class Outcome:
    """How one container ended; ``status`` None means it hung and was killed."""

    status: int | None
    stdout: str = ""
    stderr: str = ""
    refused_at_build: str = ""  # the library refused the op before anything started


def host_tops() -> list[str]:
    """/bin, /lib... as ``hakurei exec`` options, the way base_ops() builds them."""
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib64"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    return args


def cli(args: list[str], timeout: float = HANG) -> Outcome:
    """``hakurei exec ARGS`` as a user runs it; a hang is killed, never waited for."""
    try:
        r = subprocess.run(
            [sys.executable, "-P", "-m", "hakurei", "exec", *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Outcome(None)
    return Outcome(
        r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
    )


def library(build: Callable[[], Ops], argv: list[str], timeout: float = HANG) -> Outcome:
    """``run_sync`` with a deadline: on a hang the shim this thread spawned is killed.

    ``run_sync`` has no timeout, and the shim is a child of the calling
    thread, so it is found in that thread's ``/proc/self/task/TID/children``.
    """
    try:
        ops = build()
    except HakureiError as e:
        return Outcome(None, refused_at_build=str(e))
    box: list[Outcome] = []
    tid: list[int] = []

    def go() -> None:
        tid.append(threading.get_native_id())
        try:
            r = run_sync(
                argv[0],
                argv,
                ops=ops,
                uid=os.getuid(),
                gid=os.getgid(),
                env=default_env(),
                capture_output=True,
            )
        except HakureiError as e:
            box.append(Outcome(None, refused_at_build=str(e)))
            return
        except BaseException as e:  # shown by the test, never lost in a thread
            box.append(Outcome(-1, stderr=f"run_sync raised {type(e).__name__}: {e}"))
            return
        assert r.stdout is not None and r.stderr is not None
        box.append(
            Outcome(
                r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
            )
        )

    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        try:
            with open(f"/proc/self/task/{tid[0]}/children") as f:
                pids = [int(p) for p in f.read().split()]
        except (OSError, IndexError):
            pids = []
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        t.join(HANG)
        return Outcome(None)
    return box[0]


def one_line_setup_error(out: Outcome) -> str | None:
    """Why ``out`` is not a proper setup refusal (exit 125, one ``hakurei:`` line), or None."""
    if out.refused_at_build:
        return None
    lines = out.stderr.splitlines()
    if out.status == 125 and len(lines) == 1 and lines[0].startswith("hakurei: "):
        return None
    return f"exit {out.status}, stderr {out.stderr!r}"


# -- what each op makes, and how to see it from inside ---------------------------------


@dataclass(frozen=True)
class OpKind:
    """One op that creates or mounts something at a destination ``D``."""

    cli: Callable[[Tree, str], list[str]]
    lib: Callable[[Tree, Ops, str], Ops]
    #: shell test, with the destination in ``$D``, true when the op's result is there
    landed: str


OPS: dict[str, OpKind] = {
    "dir": OpKind(
        lambda t, d: ["--perms", "0777", "--dir", d],
        lambda t, ops, d: ops.mkdir(d, 0o777),
        '[ -d "$D" ] && [ "$(stat -L -c %a "$D")" = 777 ]',
    ),
    "tmpfs": OpKind(
        lambda t, d: ["--perms", "0777", "--tmpfs", d],
        lambda t, ops, d: ops.tmpfs(d, 0, 0o777),
        '[ "$(stat -L -f -c %T "$D")" = tmpfs ] && [ "$(stat -L -c %a "$D")" = 777 ]'
        ' && [ "$(stat -L -c %d "$D")" != "$(stat -L -c %d "$D/..")" ]',
    ),
    "symlink": OpKind(
        lambda t, d: ["--symlink", "/made/by/hakurei", d],
        lambda t, ops, d: ops.link(d, "/made/by/hakurei"),
        '[ "$(readlink "$D")" = /made/by/hakurei ]',
    ),
    "bind-dir": OpKind(
        lambda t, d: ["--bind", str(t.src / "dir"), d],
        lambda t, ops, d: ops.bind(str(t.src / "dir"), d, BIND_WRITABLE),
        '[ "$(cat "$D/marker")" = marker ]',
    ),
    "ro-bind-file": OpKind(
        lambda t, d: ["--ro-bind", str(t.src / "file"), d],
        lambda t, ops, d: ops.bind(str(t.src / "file"), d, 0),
        '[ "$(cat "$D")" = placed ]',
    ),
    "place": OpKind(
        lambda t, d: ["--place", d, str(t.src / "file")],
        lambda t, ops, d: ops.place(d, PLACED),
        '[ "$(cat "$D")" = placed ]',
    ),
    "file": OpKind(
        lambda t, d: ["--perms", "0640", "--file", "0", d],  # fd 0 is /dev/null
        lambda t, ops, d: ops.file(d, b"", 0o640),
        '[ -f "$D" ] && [ "$(stat -L -c %a "$D")" = 640 ]',
    ),
    "bind-data": OpKind(
        lambda t, d: ["--perms", "0640", "--bind-data", "0", d],
        lambda t, ops, d: ops.place(d, b"", 0o640, writable=True),
        '[ -f "$D" ] && [ "$(stat -L -c %a "$D")" = 640 ]',
    ),
    "dir-chmod": OpKind(
        lambda t, d: ["--dir", d, "--chmod", "0705", d],
        lambda t, ops, d: ops.mkdir(d).chmod(d, 0o705),
        '[ -d "$D" ] && [ "$(stat -L -c %a "$D")" = 705 ]',
    ),
    "mqueue": OpKind(
        lambda t, d: ["--mqueue", d],
        lambda t, ops, d: ops.mqueue(d),
        '[ -d "$D" ] && [ "$(stat -L -c %d "$D")" != "$(stat -L -c %d "$D/..")" ]',
    ),
    "proc": OpKind(
        lambda t, d: ["--proc", d],
        lambda t, ops, d: ops.proc(d),
        '[ -f "$D/1/stat" ]',
    ),
    "dev": OpKind(
        lambda t, d: ["--dev", d],
        lambda t, ops, d: ops.dev(d, mqueue=True),
        '[ -c "$D/null" ]',
    ),
    "tmp-overlay": OpKind(
        lambda t, d: ["--tmp-overlay", d, str(t.src / "lower1")],
        lambda t, ops, d: ops.overlay_ephemeral(d, str(t.src / "lower1")),
        '[ -f "$D/l1" ]',
    ),
    "ro-overlay": OpKind(
        lambda t, d: ["--ro-overlay", d, f"{t.src / 'lower1'}:{t.src / 'lower2'}"],
        lambda t, ops, d: ops.overlay_readonly(d, str(t.src / "lower1"), str(t.src / "lower2")),
        '[ -f "$D/l1" ] && [ -f "$D/l2" ]',
    ),
    "overlay": OpKind(
        lambda t, d: [
            "--overlay",
            d,
            str(t.src / "upper"),
            str(t.src / "work"),
            str(t.src / "lower1"),
        ],
        lambda t, ops, d: ops.overlay(
            d, str(t.src / "upper"), str(t.src / "work"), str(t.src / "lower1")
        ),
        '[ -f "$D/l1" ]',
    ),
}

#: enough ``..`` to climb from ``/sysroot/rw`` (setup) or ``/rw`` (inside) to the top
CLIMB = "../" * 12


@dataclass(frozen=True)
class Attack:
    """Links planted in ``rw/`` (``{O}`` is outside's host path) and the destination aimed.

    ``dest`` is the destination the op is given; ``under`` appends ``/x`` to it
    (the op creates something under the link) rather than aiming at the link.
    """

    links: tuple[tuple[str, str], ...]
    dest: str
    under: bool = True
    #: directories made in rw/ first
    dirs: tuple[str, ...] = ()
    #: the link leads to an existing container directory: refusing the op is wrong too
    must_land: bool = False

    def plant(self, tree: Tree) -> str:
        for name in self.dirs:
            (tree.rw / name).mkdir()
        for name, contents in self.links:
            os.symlink(contents.format(O=tree.o), tree.rw / name)
        dest = self.dest.format(O=tree.o)
        return dest + "/x" if self.under else dest


#: One of each kind of planted link the brief lists.
LINKS: dict[str, Attack] = {
    # absolute, to the host view init has during setup
    "abs-host-view": Attack((("evil", "/host{O}"),), "/rw/evil"),
    # absolute, to the host path itself (no /host prefix)
    "abs-host-path": Attack((("evil", "{O}"),), "/rw/evil"),
    # relative, climbing out of the bind and the new root
    "rel-climb": Attack((("evil", CLIMB + "host{O}"),), "/rw/evil"),
    # a ../../.. link used as a middle component: the rest of the path is the op's
    "dotdot-component": Attack((("up", "../../.."),), "/rw/up/host{O}"),
    # the intermediate root's own names
    "to-host": Attack((("h", "/host"),), "/rw/h{O}"),
    "to-sysroot": Attack((("evil", "/sysroot"),), "/rw/evil"),
    "sysroot-up": Attack((("evil", "/sysroot/../host{O}"),), "/rw/evil"),
    # a chain: a -> b -> ./c -> /host/outside
    "chain": Attack((("a", "b"), ("b", "./c"), ("c", "/host{O}")), "/rw/a"),
    # the destination itself is a link to a FIFO on the host
    "fifo": Attack((("pipe", "/host{O}/fifo"),), "/rw/pipe", under=False),
    "fifo-rel": Attack((("pipe", CLIMB + "host{O}/fifo"),), "/rw/pipe", under=False),
    # dangling: under it, and the link itself as the destination
    "dangling": Attack((("gone", "/host{O}/missing/deeper"),), "/rw/gone"),
    "dangling-at": Attack((("gone", "/host{O}/newname"),), "/rw/gone", under=False),
    # an absolute link to a container path: it must mean /rw to setup as to the program
    "abs-inside": Attack((("evil", "/rw"),), "/rw/evil"),
    "abs-inside-existing": Attack(
        (("evil", "/rw/real"),), "/rw/evil", dirs=("real",), must_land=True
    ),
    # the control, right on any code (so the inside checks are not vacuous):
    # ../rw from the bind's top is /rw in both views
    "rel-inside": Attack((("evil", "../rw"),), "/rw/evil", must_land=True),
}

#: ``..`` in the destination itself, no link needed (issue 6, item 2)
DOTDOT: dict[str, Attack] = {
    "dotdot-top": Attack((), "/../host{O}"),
    "dotdot-deep": Attack((), "/a/../../host{O}"),
    "dotdot-rw": Attack((), "/rw/../../host{O}"),
    "dotdot-many": Attack((), "/rw/" + CLIMB + "host{O}"),
}

#: the link kinds the library matrix repeats (the CLI runs them all)
LIBRARY_LINKS = (
    "abs-host-view",
    "rel-climb",
    "dotdot-component",
    "sysroot-up",
    "chain",
    "fifo",
    "abs-inside",
    "abs-inside-existing",
    "rel-inside",
)


@dataclass(frozen=True)
class Case:
    via: str  # "cli" or "lib"
    op: str
    attack: str

    def __str__(self) -> str:
        return f"{self.via}-{self.op}-{self.attack}"


@dataclass
class Result:
    case: Case
    dest: str
    outcome: Outcome
    host_changes: list[str] = field(default_factory=list)
    must_land: bool = False


CHECK = 'D=$1; if {landed}; then exit 0; fi; echo "not at $D:"; ls -la "$D"; exit {code}'


def attack_one(case: Case, base: Path) -> Result:
    """Plant, run one container whose op aims through the plant, see what happened."""
    tree = Tree(base)
    kind = OPS[case.op]
    attack = {**LINKS, **DOTDOT}[case.attack]
    dest = attack.plant(tree)
    # Where the op must be seen from inside if it succeeded: ``..`` in the
    # destination is normalised (lexically, clamped at /); links are followed
    # by the kernel, inside the container, as the program would.
    seen_at = posixpath.normpath(dest)
    script = CHECK.format(landed=kind.landed, code=NOT_LANDED)
    argv = ["/bin/sh", "-c", script, "sh", seen_at]
    if case.via == "cli":
        out = cli([*host_tops(), "--bind", str(tree.rw), "/rw", *kind.cli(tree, dest), "--", *argv])
    else:

        def build() -> Ops:
            ops = base_ops().bind(str(tree.rw), "/rw", BIND_WRITABLE)
            return kind.lib(tree, ops, dest)

        out = library(build, argv)
    return Result(case, dest, out, tree.changes(), attack.must_land)


def matrix_cases() -> list[Case]:
    cases = [Case("cli", op, a) for op in OPS for a in LINKS]
    cases += [Case("lib", op, a) for op in OPS for a in LIBRARY_LINKS]
    cases += [Case("cli", op, a) for op in OPS for a in DOTDOT]
    cases += [Case("lib", op, a) for op in OPS for a in ("dotdot-top", "dotdot-rw")]
    return cases


@dataclass
class Matrix:
    results: dict[Case, Result]
    mounts_before: str
    mounts_after: str


@pytest.fixture(scope="module")
def matrix(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Matrix:
    """Run every selected matrix case once, concurrently; each test then reads its own."""
    wanted: list[Case] = []
    for item in request.session.items:
        spec = getattr(item, "callspec", None)
        if spec is not None and isinstance(spec.params.get("case"), Case):
            wanted.append(spec.params["case"])
    top = tmp_path_factory.mktemp("matrix")
    before = host_mountinfo()
    with ThreadPoolExecutor(WORKERS) as pool:
        futures = {c: pool.submit(attack_one, c, top / str(c)) for c in dict.fromkeys(wanted)}
        results = {c: f.result() for c, f in futures.items()}
    return Matrix(results, before, host_mountinfo())


def assert_contained(r: Result, m: Matrix) -> None:
    out = r.outcome
    where = f"{r.case}: destination {r.dest!r}"
    assert not r.host_changes, f"{where}: the host changed: {brief(r.host_changes)}"
    assert m.mounts_before == m.mounts_after, mount_changes(m.mounts_before, m.mounts_after)
    assert out.status is not None or out.refused_at_build, f"{where}: hung (killed after {HANG}s)"
    if r.must_land:
        assert out.status == 0, f"{where}: a link to a container directory was not followed: {out}"
    if out.status == 0 or out.refused_at_build:
        return
    if out.status == NOT_LANDED:
        pytest.fail(f"{where}: exited 0 but nothing is there inside the container\n{out.stdout}")
    bad = one_line_setup_error(out)
    assert bad is None, f"{where}: neither landed inside nor a setup error: {bad}"


@pytest.mark.parametrize(
    "case",
    [c for c in matrix_cases() if c.attack in LINKS],
    ids=str,
)
def test_op_through_a_planted_link_lands_inside_the_container_or_fails(
    case: Case, matrix: Matrix
) -> None:
    """Issue 6, item 1: a link a confined program planted never steers setup onto the host."""
    assert_contained(matrix.results[case], matrix)


@pytest.mark.parametrize(
    "case",
    [c for c in matrix_cases() if c.attack in DOTDOT],
    ids=str,
)
def test_dotdot_in_a_destination_never_reaches_the_host(case: Case, matrix: Matrix) -> None:
    """Issue 6, item 2: ``/../host/...`` is normalised (and stays inside) or refused."""
    assert_contained(matrix.results[case], matrix)


# -- the race -------------------------------------------------------------------------

#: Swaps each name with its twin (renameat2 RENAME_EXCHANGE) as fast as it can:
#: a directory and a link trade places, so the name always exists.  Bounded:
#: stops after MAX flips or SECONDS, whichever comes first; prints "ready" once
#: the first swap is done and the number of rounds at the end.
FLIPPER = r"""
import ctypes, os, signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
libc = ctypes.CDLL(None, use_errno=True)
os.chdir(sys.argv[1])
seconds, limit = float(sys.argv[2]), int(sys.argv[3])
names = [n.encode() for n in sys.argv[4:]]
def swap():
    for n in names:
        if libc.renameat2(-100, n, -100, n + b".twin", 2) != 0:  # AT_FDCWD, RENAME_EXCHANGE
            raise OSError(ctypes.get_errno(), "renameat2", n)
swap()
print("ready", flush=True)
end, rounds = time.monotonic() + seconds, 1
try:
    while rounds < limit:
        swap()
        rounds += 1
        if rounds % 512 == 0 and time.monotonic() > end:
            break
finally:
    print(f"{rounds} rounds", flush=True)
"""

#: (name, link contents) pairs for the race; the twin of each is a directory
FLIP_LINKS = (
    ("f1", "/host{O}"),
    ("f2", CLIMB + "host{O}"),
    ("f3", "../../.."),
)


def race_ops(tree: Tree, n: int) -> list[str]:
    """Options of the n-th racing container: every op kind, under every flipping name."""
    src = tree.src
    return [
        "--bind", str(tree.rw), "/rw",
        "--perms", "0777", "--dir", f"/rw/f1/d{n}",
        "--tmpfs", f"/rw/f2/t{n}",
        "--symlink", "/x", f"/rw/f1/l{n}",
        "--ro-bind", str(src / "file"), f"/rw/f2/b{n}",
        "--place", f"/rw/f1/p{n}", str(src / "file"),
        "--dir", f"/rw/f3/host{tree.o}/u{n}",
    ]  # fmt: skip


def plant_flippers(tree: Tree) -> None:
    """Each flipping name starts as a directory, its twin as the link (created by the test)."""
    for name, contents in FLIP_LINKS:
        (tree.rw / name).mkdir()
        os.symlink(contents.format(O=tree.o), tree.rw / f"{name}.twin")


def start_flipper(cmd: list[str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the flipper's first swap is done: the race is on
    if line != "ready\n":
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"flipper did not start: {line!r} {err!r}")
    return proc


def stop_flipper(proc: subprocess.Popen[str]) -> int:
    """Stop the flipper; how many rounds of swaps it made (it must still have been running)."""
    alive = proc.poll() is None
    if alive:
        proc.terminate()
    try:
        out, err = proc.communicate(timeout=HANG)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    assert alive, f"the flipper stopped before the containers did: {out!r} {err!r}"
    rounds = out.split()
    assert rounds[-1:] == ["rounds"], (out, err)
    return int(rounds[-2])


#: the race stops starting containers after this long, whatever the count (a loaded machine)
RACE_SECONDS = 15.0


def race(tree: Tree, count: int) -> tuple[int, list[str]]:
    """Start up to ``count`` racing containers, two at a time: how many ran, what went wrong."""
    deadline = time.monotonic() + RACE_SECONDS

    def one(n: int) -> tuple[bool, str | None]:
        if time.monotonic() > deadline:
            return False, None
        out = cli([*host_tops(), *race_ops(tree, n), "--", "/bin/true"])
        if out.status is None:
            return True, f"container {n} hung"
        if out.status == 0:
            return True, None
        bad = one_line_setup_error(out)
        return True, None if bad is None else f"container {n}: {bad}"

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(one, range(count)))
    return sum(ran for ran, _ in results), [p for _, p in results if p]


def assert_race_contained(
    tree: Tree, mounts: str, ran: int, rounds: int, problems: list[str]
) -> None:
    changes = tree.changes()
    what = f"{ran} containers, {rounds} rounds of swaps"
    assert not changes, f"the host changed ({what}): {brief(changes)}"
    assert host_mountinfo() == mounts, mount_changes(mounts, host_mountinfo())
    assert problems == [], what
    # not vacuous: the containers did start, and the names did flip under them
    assert ran >= 50 and rounds > 10 * ran, what


def test_links_flipping_during_setup_never_steer_it_onto_the_host(tmp_path: Path) -> None:
    """Issue 6, item 1 (the race): a host process swaps dirs and links under 200 setups."""
    tree = Tree(tmp_path)
    plant_flippers(tree)
    mounts = host_mountinfo()
    names = [name for name, _ in FLIP_LINKS]
    flipper = start_flipper(
        [sys.executable, "-I", "-S", "-c", FLIPPER, str(tree.rw), "60", "100000000", *names]
    )
    try:
        ran, problems = race(tree, 200)
    finally:
        rounds = stop_flipper(flipper)
    assert_race_contained(tree, mounts, ran, rounds, problems)


def test_a_container_flipping_links_cannot_steer_other_containers_setup(tmp_path: Path) -> None:
    """The same race, with the flipper itself confined in a container that has rw bound."""
    tree = Tree(tmp_path)
    plant_flippers(tree)
    mounts = host_mountinfo()
    names = [name for name, _ in FLIP_LINKS]
    flipper = start_flipper(
        [
            sys.executable, "-P", "-m", "hakurei", "exec", *host_tops(),
            "--bind", str(tree.rw), "/rw", "--",
            "/usr/bin/python3", "-I", "-S", "-c", FLIPPER, "/rw", "60", "100000000", *names,
        ]
    )  # fmt: skip
    try:
        ran, problems = race(tree, 60)
    finally:
        rounds = stop_flipper(flipper)
    assert_race_contained(tree, mounts, ran, rounds, problems)


# -- hostile images: --root and --etc -----------------------------------------------------

#: Reports, one ``key=value`` line each, what a program sees of the image's links.
#: ``ls`` prints nothing for what it cannot list; ``cat`` nothing for what it cannot read
#: (the container needs a /dev for the ``2>/dev/null``).
IMAGE_PROBE = r"""
P=$1 O=$2
for n in hostroot secret data dangling up; do
    [ -L "$P/$n" ] && echo "$n.link=$(readlink "$P/$n")"
    echo "$n.real=$(readlink -m "$P/$n")"
done
echo "hostroot.ls=$(ls -A "$P/hostroot/" 2>/dev/null | tr '\n' ' ')"
echo "hostroot.secret=$(cat "$P/hostroot$O/secret" 2>/dev/null)"
echo "secret.cat=$(cat "$P/secret" 2>/dev/null)"
echo "data.ls=$(ls -A "$P/data/" 2>/dev/null | tr '\n' ' ')"
echo "up.ls=$(ls -A "$P/up/" 2>/dev/null | tr '\n' ' ')"
echo "root.ls=$(ls -A / | tr '\n' ' ')"
echo "marker=$(cat "$P/marker")"
"""


def hostile_image(tree: Tree, name: str, dangling: bool = True) -> Path:
    """An image whose top level holds links aimed at the host, and one ordinary file.

    Without ``dangling`` the image works on today's code too, so what a
    program sees through the other links shows (a dangling top-level link
    fails today's ``--root`` as a whole: it is bound, and its target is missing).
    """
    image = tree.base / name
    image.mkdir()
    os.symlink("/", image / "hostroot")
    os.symlink(f"{tree.o}/secret", image / "secret")
    os.symlink(tree.o, image / "data")
    if dangling:
        os.symlink("/nonexistent-hakurei-image", image / "dangling")
    os.symlink("..", image / "up")
    (image / "marker").write_text("image marker\n")
    tree.before = tree.state()
    return image


def probe(out: Outcome) -> dict[str, str]:
    assert out.status == 0, out
    seen = {}
    for line in out.stdout.splitlines():
        key, _, value = line.partition("=")
        seen[key] = value.strip()
    return seen


def assert_no_host_through_image(seen: dict[str, str], tree: Tree) -> None:
    """Nothing outside the image is visible through its links: not /, not outside/, not base/."""
    assert seen["marker"] == "image marker", seen
    assert seen["hostroot.secret"] == "", "the host root is bound at /hostroot"
    assert set(seen["hostroot.ls"].split()) != set(os.listdir("/")), "/hostroot is the host's /"
    assert seen["secret.cat"] == "", "the 0600 secret outside the image was read"
    assert not {"secret", "sub", "fifo"} & set(seen["data.ls"].split()), seen["data.ls"]
    assert not {"outside", "rw", "src"} & set(seen["up.ls"].split()), seen["up.ls"]
    changes = tree.changes()
    assert not changes, brief(changes)


def root_run(tree: Tree, image: Path, via: str) -> Outcome:
    argv = ["/bin/sh", "-c", IMAGE_PROBE, "sh", "", tree.o]
    if via == "cli":
        return cli(["--root", str(image), *host_tops(), "--dev", "/dev", "--", *argv])
    return library(lambda: Ops([*Ops().root(str(image)), *base_ops().dev("/dev")]), argv)


@pytest.mark.parametrize("via", ["cli", "lib"])
def test_root_image_links_never_expose_host_files(tmp_path: Path, via: str) -> None:
    """Issue 6, item 3: ``--root`` of an image with hostroot -> /, secret -> a 0600 file ..."""
    tree = Tree(tmp_path)
    image = hostile_image(tree, "image", dangling=False)
    mounts = host_mountinfo()
    seen = probe(root_run(tree, image, via))
    assert_no_host_through_image(seen, tree)
    assert host_mountinfo() == mounts


@pytest.mark.parametrize("via", ["cli", "lib"])
def test_root_image_top_level_links_are_recreated_as_links(tmp_path: Path, via: str) -> None:
    """The image's links are the same links inside: they mean container paths."""
    tree = Tree(tmp_path)
    image = hostile_image(tree, "image")
    seen = probe(root_run(tree, image, via))
    assert seen.get("hostroot.link") == "/", seen
    assert seen["hostroot.real"] == "/"
    assert seen.get("secret.link") == f"{tree.o}/secret", seen
    assert seen.get("data.link") == tree.o, seen
    assert seen.get("dangling.link") == "/nonexistent-hakurei-image", seen
    assert seen.get("up.link") == "..", seen
    # the container's own root, seen through the link, is the one the program lives in
    assert seen["hostroot.ls"] == seen["root.ls"], seen


@pytest.mark.parametrize("via", ["cli", "lib"])
def test_etc_dir_links_never_expose_host_files(tmp_path: Path, via: str) -> None:
    """``--etc DIR`` with the same hostile entries: links stay links, their targets unbound."""
    tree = Tree(tmp_path)
    etc = hostile_image(tree, "etc")
    mounts = host_mountinfo()
    argv = ["/bin/sh", "-c", IMAGE_PROBE, "sh", "/etc", tree.o]
    if via == "cli":
        out = cli([*host_tops(), "--dev", "/dev", "--etc", str(etc), "--", *argv])
    else:
        out = library(lambda: base_ops().dev("/dev").etc(str(etc)), argv)
    seen = probe(out)
    assert_no_host_through_image(seen, tree)
    assert seen["hostroot.real"] == "/"
    assert seen["data.real"] == tree.o  # a path inside the container, where nothing is
    assert host_mountinfo() == mounts


# -- the property ---------------------------------------------------------------------------

#: what a planted name may be: a directory, or a link with one of these contents
PLANT_CONTENTS = (
    "/host{O}",
    "/host{O}/sub",
    "/host{O}/fifo",
    CLIMB + "host{O}",
    "..",
    "../..",
    "../../..",
    "/host",
    "/sysroot",
    "/sysroot/../host{O}",
    "/",
    "{O}",
    "a",
    "b/c",
    "../rw/a",
    "/nonexistent",
)
PLANT_NAMES = ("a", "b", "c", "a/b", "a/c", "b/a", "b/c")
#: destination components; HOSTO stands for host/<outside's components>
DEST_PARTS = ("a", "b", "c", "x", "..", "HOSTO")
PROPERTY_OPS = ("dir", "tmpfs", "symlink", "ro-bind-file", "bind-dir", "place", "tmp-overlay")

plants = st.dictionaries(
    st.sampled_from(PLANT_NAMES),
    st.one_of(st.just("dir"), st.sampled_from(PLANT_CONTENTS)),
    min_size=1,
)
dests = st.lists(st.sampled_from(DEST_PARTS), min_size=1, max_size=4)
op_lists = st.lists(st.tuples(st.sampled_from(PROPERTY_OPS), dests), min_size=1, max_size=3)


def plant_tree(tree: Tree, plant: dict[str, str]) -> None:
    """Create the planted entries, parents first; an entry under a non-directory is dropped.

    The test never writes through a link itself (``lstat`` of each parent), so
    whatever lands outside was put there by a container.
    """
    for name in sorted(plant, key=lambda n: n.count("/")):
        try:
            if not stat.S_ISDIR(os.lstat((tree.rw / name).parent).st_mode):
                continue
        except FileNotFoundError:
            continue
        if plant[name] == "dir":
            (tree.rw / name).mkdir()
        else:
            os.symlink(plant[name].format(O=tree.o), tree.rw / name)


def property_dest(tree: Tree, parts: list[str]) -> str:
    hosto = "host" + tree.o
    return "/rw/" + "/".join(hosto if p == "HOSTO" else p for p in parts)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("property")


@settings(
    max_examples=30,
    deadline=None,
    phases=(Phase.explicit, Phase.generate),  # a shrink would start hundreds of containers
    suppress_health_check=[HealthCheck.too_slow],
)
@given(plant=plants, ops=op_lists)
@example(plant={"a": "/host{O}"}, ops=[("dir", ["a", "x"])])
@example(plant={"a": "dir"}, ops=[("tmpfs", ["..", "..", "HOSTO", "x"])])
def test_any_ops_over_planted_links_leave_the_host_untouched(
    scratch: Path, plant: dict[str, str], ops: list[tuple[str, list[str]]]
) -> None:
    """Whatever links are planted and whatever ops aim through them: 0 or 125, host untouched."""
    tree = Tree(Path(tempfile.mkdtemp(dir=scratch)))
    try:
        plant_tree(tree, plant)
        mounts = host_mountinfo()
        args = ["--bind", str(tree.rw), "/rw"]
        for op, parts in ops:
            args += OPS[op].cli(tree, property_dest(tree, parts))
        # the program's binds come last: an op may legitimately cover / (``/rw/..``)
        out = cli([*args, *host_tops(), "--", "/bin/true"])
        assert out.status is not None, "hung"
        changes = tree.changes()
        if any(op == "bind-dir" for op, _ in ops):
            # src/dir is bound writable, so it is the container's to change: a
            # destination like /rw/.. puts it on / and the later ops land in it.
            changes = [c for c in changes if not c.split(" ", 2)[1].startswith("src/dir")]
        assert not changes, f"the host changed: {brief(changes)}\nafter exec {args}"
        assert host_mountinfo() == mounts, mount_changes(mounts, host_mountinfo())
        if out.status != 0:
            assert one_line_setup_error(out) is None, (args, out)
    finally:
        os.chmod(tree.base, 0o700)
        shutil.rmtree(tree.base, ignore_errors=True)

"""Start latency of hakurei against bubblewrap, measured in one run.

Every variant starts a container (or an interpreter) that runs ``/bin/true``
and is timed from spawn until its exit has been collected.  All variants run
in the same process, interleaved round by round with a rotating order, after a
warm-up, so machine load and cache state hit them alike; ratios between them
are meaningful even on a busy machine, absolute numbers less so.

Library starts are timed cold (``fork_server=False``: a fresh shim
interpreter per container) and through this process's fork server (after
``hakurei.prestart()``, checked through ``Container.via``), with public APIs
only.  Beside the wall time it reports the CPU time per start, which other
load on the machine does not move (see ``Cpu``), and a short untimed pause
after each run lets one container's teardown finish before the next starts.

Run it as an ordinary user against an *installed* hakurei (``bench/run.sh``
does both).  The CLI variant spawns the ``hakurei`` console script that sits
beside the running interpreter (the path a user runs), not ``python -m``.

Besides the table it prints where the time of one container goes: the
imports of the shim/init path (``-X importtime`` of ``init_argv()``) and of
the CLI process, checked against modules that must stay out of them, and
differences between profile variants that each leave out one part.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import resource
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio

import hakurei
from hakurei import seccomp
from hakurei.ops import Ops
from hakurei.profile import TOP_LEVEL, default_env, default_ops
from hakurei.spawn import SETUP_FD, init_argv
from hakurei.wire import encode

TRUE = "/bin/true"
#: <sys/mount.h>, for the profile variant that remounts / read-only
MS_RDONLY = 1

#: Targets from issue 10: p50 of the variant over p50 of bwrap (the CLI's is
#: its section 3, another change's; shown for reference).
TARGETS = {"f": 1.6, "g": 1.6, "a": 4.0}

#: Modules that must not load in the shim/init path (python-design.md,
#: DEVELOPERS rules): slow imports, or ones that pull in slow imports.
INIT_FORBIDDEN = (
    "trio",
    "pyseccomp",
    "hakurei.seccomp",
    "subprocess",
    "typing",
    "dataclasses",
    "enum",
    "json",
    "re",
    "signal",
    "tempfile",
    "random",
    "ctypes",
    "msgpack",
    "datetime",
)
#: Modules the CLI process must not load (it exists to avoid trio; hakurei
#: compiles the seccomp program through _ctypes, pyseccomp would run ldconfig).
CLI_FORBIDDEN = ("trio", "pyseccomp", "subprocess", "ctypes", "msgpack")


# -- variants ---------------------------------------------------------------------------


class Variant:
    """One thing to time: a command to spawn, or an in-process call."""

    def __init__(
        self,
        key: str,
        label: str,
        *,
        argv: list[str] | None = None,
        env: dict[str, str] | None = None,
        fds: list[tuple[int, int]] | None = None,
        call: Callable[[], int] | None = None,
        acall: Callable[[], Awaitable[int]] | None = None,
        before: Callable[[], None] | None = None,
        profile: bool = False,
        served: bool = False,
    ) -> None:
        self.key = key
        self.label = label
        self.argv = argv
        self.env = env if env is not None else {}
        self.fds = fds or []
        self.call = call
        self.acall = acall
        self.before = before
        self.profile = profile
        #: started through the fork server: its CPU time is the server's (see ``Cpu``)
        self.served = served
        self.samples: list[float] = []
        #: CPU seconds of each start: ours + reaped children + the server's tree
        self.cpu: list[float] = []
        #: the same split: (ours, reaped children, server tree), summed over the run
        self.cpu_parts = [0.0, 0.0, 0.0]
        #: the last run: (wall, CPU, CPU split), kept by ``measure`` after the warm-up
        self.pending: tuple[float, float, list[float]] = (0.0, 0.0, [])

    def command(self) -> str:
        return " ".join(self.argv) if self.argv else self.label

    async def once(self, devnull: int) -> int:
        """Time one run into ``pending``; its exit status."""
        if self.before is not None:
            self.before()
        if self.argv is not None:
            actions: list[tuple[Any, ...]] = [
                (os.POSIX_SPAWN_DUP2, devnull, 0),
                (os.POSIX_SPAWN_DUP2, devnull, 1),
                (os.POSIX_SPAWN_DUP2, devnull, 2),
            ]
            actions += [(os.POSIX_SPAWN_DUP2, src, dst) for src, dst in self.fds]
            c0 = CPU.now()
            t0 = time.perf_counter()
            pid = os.posix_spawn(self.argv[0], self.argv, self.env, file_actions=actions)
            _, st = os.waitpid(pid, 0)
            t1 = time.perf_counter()
            status = os.waitstatus_to_exitcode(st)
        elif self.acall is not None:
            c0 = CPU.now()
            t0 = time.perf_counter()
            status = await self.acall()
            t1 = time.perf_counter()
        else:
            assert self.call is not None
            c0 = CPU.now()
            t0 = time.perf_counter()
            status = self.call()
            t1 = time.perf_counter()
        parts = [b - a for a, b in zip(c0, CPU.now(), strict=True)]
        self.pending = (t1 - t0, sum(parts), parts)
        return status

    def diagnose(self) -> str:
        """Stderr of one more run, for the failure message."""
        if self.argv is None:
            return "(in-process variant: no stderr captured)"
        with tempfile.TemporaryFile() as err:
            actions: list[tuple[Any, ...]] = [(os.POSIX_SPAWN_DUP2, err.fileno(), 2)]
            actions += [(os.POSIX_SPAWN_DUP2, src, dst) for src, dst in self.fds]
            if self.before is not None:
                self.before()
            pid = os.posix_spawn(self.argv[0], self.argv, self.env, file_actions=actions)
            os.waitpid(pid, 0)
            err.seek(0)
            return err.read().decode(errors="replace").strip()[-2000:]


class Cpu:
    """CPU time (user + system) spent on our behalf, in seconds.

    Ours (``RUSAGE_SELF``) plus every child we reaped (``RUSAGE_CHILDREN``:
    a cold shim, which reaped init, which reaped the program; bwrap; the CLI)
    plus the fork server's own time and that of the shims *it* reaped, from
    its ``/proc/PID/stat`` (utime + stime + cutime + cstime): a served shim is
    not our child, so no rusage of ours ever sees it.  The server's part has
    clock-tick resolution (10 ms at USER_HZ 100), so per-start values of the
    served variants are only meaningful as a mean over many starts.
    """

    def __init__(self) -> None:
        self.server: int | None = None
        self.tick = os.sysconf("SC_CLK_TCK")

    def find_server(self) -> int | None:
        """Our child named ``hakurei-forksrv`` (``prestart()`` started it), or None."""
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/children") as f:
                    kids = [int(x) for x in f.read().split()]
            except OSError:
                continue
            for pid in kids:
                try:
                    with open(f"/proc/{pid}/comm") as f:
                        if f.read().strip() == "hakurei-forksrv":
                            self.server = pid
                            return pid
                except OSError:
                    pass
        self.server = None
        return None

    def server_ticks(self) -> int:
        if self.server is None:
            return 0
        try:
            with open(f"/proc/{self.server}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return 0
        # after "(comm)": state is fields[0]; utime..cstime are stat fields 14-17
        return sum(int(x) for x in fields[11:15])

    def now(self) -> tuple[float, float, float]:
        """(ours, reaped children's, the server tree's) CPU seconds so far."""
        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (
            me.ru_utime + me.ru_stime,
            kids.ru_utime + kids.ru_stime,
            self.server_ticks() / self.tick,
        )


CPU = Cpu()


def merged_usr_args(root: str = "/") -> list[str]:
    """bwrap arguments that reproduce the host's /bin, /lib*, /sbin as the profile does."""
    args: list[str] = []
    for path in TOP_LEVEL:
        host = os.path.join(root, path.lstrip("/"))
        if os.path.islink(host):
            args += ["--symlink", os.readlink(host), path]
        elif os.path.isdir(host):
            args += ["--ro-bind", path, path]
    return args


def bwrap_argv(bwrap: str, seccomp_fd: int | None = None) -> list[str]:
    """The closest bwrap equivalent of hakurei's default profile.

    Differences that remain: /etc is a plain read-only bind (hakurei builds
    relative links into it and places its own passwd and group), /dev stays
    writable, bwrap sets no landlock scope, and without ``--seccomp`` bwrap
    loads no syscall filter at all.
    """
    argv = [bwrap, "--unshare-all", "--ro-bind", "/usr", "/usr", *merged_usr_args()]
    argv += ["--ro-bind", "/etc", "/etc", "--proc", "/proc", "--dev", "/dev"]
    argv += ["--mqueue", "/dev/mqueue", "--tmpfs", "/dev/shm", "--tmpfs", "/tmp"]
    argv += ["--remount-ro", "/", "--new-session", "--die-with-parent"]
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
    return [*argv, TRUE]


def bwrap_link(hk: str) -> str:
    """A ``bwrap`` symlink to the hakurei script, in a temp dir removed at exit: the front end."""
    import atexit
    import shutil
    import tempfile

    d = tempfile.mkdtemp(prefix="hk-bwrap-")
    atexit.register(shutil.rmtree, d, True)
    link = os.path.join(d, "bwrap")
    os.symlink(hk, link)
    return link


def console_script(explicit: str | None) -> str:
    """The installed ``hakurei`` entry point beside this interpreter (not resolved)."""
    path = explicit or os.path.join(os.path.dirname(sys.executable), "hakurei")
    if not os.access(path, os.X_OK):
        sys.exit(f"bench: no executable hakurei console script at {path} (use --hakurei)")
    return path


def shebang(path: str) -> str:
    try:
        with open(path, "rb") as f:
            line = f.readline(512)
    except OSError:
        return "?"
    return line[2:].decode(errors="replace").strip() if line.startswith(b"#!") else "(binary)"


def build_variants(args: argparse.Namespace, hk: str, bpf_fd: int) -> list[Variant]:
    uid, gid = os.getuid(), os.getgid()
    env = dict(os.environ)
    py = sys.executable
    ops = default_ops(uid, gid)
    cenv = default_env()
    kw: dict[str, Any] = {"env": cenv, "uid": uid, "gid": gid, "seccomp_presets": seccomp.STRICT}

    def trio_run(served: bool, ops: Ops = ops, **kw: Any) -> Callable[[], Awaitable[int]]:
        async def run() -> int:
            return (await hakurei.run(TRUE, ops=ops, fork_server=served, **kw)).returncode

        return run

    def sync_run(served: bool, ops: Ops = ops, **kw: Any) -> Callable[[], int]:
        def run() -> int:
            return hakurei.run_sync(TRUE, ops=ops, fork_server=served, **kw).returncode

        return run

    def rewind() -> None:
        os.lseek(bpf_fd, 0, os.SEEK_SET)

    vs = [
        Variant("a", "hakurei exec -- /bin/true (CLI)", argv=[hk, "exec", "--", TRUE], env=env),
        Variant("b", "await hakurei.run(), cold", acall=trio_run(False, **kw)),
        Variant("c", "hakurei.run_sync(), cold", call=sync_run(False, **kw)),
        Variant("f", "await hakurei.run(), fork server", acall=trio_run(True, **kw), served=True),
        Variant("g", "hakurei.run_sync(), fork server", call=sync_run(True, **kw), served=True),
        Variant("d", "bwrap, same mounts, no seccomp", argv=bwrap_argv(args.bwrap), env=env),
        Variant(
            "h",
            "hakurei bwrap (a bwrap symlink), the same command line as (d)",
            argv=bwrap_argv(bwrap_link(hk)),
            env=env,
        ),
        Variant(
            "d2",
            "bwrap, same mounts, hakurei's seccomp BPF",
            argv=bwrap_argv(args.bwrap, 9),
            env=env,
            fds=[(bpf_fd, 9)],
            before=rewind,
        ),
        Variant(
            "e", "python -I -S -c pass (interpreter floor)", argv=[py, "-I", "-S", "-c", "pass"]
        ),
    ]
    if args.profile:
        # The shim's own command line, stopped before it calls main().
        imports_only = init_argv(
            "import sys;sys.path[0:0]=sys.argv[1:];from hakurei.init.shim import main"
        )
        usr = Ops().bind("/usr", "/usr")
        for path in TOP_LEVEL:
            if os.path.islink(path):
                usr.link(path, os.readlink(path))
            elif os.path.isdir(path):
                usr.bind(path, path)
        plain_etc = Ops(usr).bind("/etc", "/etc").proc("/proc").dev("/dev", mqueue=True)
        plain_etc.tmpfs("/tmp", 0, 0o1777).remount("/", MS_RDONLY)
        bare: dict[str, Any] = {"env": cenv, "uid": uid, "gid": gid, "seccomp_disable": True}
        vs += [
            Variant(
                "p1", "shim imports only (cold shim, no main())", argv=imports_only, profile=True
            ),
            Variant(
                "p2",
                "run_sync(), fork server, default ops, no seccomp",
                call=sync_run(True, **bare),
                profile=True,
                served=True,
            ),
            Variant(
                "p3",
                "run_sync(), fork server, /etc a plain ro bind (as bwrap), no seccomp",
                call=sync_run(True, plain_etc, **bare),
                profile=True,
                served=True,
            ),
            Variant(
                "p4",
                "run_sync(), fork server, /usr + links only, no seccomp",
                call=sync_run(True, usr, **bare),
                profile=True,
                served=True,
            ),
            Variant(
                "p5",
                "hakurei --help (CLI process, no container)",
                argv=[hk, "--help"],
                env=env,
                profile=True,
            ),
            Variant(
                "p6",
                "python -c pass (with site, as the console script)",
                argv=[py, "-c", "pass"],
                env=env,
                profile=True,
            ),
        ]
    return vs


async def check_served() -> int:
    """Start the fork server (``prestart()``) and check a start really goes through it.

    ``fork_server=True`` falls back to a cold start when the server cannot be
    had; a benchmark of the server must not silently measure the cold path.
    Returns the server's pid.
    """
    if not hakurei.prestart():
        sys.exit("bench: hakurei.prestart() could not start a fork server here")
    async with hakurei.Container(TRUE, ops=default_ops(os.getuid(), os.getgid())) as c:
        await c.serve()
        await c.wait()
        via = c.via
    if via != "fork server":
        sys.exit(f"bench: a start after prestart() went {via!r}, not through the fork server")
    pid = CPU.find_server()
    if pid is None:
        sys.exit("bench: no hakurei-forksrv child after prestart()")
    return pid


# -- the loop ---------------------------------------------------------------------------


async def measure(variants: list[Variant], rounds: int, warmup: int, settle: float) -> None:
    """Round-robin, rotating which variant goes first; the first ``warmup`` rounds are dropped.

    After each run the loop pauses ``settle`` seconds (untimed), so the exit
    work of one container (namespace teardown is partly deferred in the
    kernel) is not billed to the next variant.
    """
    server = await check_served()
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        for r in range(warmup + rounds):
            k = r % len(variants)
            for v in variants[k:] + variants[:k]:
                status = await v.once(devnull)
                if status != 0:
                    sys.exit(
                        f"bench: {v.key} ({v.label}) exited with status {status}\n"
                        f"  command: {v.command()}\n  stderr: {v.diagnose()}"
                    )
                if r >= warmup:
                    v.samples.append(v.pending[0])
                    v.cpu.append(v.pending[1])
                    for i, x in enumerate(v.pending[2]):
                        v.cpu_parts[i] += x
                time.sleep(settle)
        if CPU.find_server() != server:
            sys.exit("bench: the fork server changed during the run (restarted?)")
    finally:
        os.close(devnull)


def pct(samples: list[float], p: int) -> float:
    """Nearest-rank percentile, in ms."""
    s = sorted(samples)
    i = max(0, min(len(s) - 1, -(-p * len(s) // 100) - 1))
    return s[i] * 1e3


# -- imports ----------------------------------------------------------------------------


class ImportLine:
    def __init__(self, name: str, depth: int, self_us: int, cum_us: int) -> None:
        self.name = name
        self.depth = depth
        self.self_us = self_us
        self.cum_us = cum_us
        self.parent = ""


def parse_importtime(text: str) -> list[ImportLine]:
    """``-X importtime`` lines; each gets the name of the module that imported it."""
    lines: list[ImportLine] = []
    for raw in text.splitlines():
        if not raw.startswith("import time:"):
            continue
        parts = raw[len("import time:") :].split("|")
        if len(parts) != 3 or not parts[0].strip().isdigit():
            continue
        field = parts[2].rstrip()
        depth = (len(field) - len(field.lstrip(" ")) - 1) // 2
        lines.append(ImportLine(field.strip(), depth, int(parts[0]), int(parts[1])))
    # A module is printed after its children: the first later line one level
    # up is the importer.
    for i, ln in enumerate(lines):
        for later in lines[i + 1 :]:
            if later.depth < ln.depth:
                ln.parent = later.name
                break
    return lines


def forbidden_hits(lines: list[ImportLine], names: tuple[str, ...]) -> list[str]:
    """One entry per forbidden name that was imported, saying by whom."""
    hits = []
    for bad in names:
        found = [ln for ln in lines if ln.name == bad or ln.name.startswith(bad + ".")]
        if found:
            ln = next((x for x in found if x.name == bad), found[0])
            via = f"imported by {ln.parent}" if ln.parent else "imported at run time"
            hits.append(f"{ln.name} ({via}, {ln.cum_us / 1e3:.1f} ms)")
    return hits


def total_ms(lines: list[ImportLine]) -> float:
    return sum(ln.cum_us for ln in lines if ln.depth == 0) / 1e3


def median_run(runs: list[list[ImportLine]]) -> list[ImportLine]:
    """The first run's tree with each module's median times over all runs."""
    times: dict[str, list[tuple[int, int]]] = {}
    for run in runs:
        for ln in run:
            times.setdefault(ln.name, []).append((ln.self_us, ln.cum_us))
    out = []
    for ln in runs[0]:
        t = times[ln.name]
        m = ImportLine(
            ln.name,
            ln.depth,
            int(statistics.median(x[0] for x in t)),
            int(statistics.median(x[1] for x in t)),
        )
        m.parent = ln.parent
        out.append(m)
    return out


def spawn_capture(
    argv: list[str], env: dict[str, str], setup: bytes | None = None
) -> tuple[int, str]:
    """Run ``argv`` with stderr captured; with ``setup``, fd 3 is a socket carrying it.

    A socket, as a cold spawn's: the shim reads the record from it and writes
    its reports back on it.
    """
    with tempfile.TemporaryFile() as err:
        devnull = os.open(os.devnull, os.O_RDWR)
        actions: list[tuple[Any, ...]] = [
            (os.POSIX_SPAWN_DUP2, devnull, 0),
            (os.POSIX_SPAWN_DUP2, devnull, 1),
            (os.POSIX_SPAWN_DUP2, err.fileno(), 2),
        ]
        ours = theirs = None
        if setup is not None:
            ours, theirs = socket.socketpair()
            actions.append((os.POSIX_SPAWN_DUP2, theirs.fileno(), SETUP_FD))
        try:
            pid = os.posix_spawn(argv[0], argv, env, file_actions=actions)
        finally:
            os.close(devnull)
            if theirs is not None:
                theirs.close()
        if ours is not None:
            assert setup is not None
            ours.sendall(setup)
            ours.shutdown(socket.SHUT_WR)
            while ours.recv(4096):
                pass  # the shim's and init's reports
            ours.close()
        _, st = os.waitpid(pid, 0)
        err.seek(0)
        return os.waitstatus_to_exitcode(st), err.read().decode(errors="replace")


def importtime(
    argv: list[str], env: dict[str, str], setup: bytes | None, runs: int
) -> tuple[list[ImportLine], str]:
    """Median import tree over ``runs`` runs; on failure, ([], why)."""
    trees = []
    for _ in range(runs):
        status, text = spawn_capture(argv, env, setup)
        lines = parse_importtime(text)
        if status != 0 or not lines:
            return [], f"status {status}: {text.strip()[-500:]}"
        trees.append(lines)
    return median_run(trees), ""


def summarise(lines: list[ImportLine], base: set[str], forbidden: tuple[str, ...]) -> list[str]:
    own = [ln for ln in lines if ln.name not in base]
    deps = [
        ln for ln in own if ln.parent.startswith("hakurei") and not ln.name.startswith("hakurei")
    ]
    lazy = [ln for ln in own if ln.depth == 0 and not ln.name.startswith("hakurei")]
    hakurei_self = sum(ln.self_us for ln in own if ln.name.startswith("hakurei")) / 1e3
    out = [
        f"- all imports {total_ms(lines):.1f} ms; {len(own)} modules beyond the baseline "
        f"interpreter's, {sum(ln.self_us for ln in own) / 1e3:.1f} ms (self times summed), "
        f"of which hakurei's own modules {hakurei_self:.1f} ms",
        "- imported by hakurei code (cumulative ms): "
        + (", ".join(f"{ln.name} {ln.cum_us / 1e3:.1f} (by {ln.parent})" for ln in deps) or "-"),
    ]
    if lazy:
        out.append(
            "- imported at run time, outside any import (cumulative ms): "
            + ", ".join(f"{ln.name} {ln.cum_us / 1e3:.1f}" for ln in lazy)
        )
    hits = forbidden_hits(lines, forbidden)
    out.append(
        f"- must not be imported ({', '.join(forbidden)}): "
        + ("; ".join(hits) if hits else "none is")
    )
    return out


def import_report(hk: str, runs: int) -> list[str]:
    out = [
        "",
        f"## Imports of one container (`-X importtime`, median of {runs} runs per module)",
        "",
    ]
    uid, gid = os.getuid(), os.getgid()
    py = sys.executable
    base, why = importtime([py, "-X", "importtime", "-I", "-S", "-c", "pass"], {}, None, runs)
    if not base:
        return [*out, f"baseline interpreter failed: {why}"]

    init = init_argv()
    argv = [init[0], "-X", "importtime", *init[1:]]
    setup = default_setup(uid, gid)
    lines, why = importtime(argv, {"HAKUREI_SETUP": str(SETUP_FD)}, setup, runs)
    if not lines:
        return [*out, f"shim run failed: {why}"]
    out.append(
        f"shim/init path (`{' '.join(argv[:4])} ...` from `init_argv()`, a real container "
        f"running {TRUE}; baseline `python -I -S -c pass`: {total_ms(base):.1f} ms of imports):"
    )
    out += summarise(lines, {ln.name for ln in base}, INIT_FORBIDDEN)

    env = dict(os.environ)
    base, why = importtime([py, "-I", "-S", "-X", "importtime", "-c", "pass"], env, None, runs)
    if not base:
        return [*out, f"baseline interpreter failed: {why}"]
    # The command execs this venv's python with -I -S on itself (bin/hakurei), and -I
    # ignores PYTHONPROFILEIMPORTTIME: the same command line, with -X importtime added.
    cli = [py, "-I", "-S", "-X", "importtime", hk, "exec", "--", TRUE]
    lines, why = importtime(cli, env, None, runs)
    if not lines:
        return [*out, f"CLI run failed: {why}"]
    out.append("")
    out.append(
        f"CLI process (`python -I -S -X importtime {hk} exec -- {TRUE}`, as the command starts "
        f"itself; baseline `python -I -S -c pass`: {total_ms(base):.1f} ms of imports):"
    )
    out += summarise(lines, {ln.name for ln in base}, CLI_FORBIDDEN)
    return out


# -- phases -----------------------------------------------------------------------------

#: Run as ``python -I -S -c PHASE_CODE <dirs>`` instead of the shim's own
#: code: it wraps a few shim/init functions (by name; a missing one is
#: skipped) so each writes a CLOCK_MONOTONIC stamp to fd 9, then runs the
#: shim as usual.  It imports nothing the shim does not; a stamp is one write.
PHASE_CODE = r"""
import sys, os, time
sys.path[0:0] = sys.argv[1:]
def mark(tag):
    os.write(9, b"%d %d %s\n" % (time.perf_counter_ns(), os.getpid(), tag.encode()))
mark("interpreter started")
from hakurei.init import shim, init
from hakurei.init.kernel import Kernel
from hakurei.ops import REGISTRY
mark("imports done")
def wrap(obj, name, tag, first=False):
    f = getattr(obj, name, None)
    if f is None:
        return
    def w(*a, **k):
        if first:
            mark(tag)
        r = f(*a, **k)
        if not first:
            mark(tag)
        return r
    setattr(obj, name, w)
wrap(shim, "receive", "setup read and decoded")
wrap(Kernel, "unshare", "unshare")
wrap(shim, "write_maps", "id maps written")
wrap(init, "main", "init forked (PID 1)", first=True)
wrap(init.Init, "identity", "pdeathsig, name, dumpable")
wrap(Kernel, "pivot_root", "pivot_root")
for cls in REGISTRY.values():
    wrap(cls, "apply", "op " + cls.__name__)
wrap(init.Init, "filesystem", "host detached, second pivot")
wrap(init.Init, "privileges", "caps, no_new_privs, landlock, seccomp")
wrap(init.Init, "start", "program spawned")
wrap(init.Init, "program_status", "program reaped")
keep_only = shim.keep_only
shim.keep_only = lambda fds, *rest: keep_only([*fds, 9], *rest)
real_exit = os._exit
def _exit(status):
    mark("exit")
    real_exit(status)
os._exit = _exit
shim.main()
"""


def default_setup(uid: int, gid: int) -> bytes:
    """The encoded record of a default-profile /bin/true container, as the CLI builds it."""
    params = hakurei.Params(
        TRUE,
        ops=default_ops(uid, gid),
        env=default_env(),
        uid=uid,
        gid=gid,
        seccomp_presets=seccomp.STRICT,
    )
    return encode(params.resolve(0))


def phase_report(runs: int) -> list[str]:
    """Median time of each step of one container, from stamps written by the shim and init."""
    uid, gid = os.getuid(), os.getgid()
    setup = default_setup(uid, gid)
    argv = init_argv(PHASE_CODE)
    per_tag: dict[str, list[float]] = {}
    order: list[str] = []
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        for _ in range(runs):
            stamps_r, stamps_w = os.pipe2(os.O_CLOEXEC)
            ours, theirs = socket.socketpair()  # as a cold spawn's setup socket
            actions: list[tuple[Any, ...]] = [
                (os.POSIX_SPAWN_DUP2, devnull, 0),
                (os.POSIX_SPAWN_DUP2, devnull, 1),
                (os.POSIX_SPAWN_DUP2, devnull, 2),
                (os.POSIX_SPAWN_DUP2, theirs.fileno(), SETUP_FD),
                (os.POSIX_SPAWN_DUP2, stamps_w, 9),
            ]
            t0 = time.perf_counter_ns()
            pid = os.posix_spawn(
                argv[0], argv, {"HAKUREI_SETUP": str(SETUP_FD)}, file_actions=actions
            )
            theirs.close()
            os.close(stamps_w)
            ours.sendall(setup)
            ours.shutdown(socket.SHUT_WR)
            _, st = os.waitpid(pid, 0)
            ours.close()
            t1 = time.perf_counter_ns()
            chunks = []
            while chunk := os.read(stamps_r, 65536):
                chunks.append(chunk)
            os.close(stamps_r)
            if os.waitstatus_to_exitcode(st) != 0:
                return ["", f"(phase timing skipped: instrumented shim exited with {st:#x})"]
            stamps: list[tuple[int, int, str]] = []
            for line in b"".join(chunks).decode().splitlines():
                ts, ps, tag = line.split(" ", 2)
                stamps.append((int(ts), int(ps), tag))
            stamps.sort()
            names = {pid: "shim"}
            seen: dict[str, int] = {}
            prev = t0
            run_order = []
            for t, p, raw_tag in stamps:
                who = names.setdefault(p, "init" if len(names) == 1 else f"pid {p}")
                tag = f"{who} exited" if raw_tag == "exit" else raw_tag
                seen[tag] = seen.get(tag, 0) + 1
                key = tag if seen[tag] == 1 else f"{tag} #{seen[tag]}"
                per_tag.setdefault(key, []).append((t - prev) / 1e6)
                run_order.append(key)
                prev = t
            per_tag.setdefault("parent's wait returned", []).append((t1 - prev) / 1e6)
            run_order.append("parent's wait returned")
            if not order:
                order = run_order
    finally:
        os.close(devnull)
    out = [
        "",
        f"## Steps of one container (stamps from an instrumented shim, median of {runs} runs)",
        "",
        "Each row is the time since the previous row; the first row starts at posix_spawn.",
        "",
        "| step (ends when) | ms |",
        "|---|---:|",
    ]
    total = 0.0
    for key in order:
        ms = statistics.median(per_tag[key])
        total += ms
        out.append(f"| {key} | {ms:.2f} |")
    out.append(f"| **sum of medians** | **{total:.1f}** |")
    return out


# -- report -----------------------------------------------------------------------------


def machine() -> list[str]:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    osname = "?"
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    osname = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return [
        f"- date: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        f"- machine: {osname}, kernel {platform.release()}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs ({cpu})",
        f"- python: {sys.version.split()[0]} at {sys.executable}",
    ]


def bytecode_state() -> str:
    """Missing .pyc files cost ~4 ms per container (an unprivileged user cannot write them)."""
    from hakurei.init import shim

    assert shim.__file__ is not None
    pyc = importlib.util.cache_from_source(shim.__file__)
    return "present" if os.path.exists(pyc) else f"MISSING ({pyc}): every start compiles"


def table(variants: list[Variant], rounds: int, warmup: int, settle: float) -> list[str]:
    ref = next(v for v in variants if v.key == "d")
    ref50 = pct(ref.samples, 50)
    ref_cpu = statistics.fmean(ref.cpu) * 1e3
    out = [
        "",
        f"## Start latency, spawn → `{TRUE}` exits ({rounds} rounds after {warmup} warm-up, "
        f"interleaved, {settle * 1e3:.0f} ms settle after each run)",
        "",
        "| | variant | p50 ms | p90 ms | min ms | p50 / bwrap (d) | CPU ms/start | CPU / bwrap |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for v in variants:
        p50 = pct(v.samples, 50)
        cpu = statistics.fmean(v.cpu) * 1e3
        out.append(
            f"| {v.key} | {v.label} | {p50:.1f} | {pct(v.samples, 90):.1f} | "
            f"{min(v.samples) * 1e3:.1f} | {p50 / ref50:.2f}x | {cpu:.1f} | {cpu / ref_cpu:.2f}x |"
        )
    out += [
        "",
        "| | CPU ms/start: this process | reaped children | fork server + its shims |",
        "|---|---:|---:|---:|",
    ]
    for v in variants:
        if v.argv is None:
            ours, kids, server = (x / len(v.cpu) * 1e3 for x in v.cpu_parts)
            out.append(f"| {v.key} | {ours:.1f} | {kids:.1f} | {server:.1f} |")
    out += [
        "",
        "CPU ms/start: the mean over the measured rounds of user + system time of this process,",
        "its reaped children (cold shim, bwrap, CLI: whole trees) and the fork server with the",
        "shims it reaped (from its /proc/PID/stat, clock-tick resolution: only the mean is",
        "meaningful for the served variants f, g, p2-p4).",
        "",
    ]
    by_key = {v.key: v for v in variants}
    for key, target in TARGETS.items():
        if key not in by_key:
            continue
        ratio = pct(by_key[key].samples, 50) / ref50
        verdict = "met" if ratio <= target else f"MISSED by {ratio / target - 1:.0%}"
        out.append(f"- ({key})/(d) p50 = {ratio:.2f}x (target ≤ {target}x): {verdict}")
    return out


def differences(variants: list[Variant]) -> list[str]:
    """What each part costs: differences between variants timed in the same rounds."""
    if not any(x.profile for x in variants):
        return []
    p50 = {x.key: pct(x.samples, 50) for x in variants}
    low = {x.key: min(x.samples) * 1e3 for x in variants}
    cpu = {x.key: statistics.fmean(x.cpu) * 1e3 for x in variants}
    rows = [
        ("what the fork server saves: (c) - (g)", "c", "g"),
        ("trio API instead of the blocking one, cold: (b) - (c)", "b", "c"),
        ("trio API instead of the blocking one, fork server: (f) - (g)", "f", "g"),
        ("fork server: seccomp (record + load in init): (g) - (p2)", "g", "p2"),
        ("fork server: auto /etc + passwd/group instead of a ro bind: (p2) - (p3)", "p2", "p3"),
        ("fork server: /etc bind, /proc, /dev, /tmp, ro remount: (p3) - (p4)", "p3", "p4"),
        ("fork server: container with /usr + links only: (p4)", "p4", ""),
        ("  the same over bwrap's whole start: (p4) - (d)", "p4", "d"),
        ("cold: shim interpreter start: (e)", "e", ""),
        ("cold: shim/init imports: (p1) - (e)", "p1", "e"),
        ("cold: the rest (setup, namespaces, fork, mounts, spawn, exit): (c) - (p1)", "c", "p1"),
        ("CLI process before and around the container: (a) - (c)", "a", "c"),
        ("  interpreter + site + import hakurei.cli: (p5)", "p5", ""),
        ("  of which interpreter + site: (p6)", "p6", ""),
        ("bwrap loading the same BPF: (d2) - (d)", "d2", "d"),
    ]
    out = [
        "",
        "## Where the time goes (differences between the variants above, ms)",
        "",
        "| part | by p50 | by min | by CPU |",
        "|---|---:|---:|---:|",
    ]
    for name, a, b in rows:
        d50 = p50[a] - (p50[b] if b else 0.0)
        dmin = low[a] - (low[b] if b else 0.0)
        dcpu = cpu[a] - (cpu[b] if b else 0.0)
        out.append(f"| {name} | {d50:.1f} | {dmin:.1f} | {dcpu:.1f} |")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", "--rounds", type=int, default=100, help="measured rounds (default 100)")
    p.add_argument("--warmup", type=int, default=10, help="dropped rounds (default 10)")
    p.add_argument("--hakurei", help="console script (default: beside this interpreter)")
    p.add_argument("--bwrap", default="/usr/bin/bwrap")
    p.add_argument(
        "--settle", type=float, default=5.0, help="ms to pause after each run (default 5)"
    )
    p.add_argument("--no-profile", dest="profile", action="store_false", help="skip p* variants")
    p.add_argument("--no-imports", dest="imports", action="store_false", help="skip -X importtime")
    p.add_argument("--import-runs", type=int, default=5, help="-X importtime runs (default 5)")
    p.add_argument("--no-phases", dest="phases", action="store_false", help="skip step timing")
    p.add_argument("--phase-runs", type=int, default=30, help="instrumented runs (default 30)")
    args = p.parse_args(argv)
    if os.geteuid() == 0:
        sys.exit("bench: run as an ordinary user (bench/run.sh does that when started as root)")
    if args.rounds < 1:
        sys.exit("bench: --rounds must be at least 1")
    hk = console_script(args.hakurei)

    bpf, _ = seccomp.filter_for(presets=seccomp.STRICT, flags=0)
    assert bpf is not None
    bpf_fd = os.memfd_create("hakurei-bpf", os.MFD_CLOEXEC)
    os.write(bpf_fd, bpf)

    variants = build_variants(args, hk, bpf_fd)
    load0 = os.getloadavg()
    t0 = time.monotonic()
    trio.run(measure, variants, args.rounds, args.warmup, args.settle / 1e3)
    elapsed = time.monotonic() - t0
    load1 = os.getloadavg()

    out = ["# hakurei start latency", "", *machine()]
    out += [
        f"- hakurei console script: {hk} (shebang `#!{shebang(hk)}`), spawned with posix_spawn",
        f"- bwrap: {args.bwrap}; shim bytecode: {bytecode_state()}",
        f"- user: uid {os.getuid()}, libseccomp {seccomp.libseccomp_version()}",
        f"- load average before/after: {load0[0]:.2f} / {load1[0]:.2f}; timed loop {elapsed:.0f} s",
    ]
    out += table(variants, args.rounds, args.warmup, args.settle / 1e3)
    out += differences(variants)
    out += ["", "Commands:"]
    out += [f"- ({v.key}) `{v.command()}`" for v in variants if v.argv]
    out.append(
        "- (b), (c), (f), (g): default_ops(uid, gid) built once, default_env(), "
        "seccomp_presets=STRICT, same uid/gid as the CLI, fork_server=False (b, c) or True "
        "(f, g; after hakurei.prestart(), checked through Container.via); everything runs "
        "inside one trio.run around the whole loop"
    )
    if args.imports:
        out += import_report(hk, args.import_runs)
    if args.phases:
        out += phase_report(args.phase_runs)
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

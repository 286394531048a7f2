"""What the fork server does at scale: concurrency, memory, first start, death.

Four measurements from issue 10, each comparing the fork server (the default
for library starts), the cold path (``fork_server=False``) and bubblewrap:

* **concurrent**: 200 starts of ``/bin/true`` from 200 tasks of one trio
  program, wall time until all have exited, and how many failed (target:
  server ≤ 1.3x bwrap through ``trio.run_process``, zero errors);
* **pss**: N containers running ``sleep``, the PSS (``/proc/PID/smaps_rollup``)
  of every process of each container (shim, init, program; bwrap's two and
  the program) summed, plus the server's own PSS, divided by N (target ≤ 3 MB);
* **first**: a fresh interpreter's first ``run_sync`` (import and ops built
  before the clock starts), cold against the server without ``prestart()``:
  the first container of a process must be no slower than a cold start;
* **death**: a caller with a few running containers is SIGKILLed; how long
  until its server and every process of its containers are gone (pidfds
  polled from here).

Run as an ordinary user against an installed hakurei: ``bench/run.sh
bench_server.py``.  init makes itself non-dumpable, so its smaps_rollup is
unreadable to the user that started it; started as root with ``--user``, this
script keeps a root process that only reads smaps_rollup on request, and runs
everything else as that user.  Without root, PSS rows that miss a process say so.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import select
import signal
import socket
import statistics
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

TRUE = "/bin/true"
SLEEP = "/bin/sleep"
KINDS = ("server", "cold", "bwrap")
#: Targets from issue 10.
CONCURRENT_TARGET = 1.3
PSS_TARGET_MB = 3.0


# -- helpers shared by every mode ---------------------------------------------------------


def children(pid: int) -> list[int]:
    """The children of ``pid`` (all its threads'), from /proc (CONFIG_PROC_CHILDREN)."""
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return out


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children(p)
    return out


def comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def server_pid() -> int | None:
    """This process's fork server: its child named ``hakurei-forksrv``."""
    return next((p for p in children(os.getpid()) if comm(p) == "hakurei-forksrv"), None)


def wait_running(pids: list[int], name: str, timeout: float = 30.0) -> list[list[int]]:
    """The process tree of each pid once its leaf runs ``name`` (poll /proc every ms)."""
    deadline = time.monotonic() + timeout
    trees = [tree(p) for p in pids]
    while not all(any(comm(q) == name for q in t) for t in trees):
        if time.monotonic() > deadline:
            sys.exit(f"bench: containers did not all reach {name!r} within {timeout:.0f} s")
        time.sleep(0.001)
        trees = [tree(p) for p in pids]
    return trees


def read_pss(pids: list[int]) -> dict[int, list[int] | None]:
    """[Pss, Private_Dirty] in kB of each pid (None if unreadable), through the root
    reader if there is one."""
    relay = os.environ.get("HK_BENCH_PSS_FD")
    if relay is not None:
        s = socket.socket(fileno=int(relay))
        try:
            s.sendall(json.dumps(pids).encode() + b"\n")
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    sys.exit("bench: the root PSS reader went away")
                reply += chunk
        finally:
            s.detach()
        return {int(k): v for k, v in json.loads(reply).items()}
    return {p: pss_of(p) for p in pids}


def pss_of(pid: int) -> list[int] | None:
    """[Pss, Private_Dirty] of ``pid`` in kB, or None if unreadable."""
    found: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("Pss", "Private_Dirty"):
                    found[key] = int(rest.split()[0])
    except OSError:
        return None
    return [found.get("Pss", 0), found.get("Private_Dirty", 0)]


def bwrap_argv(bwrap: str, program: list[str]) -> list[str]:
    """bench_start.py's bwrap reference: hakurei's default mounts, no seccomp."""
    argv = [bwrap, "--unshare-all", "--ro-bind", "/usr", "/usr"]
    for path in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    argv += ["--ro-bind", "/etc", "/etc", "--proc", "/proc", "--dev", "/dev"]
    argv += ["--mqueue", "/dev/mqueue", "--tmpfs", "/dev/shm", "--tmpfs", "/tmp"]
    argv += ["--remount-ro", "/", "--new-session", "--die-with-parent"]
    return [*argv, *program]


def hk_kwargs() -> dict[str, Any]:
    """The default profile as bench_start.py's library variants use it."""
    from hakurei import seccomp
    from hakurei.profile import default_env, default_ops

    uid, gid = os.getuid(), os.getgid()
    return {
        "ops": default_ops(uid, gid),
        "env": default_env(),
        "uid": uid,
        "gid": gid,
        "seccomp_presets": seccomp.STRICT,
    }


def raise_nofile() -> None:
    """200 containers hold ~1000 fds here (and in the server, which inherits this)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def pct(samples: list[float], p: int) -> float:
    """Nearest-rank percentile."""
    s = sorted(samples)
    return s[max(0, min(len(s) - 1, -(-p * len(s) // 100) - 1))]


async def served_check() -> None:
    """``prestart()`` and a check that a start really goes through the server.

    ``fork_server=True`` falls back to cold when no server can be had; the
    server's numbers must not silently be the cold path's.
    """
    import hakurei

    if not hakurei.prestart():
        sys.exit("bench: hakurei.prestart() could not start a fork server")
    async with hakurei.Container(TRUE, fork_server=True, **hk_kwargs()) as c:
        await c.serve()
        await c.wait()
        if c.via != "fork server":
            sys.exit(f"bench: a start after prestart() went {c.via!r}")


# -- 200 concurrent starts -----------------------------------------------------------------


async def concurrent(kind: str, n: int, kw: dict[str, Any], bwrap: str) -> tuple[float, list[str]]:
    """Wall seconds for ``n`` concurrent starts of ``kind``, and the errors."""
    import subprocess

    import trio

    import hakurei

    errors: list[str] = []
    argv = bwrap_argv(bwrap, [TRUE])

    async def one() -> None:
        try:
            if kind == "bwrap":
                p = await trio.run_process(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    check=False,
                )
                status = p.returncode
            else:
                r = await hakurei.run(TRUE, fork_server=kind == "server", **kw)
                status = r.returncode
            if status != 0:
                errors.append(f"status {status}")
        except Exception as e:  # counted, not fatal: the target is zero errors
            errors.append(f"{type(e).__name__}: {e}")

    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(one)
    return time.perf_counter() - t0, errors


async def concurrent_report(args: argparse.Namespace) -> list[str]:
    import trio

    kw = hk_kwargs()
    await served_check()
    walls: dict[str, list[float]] = {k: [] for k in KINDS}
    errors: dict[str, list[str]] = {k: [] for k in KINDS}
    load0 = os.getloadavg()[0]
    for r in range(args.warmup + args.reps):
        order = KINDS[r % 3 :] + KINDS[: r % 3]
        for kind in order:
            wall, errs = await concurrent(kind, args.concurrent, kw, args.bwrap)
            if r >= args.warmup:
                walls[kind].append(wall)
                errors[kind] += errs
            await trio.sleep(args.settle)
    load1 = os.getloadavg()[0]
    ref = statistics.median(walls["bwrap"])
    out = [
        "",
        f"## {args.concurrent} concurrent starts of `{TRUE}` from one trio program "
        f"({args.reps} repetitions after {args.warmup} warm-up, interleaved; "
        f"load {load0:.2f} → {load1:.2f})",
        "",
        "| variant | wall median s | min s | max s | median / bwrap | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    labels = {
        "server": "hakurei.run(), fork server (after prestart())",
        "cold": "hakurei.run(), cold (fork_server=False)",
        "bwrap": "bwrap via trio.run_process",
    }
    for kind in KINDS:
        w = walls[kind]
        out.append(
            f"| {labels[kind]} | {statistics.median(w):.2f} | {min(w):.2f} | {max(w):.2f} | "
            f"{statistics.median(w) / ref:.2f}x | {len(errors[kind])} |"
        )
    ratio = statistics.median(walls["server"]) / ref
    verdict = (
        "met" if ratio <= CONCURRENT_TARGET else f"MISSED by {ratio / CONCURRENT_TARGET - 1:.0%}"
    )
    zero = "zero errors" if not errors["server"] else f"{len(errors['server'])} errors"
    out += [
        "",
        f"- fork server / bwrap = {ratio:.2f}x (target ≤ {CONCURRENT_TARGET}x): {verdict}; {zero}",
    ]
    for kind in KINDS:
        if errors[kind]:
            out.append(f"- {kind}: first error: {errors[kind][0]}")
    return out


# -- PSS per running container -------------------------------------------------------------


async def pss_kind(kind: str, n: int, kw: dict[str, Any], bwrap: str) -> tuple[float, str]:
    """(MB per container, note) for ``n`` running containers of ``kind``."""
    import contextlib
    import subprocess

    import trio

    import hakurei

    async with contextlib.AsyncExitStack() as stack:
        roots: list[int] = []
        procs: list[trio.Process] = []
        for _ in range(n):
            if kind == "bwrap":
                p = await trio.lowlevel.open_process(
                    bwrap_argv(bwrap, [SLEEP, "1000"]),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                procs.append(p)
                roots.append(p.pid)
            else:
                c = hakurei.Container(SLEEP, ["sleep", "1000"], fork_server=kind == "server", **kw)
                await stack.enter_async_context(c)
                await c.serve()
                if c.via != ("fork server" if kind == "server" else "cold"):
                    sys.exit(f"bench: a {kind} container went {c.via!r}")
                assert c.pid is not None
                roots.append(c.pid)
        try:
            trees = wait_running(roots, "sleep")
            names = [comm(p) or "?" for p in trees[0]]
            pids = [p for t in trees for p in t]
            extra = []
            if kind == "server":
                srv = server_pid()
                if srv is None:
                    sys.exit("bench: no fork server while its containers run")
                extra = [srv]
            pss = read_pss(pids + extra)
        finally:
            for p in procs:
                p.kill()
                await p.wait()
    missing = [p for p, v in pss.items() if v is None]
    total_kb = sum(v[0] for v in pss.values() if v is not None)
    # Per position in each tree (shim, init, program; bwrap, bwrap, program), mean kB.
    parts = []
    for i in range(max(len(t) for t in trees)):
        vals = [pss[t[i]] for t in trees if len(t) > i]
        got = [v for v in vals if v is not None]
        if got:
            name = names[i] if i < len(names) else "?"
            parts.append(
                f"{name} {statistics.fmean(v[0] for v in got) / 1024:.2f}"
                f" ({statistics.fmean(v[1] for v in got) / 1024:.2f} private dirty)"
            )
    server = pss[extra[0]] if extra else None
    if server is not None:
        parts.append(f"server {server[0] / 1024:.2f} / {n} ({server[1] / 1024:.2f} private dirty)")
    note = " + ".join(parts)
    if missing:
        note += f"; {len(missing)} processes unreadable, not counted (run as root with --user)"
    return total_kb / n / 1024, note


async def pss_report(args: argparse.Namespace) -> list[str]:
    import trio

    kw = hk_kwargs()
    await served_check()
    out = [
        "",
        f"## PSS per running container ({args.pss_n} containers running `{SLEEP} 1000`, "
        "every process of each, smaps_rollup)",
        "",
        "| variant | MB per container | MB per process, mean (of which private dirty) |",
        "|---|---:|---|",
    ]
    results = {}
    for kind in ("server", "cold", "bwrap"):
        results[kind] = await pss_kind(kind, args.pss_n, kw, args.bwrap)
        await trio.sleep(args.settle)
    labels = {"server": "fork server", "cold": "cold", "bwrap": "bwrap"}
    for kind, (mb, note) in results.items():
        out.append(f"| {labels[kind]} | {mb:.2f} | {note} |")
    mb = results["server"][0]
    verdict = "met" if mb <= PSS_TARGET_MB else f"MISSED by {mb / PSS_TARGET_MB - 1:.0%}"
    out += [
        "",
        f"- fork server: {mb:.2f} MB per container (target ≤ {PSS_TARGET_MB} MB): {verdict}",
    ]
    return out


# -- first start of a process --------------------------------------------------------------


def first_child(kind: str) -> None:
    """In a fresh interpreter: time the first ``run_sync`` and print the ms."""
    import hakurei

    kw = hk_kwargs()
    t0 = time.perf_counter()
    r = hakurei.run_sync(TRUE, fork_server=kind == "server", **kw)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"status {r.returncode}")
    print(f"{dt * 1e3:.3f}")


def first_report(args: argparse.Namespace) -> list[str]:
    import subprocess

    kinds = ("cold", "server")
    first: dict[str, list[float]] = {k: [] for k in kinds}
    whole: dict[str, list[float]] = {k: [] for k in kinds}
    for r in range(args.first_n):
        for kind in kinds if r % 2 == 0 else kinds[::-1]:
            t0 = time.perf_counter()
            p = subprocess.run(
                [sys.executable, __file__, "--mode", f"first-{kind}"],
                capture_output=True,
                text=True,
                check=False,
            )
            whole[kind].append((time.perf_counter() - t0) * 1e3)
            if p.returncode != 0:
                sys.exit(f"bench: first start ({kind}) failed: {p.stderr.strip()[-500:]}")
            first[kind].append(float(p.stdout))
            time.sleep(args.settle)
    out = [
        "",
        f"## First start of a process ({args.first_n} fresh interpreters each, alternating)",
        "",
        "The first `run_sync` of a process that never started a container (hakurei imported",
        "and the ops built before the clock starts; the seccomp compile is in both).",
        "",
        "| variant | first run_sync p50 ms | p90 ms | whole process p50 ms |",
        "|---|---:|---:|---:|",
    ]
    labels = {"cold": "cold (fork_server=False)", "server": "fork server, no prestart()"}
    for kind in kinds:
        out.append(
            f"| {labels[kind]} | {pct(first[kind], 50):.1f} | {pct(first[kind], 90):.1f} | "
            f"{pct(whole[kind], 50):.1f} |"
        )
    ratio = pct(first["server"], 50) / pct(first["cold"], 50)
    out += ["", f"- first start through the server / cold = {ratio:.2f}x (should be ≤ ~1.0x)"]
    return out


# -- death of the caller -------------------------------------------------------------------


def caller_child(kind: str, n: int, bwrap: str) -> None:
    """In a fresh interpreter: start ``n`` containers running sleep, print their pids, block."""
    import trio

    async def main() -> None:
        import contextlib
        import subprocess

        import hakurei

        kw = hk_kwargs()
        if kind == "server" and not hakurei.prestart():
            sys.exit("no fork server")
        async with contextlib.AsyncExitStack() as stack:
            roots = []
            for _ in range(n):
                if kind == "bwrap":
                    p = await trio.lowlevel.open_process(
                        bwrap_argv(bwrap, [SLEEP, "1000"]),
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                    roots.append(p.pid)
                else:
                    c = hakurei.Container(
                        SLEEP, ["sleep", "1000"], fork_server=kind == "server", **kw
                    )
                    await stack.enter_async_context(c)
                    await c.serve()
                    assert c.pid is not None
                    roots.append(c.pid)
            trees = wait_running(roots, "sleep")
            srv = server_pid() if kind == "server" else None
            os.write(1, json.dumps({"server": srv, "containers": trees}).encode() + b"\n")
            await trio.sleep_forever()

    trio.run(main)


def death_once(kind: str, n: int, bwrap: str) -> tuple[float | None, float]:
    """Kill a caller; ms until its server (None: no server) and until all container processes."""
    import subprocess

    p = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--mode",
            f"caller-{kind}",
            "--bwrap",
            bwrap,
            "--death-n",
            str(n),
        ],
        stdout=subprocess.PIPE,
    )
    assert p.stdout is not None
    line = p.stdout.readline()
    if not line:
        p.wait()
        sys.exit(f"bench: the {kind} caller exited with {p.returncode} before its report")
    info = json.loads(line)
    watched: dict[int, str] = {}
    fds: dict[int, int] = {}
    for t in info["containers"]:
        for pid in t:
            watched[pid] = "container"
    if info["server"] is not None:
        watched[info["server"]] = "server"
    for pid in watched:
        fds[os.pidfd_open(pid)] = pid
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    gone: dict[int, float] = {}
    t0 = time.perf_counter()
    p.send_signal(signal.SIGKILL)
    while len(gone) < len(fds):
        for fd, _ in poller.poll(10_000):
            if fd not in gone:
                gone[fd] = (time.perf_counter() - t0) * 1e3
                poller.unregister(fd)
        if time.perf_counter() - t0 > 10:
            break
    p.wait()
    p.stdout.close()
    for fd in fds:
        os.close(fd)
    if len(gone) < len(fds):
        left = [fds[fd] for fd in fds if fd not in gone]
        sys.exit(f"bench: {kind}: processes {left} still alive 10 s after the caller was killed")
    server = [gone[fd] for fd, pid in fds.items() if watched[pid] == "server"]
    conts = [gone[fd] for fd, pid in fds.items() if watched[pid] == "container"]
    return (server[0] if server else None), max(conts)


def death_report(args: argparse.Namespace) -> list[str]:
    results: dict[str, list[tuple[float | None, float]]] = {k: [] for k in KINDS}
    for r in range(args.death_reps):
        for kind in KINDS[r % 3 :] + KINDS[: r % 3]:
            results[kind].append(death_once(kind, args.death_n, args.bwrap))
            time.sleep(args.settle)
    out = [
        "",
        f"## Caller SIGKILLed: how fast everything is gone ({args.death_n} running containers, "
        f"{args.death_reps} repetitions, pidfds polled)",
        "",
        "| variant | server gone, median ms (max) | last container process gone, median ms (max) |",
        "|---|---:|---:|",
    ]
    labels = {"server": "fork server", "cold": "cold", "bwrap": "bwrap --die-with-parent"}
    for kind in KINDS:
        rows = results[kind]
        srv = [s for s, _ in rows if s is not None]
        last = [c for _, c in rows]
        s_txt = f"{statistics.median(srv):.1f} ({max(srv):.1f})" if srv else "-"
        out.append(
            f"| {labels[kind]} | {s_txt} | {statistics.median(last):.1f} ({max(last):.1f}) |"
        )
    return out


# -- root: the PSS reader ------------------------------------------------------------------


def as_user(user: str, argv: list[str]) -> int:
    """Run this script as ``user`` with a socket on which root answers PSS requests."""
    import pwd

    pw = pwd.getpwnam(user)
    if pw.pw_uid == 0:
        sys.exit("bench: --user must be an ordinary user")
    ours, theirs = socket.socketpair()
    env = dict(os.environ, HK_BENCH_PSS_FD=str(theirs.fileno()))
    pid = os.fork()
    if pid == 0:
        try:
            ours.close()
            os.set_inheritable(theirs.fileno(), True)
            os.initgroups(user, pw.pw_gid)
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
            os.execve(sys.executable, [sys.executable, __file__, *argv], env)
        finally:
            os._exit(127)
    theirs.close()
    buf = b""
    while chunk := ours.recv(65536):
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            pids = json.loads(line)
            ours.sendall(json.dumps({p: pss_of(p) for p in pids}).encode() + b"\n")
    _, st = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(st)


# -- main ----------------------------------------------------------------------------------


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--user", help="started as root: run as this user, root only reads PSS")
    p.add_argument("--bwrap", default="/usr/bin/bwrap")
    p.add_argument(
        "--only",
        action="append",
        choices=("concurrent", "pss", "first", "death"),
        help="repeatable",
    )
    p.add_argument("-n", "--concurrent", type=int, default=200, help="concurrent starts (200)")
    p.add_argument("--reps", type=int, default=5, help="concurrent repetitions (5)")
    p.add_argument("--warmup", type=int, default=1, help="concurrent warm-up repetitions (1)")
    p.add_argument("--pss-n", type=int, default=20, help="running containers for PSS (20)")
    p.add_argument("--first-n", type=int, default=20, help="fresh processes per variant (20)")
    p.add_argument("--death-n", type=int, default=5, help="containers of the killed caller (5)")
    p.add_argument("--death-reps", type=int, default=5, help="killed callers per variant (5)")
    p.add_argument("--settle", type=float, default=0.2, help="s to pause between runs (0.2)")
    p.add_argument("--mode", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.mode:  # a child of this script (first start, killed caller)
        kind = args.mode.split("-", 1)[1]
        if args.mode.startswith("first-"):
            first_child(kind)
        else:
            caller_child(kind, args.death_n, args.bwrap)
        return 0
    if os.geteuid() == 0:
        if not args.user:
            sys.exit("bench: as root, name the ordinary user to run as (--user)")
        rest = list(sys.argv[1:])
        if "--user" in rest:
            i = rest.index("--user")
            del rest[i : i + 2]
        rest = [a for a in rest if not a.startswith("--user=")]
        return as_user(args.user, rest)

    import trio

    raise_nofile()
    sections = args.only or ["concurrent", "pss", "first", "death"]
    out = [
        "# hakurei fork server at scale",
        "",
        f"- date: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        f"- machine: kernel {platform.release()}, {platform.machine()}, {os.cpu_count()} CPUs",
        f"- python: {sys.version.split()[0]} at {sys.executable}; uid {os.getuid()}; "
        f"PSS via {'a root reader' if 'HK_BENCH_PSS_FD' in os.environ else 'this user'}",
        f"- load average at start: {os.getloadavg()[0]:.2f}",
    ]
    print("\n".join(out), flush=True)
    for section in sections:
        if section == "concurrent":
            lines = trio.run(concurrent_report, args)
        elif section == "pss":
            lines = trio.run(pss_report, args)
        elif section == "first":
            lines = first_report(args)
        else:
            lines = death_report(args)
        print("\n".join(lines), flush=True)
    print(f"\n- load average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

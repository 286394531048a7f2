"""The launcher's start: from spawn to the app's first line, with and without D-Bus, interleaved.

    python3 bench/bench_launcher.py [-n ROUNDS] [--hakurei PATH] [--user NAME]

Each round runs every variant once, in a rotating order, after a warm-up.  A
variant is started with ``posix_spawn`` (stdout a pipe, stdin and stderr on
/dev/null); the time to the app's first line is when ``ready`` arrives on the
pipe, the whole run is spawn to reap; CPU time is the reaped tree's user +
system time from ``wait4`` (what load moves least):

* ``hakurei run -- /bin/echo ready``: the launcher with no enablement (store,
  journal, plan, container, revert);
* ``hakurei run --dbus -- /bin/echo ready``: the same with the session bus
  through xdg-dbus-proxy in its own container (hakurei's default rules);
* ``hakurei exec -- /bin/echo ready``: the plain CLI, for what the launcher adds;
* ``bwrap`` by hand with the launcher's mounts (bubblejail's way without
  D-Bus): /usr, the merged-usr links, /etc, /proc, /dev, /tmp, a 0700
  ``/run/user/UID`` tmpfs;
* ``bwrap`` + ``xdg-dbus-proxy`` by hand, as bubblejail does it: the proxy
  in a bwrap of its own with ``--fd`` readiness, then the app's bwrap binding
  the proxy socket at ``/run/user/UID/bus``; the proxy is killed and reaped
  after the app, inside the timed run.

The benchmark starts its own session bus (``dbus-daemon --session``) and gives
every variant the same ``XDG_RUNTIME_DIR`` (a private temp dir) and
``DBUS_SESSION_BUS_ADDRESS``.  Started as root it reruns itself as ``--user``
(hakurei-test by default) from a copy that user can read, as bench_cli.py does.
hakurei (Go) publishes no start-up numbers to compare with.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import pwd
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ECHO = ["/bin/echo", "ready"]
TOP_LEVEL = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
PROXY = "/usr/bin/xdg-dbus-proxy"


def ms(xs: list[float], q: float) -> float:
    """The ``q`` quantile of ``xs`` in milliseconds."""
    if q == 0.5:
        return statistics.median(xs) * 1e3
    return statistics.quantiles(xs, n=100, method="inclusive")[round(q * 100) - 1] * 1e3


def base_bwrap(bwrap: str, uid: int) -> list[str]:
    """bwrap with the launcher's always-on mounts (no D-Bus)."""
    argv = [bwrap, "--unshare-all", "--die-with-parent", "--new-session"]
    argv += ["--ro-bind", "/usr", "/usr"]
    for path in TOP_LEVEL:
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    argv += ["--ro-bind", "/etc", "/etc", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    argv += ["--perms", "0700", "--tmpfs", f"/run/user/{uid}"]
    return argv


class Variant:
    """One way to start the app; ``run`` returns (first line s, whole run s, CPU s)."""

    def __init__(self, key: str, label: str, argv: list[str]) -> None:
        self.key, self.label, self.argv = key, label, argv
        self.samples: list[tuple[float, float, float]] = []

    def before(self) -> list[int]:
        """Helpers to start inside the timed run (pids to kill and reap after the app)."""
        return []

    def after(self) -> None:
        """Let the helpers go (before they are reaped)."""

    def once(self, env: dict[str, str]) -> None:
        null = os.open(os.devnull, os.O_RDWR)
        r, w = os.pipe()
        t0 = time.perf_counter()
        helpers = self.before()
        actions = [
            (os.POSIX_SPAWN_DUP2, null, 0),
            (os.POSIX_SPAWN_DUP2, w, 1),
            (os.POSIX_SPAWN_DUP2, null, 2),
        ]
        pid = os.posix_spawn(self.argv[0], self.argv, env, file_actions=actions)
        os.close(w)
        got = b""
        while b"\n" not in got:
            chunk = os.read(r, 4096)
            if not chunk:
                break
            got += chunk
        first = time.perf_counter() - t0
        os.close(r)
        _, status, ru = os.wait4(pid, 0)
        cpu = ru.ru_utime + ru.ru_stime
        self.after()
        for h in helpers:
            os.kill(h, signal.SIGTERM)
            _, _, hru = os.wait4(h, 0)
            cpu += hru.ru_utime + hru.ru_stime
        whole = time.perf_counter() - t0
        os.close(null)
        if status != 0 or got != b"ready\n":
            sys.exit(f"bench_launcher: {self.label}: status {status:#x}, output {got!r}")
        self.samples.append((first, whole, cpu))


class ByHandDBus(Variant):
    """bubblejail's sequence: the proxy in a bwrap of its own, ready on --fd, then the app."""

    def __init__(self, bwrap: str, uid: int, runtime: str, bus: str) -> None:
        self.sock = os.path.join(runtime, "bench-proxy", "bus")
        app = [*base_bwrap(bwrap, uid), "--bind", self.sock, f"/run/user/{uid}/bus"]
        app += ["--setenv", "DBUS_SESSION_BUS_ADDRESS", f"unix:path=/run/user/{uid}/bus", *ECHO]
        super().__init__("byhand-dbus", "bwrap + xdg-dbus-proxy by hand", app)
        self.bwrap, self.uid, self.bus = bwrap, uid, bus
        self.bus_path = bus.removeprefix("unix:path=").split(",")[0]
        os.makedirs(os.path.dirname(self.sock), exist_ok=True)

    def before(self) -> list[int]:
        try:
            os.unlink(self.sock)
        except FileNotFoundError:
            pass
        ready_r, ready_w = os.pipe()
        os.set_inheritable(ready_w, True)  # through bwrap to the proxy
        d = os.path.dirname(self.sock)
        argv = [self.bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr"]
        for path in TOP_LEVEL:
            if os.path.islink(path):
                argv += ["--symlink", os.readlink(path), path]
        argv += ["--bind", d, d, "--ro-bind", self.bus_path, self.bus_path]
        argv += [PROXY, self.bus, self.sock, "--filter", "--talk=org.freedesktop.Notifications"]
        argv += [f"--fd={ready_w}", "--call=org.freedesktop.portal.*=*"]
        pid = os.posix_spawn(argv[0], argv, {"PATH": "/usr/bin:/bin"})
        os.close(ready_w)
        if os.read(ready_r, 1) != b"x":
            sys.exit("bench_launcher: xdg-dbus-proxy did not become ready")
        # The proxy exits when this end closes (its --fd is also its lifeline).
        self.lifeline = ready_r
        return [pid]

    def after(self) -> None:
        os.close(self.lifeline)


def as_user(user: str) -> None:
    """Root: run this script again as ``user`` (a copy it can read), with a clean environment."""
    work = tempfile.mkdtemp(prefix="hakurei-bench-launcher.")
    os.chmod(work, 0o755)
    copy = os.path.join(work, "bench_launcher.py")
    shutil.copyfile(__file__, copy)
    os.chmod(copy, 0o644)
    entry = pwd.getpwnam(user)
    if entry.pw_uid == 0:
        sys.exit("bench_launcher: the benchmark must run as an ordinary user")
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": entry.pw_dir, "LANG": "C.UTF-8"}
    argv = ["runuser", "-u", user, "--", "/usr/bin/python3", "-I", copy, *sys.argv[1:]]
    try:
        pid = os.posix_spawnp("runuser", argv, env)
        _, status = os.waitpid(pid, 0)
    finally:
        shutil.rmtree(work)
    sys.exit(os.waitstatus_to_exitcode(status))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--rounds", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=3)
    beside = os.path.join(os.path.dirname(sys.executable), "hakurei")
    ap.add_argument(
        "--hakurei",
        default=beside if os.access(beside, os.X_OK) else shutil.which("hakurei") or "hakurei",
        help="the hakurei command (default: beside this interpreter, else on PATH)",
    )
    ap.add_argument("--bwrap", default="/usr/bin/bwrap")
    ap.add_argument("--user", default="hakurei-test", help="who runs it when started as root")
    args = ap.parse_args()
    if os.geteuid() == 0:
        as_user(args.user)

    uid = os.getuid()
    runtime = tempfile.mkdtemp(prefix="hakurei-bench-runtime.")
    os.chmod(runtime, 0o700)
    home = tempfile.mkdtemp(prefix="hakurei-bench-home.")
    address = f"unix:path={runtime}/bus"
    daemon = subprocess.Popen(
        ["dbus-daemon", "--session", "--nofork", f"--address={address}", "--print-address"],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert daemon.stdout is not None
        daemon.stdout.readline()  # printed once it listens
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "HOME": home,
            "XDG_RUNTIME_DIR": runtime,
            "XDG_DATA_HOME": os.path.join(home, ".local/share"),
            "DBUS_SESSION_BUS_ADDRESS": address,
        }
        hk = os.path.abspath(args.hakurei)
        variants = [
            Variant("run", "hakurei run", [hk, "run", "--", *ECHO]),
            Variant("run-dbus", "hakurei run --dbus", [hk, "run", "--dbus", "--", *ECHO]),
            Variant("exec", "hakurei exec", [hk, "exec", "--", *ECHO]),
            Variant("byhand", "bwrap by hand", base_bwrap(args.bwrap, uid) + ECHO),
            ByHandDBus(args.bwrap, uid, runtime, address),
        ]
        load0 = os.getloadavg()[0]
        t0 = time.monotonic()
        for v in variants:
            for _ in range(args.warmup):
                v.once(env)
            v.samples.clear()
        for r in range(args.rounds):
            k = r % len(variants)
            for v in variants[k:] + variants[:k]:
                v.once(env)
        took = time.monotonic() - t0
    finally:
        daemon.terminate()
        daemon.wait()
        shutil.rmtree(runtime, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)

    ref = {v.key: v for v in variants}
    print(f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")
    print(f"- machine: {platform.platform()}, {os.cpu_count()} CPUs; user uid {uid}")
    print(
        f"- {args.rounds} rounds after {args.warmup} warm-up, interleaved, {took:.0f} s; "
        f"load average before/after: {load0:.2f} / {os.getloadavg()[0]:.2f}"
    )
    print()
    print(
        "| variant | first line p50 ms | p90 ms | whole run p50 ms | CPU p50 ms "
        "| first line / bwrap by hand (same D-Bus) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for v in variants:
        first = [s[0] for s in v.samples]
        whole = [s[1] for s in v.samples]
        cpu = [s[2] for s in v.samples]
        peer = ref["byhand-dbus" if "dbus" in v.key else "byhand"]
        ratio = ms(first, 0.5) / ms([s[0] for s in peer.samples], 0.5)
        print(
            f"| {v.label} | {ms(first, 0.5):.1f} | {ms(first, 0.9):.1f} | {ms(whole, 0.5):.1f} "
            f"| {ms(cpu, 0.5):.1f} | {ratio:.2f}x |"
        )


if __name__ == "__main__":
    main()

"""What the program finds at exec, through every way of starting it: ``run_sync``,
``hakurei.run`` (trio) and ``hakurei exec`` (the CLI, its own shim).

A caller process (``CALLER`` below, a subprocess so the test process keeps
its own umask, limits and signals) makes its state distinctive: umask 027,
odd soft RLIMIT_NOFILE and RLIMIT_CORE, SIGUSR1 and SIGHUP ignored, SIGALRM
and SIGWINCH blocked, a stray inheritable pipe, and (library paths) an
extra file.  It reports that state, then starts the container, whose
program (``/bin/sh``, the process the checks are about: its own ``/proc/$$``
entries, never a helper's) prints what it got.

Signals, decided from what the alternatives do:

* a cold ``posix_spawn`` and bubblewrap pass ignored dispositions and the
  mask through exec untouched (that is what exec does, and what ``nohup``
  relies on); the Go original starts init and the program through its
  runtime, which installs handlers over every inherited SIG_IGN except
  SIGHUP/SIGINT, and those are reset to default by exec;
* hakurei: the mask is always empty (init blocks the signals it takes
  synchronously, and a program must never start with SIGTERM blocked); the
  signals init handles (HUP INT QUIT TERM USR2 CHLD) and SIGPIPE/SIGXFSZ
  (which every Python interpreter on the way ignores, so the caller's own
  choice cannot be known, as ``subprocess``'s ``restore_signals``) are
  default; every other signal the caller ignored stays ignored, as with
  posix_spawn and bubblewrap: the caller's SIGUSR1 arrives ignored, its
  SIGHUP does not (init handles SIGHUP, as Go's init does).

glibc's internal real-time signals 32 and 33 may show in SigIgn/SigBlk and
are left out of the comparison.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest

from hakurei.profile import default_env

#: The program: its own state from /proc/$$, each section after a "@@name" line.
#: status is read by the shell itself (builtins only): a child reading it
#: could catch dash inside its vfork, with every signal blocked for a moment.
PROBE = r"""
printf '@@status\n'; while IFS= read -r l; do printf '%s\n' "$l"; done < /proc/$$/status
printf '@@limits\n'; while IFS= read -r l; do printf '%s\n' "$l"; done < /proc/$$/limits
printf '@@fds\n'; ls -l /proc/$$/fd
printf '@@cmdline\n'; cat /proc/$$/cmdline
printf '\n@@environ\n'; cat /proc/$$/environ
printf '\n@@cwd\n'; readlink /proc/$$/cwd
printf '@@maps\n'; cat /proc/$$/uid_map /proc/$$/gid_map
printf '@@newfile\n'; : > /tmp/new-file; stat -c %a /tmp/new-file
printf '@@sigpipe\n'; (yes; echo "yes $?" > /tmp/yes-status) | head -n 1; echo "head $?"
cat /tmp/yes-status
"""

#: Arguments after the script: $0 and "$@" of the program.
ARGS = ["argv0 with space", "a b", "", "ü ∂ 𝄞", "--", "-x", "  "]
ENV = {"A": "1", "B": "x=y", "EMPTY": "", "SPACE": " a b ", "UNI": "ü ∂"}
UMASK = 0o027
NOFILE = 777
CORE = 12345 * 1024
UID, GID = 4242, 4343  # container ids, distinct from each other and from the caller's

CALLER = r"""
import json, os, resource, signal, sys

mode, probe, args, env = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
uid, gid, umask, nofile, core = map(int, sys.argv[5:10])
if mode == "prestarted":  # the fork server starts first: all that follows must travel to it
    import hakurei
    assert hakurei.prestart()
    mode = "run_sync"
os.umask(umask)
resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
resource.setrlimit(resource.RLIMIT_CORE, (core, resource.getrlimit(resource.RLIMIT_CORE)[1]))
signal.signal(signal.SIGUSR1, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM, signal.SIGWINCH})
extra_r, extra_w = os.pipe()
stray_r, stray_w = os.pipe()
os.set_inheritable(stray_r, True)
os.set_inheritable(stray_w, True)
with open("/proc/self/limits") as f:
    limits = f.read()
report = {"extra": os.fstat(extra_r).st_ino, "stray": os.fstat(stray_r).st_ino,
          "limits": limits, "uid": os.getuid(), "gid": os.getgid()}
print(json.dumps(report), flush=True)
argv = ["/bin/sh", "-c", probe, *args]
if mode == "cli":
    setenv = [w for k, v in env.items() for w in ("--setenv", k, v)]
    os.execv(sys.executable, [sys.executable, "-m", "hakurei", "exec", "--chdir", "/usr/bin",
             "--uid", str(uid), "--gid", str(gid), *setenv, "--", *argv])
from hakurei.profile import default_ops
kw = dict(ops=default_ops(uid, gid), env=env, dir="/usr/bin", uid=uid, gid=gid,
          stdout=1, stderr=2, extra_files=[extra_w])
if mode == "run_sync":
    import hakurei
    status = hakurei.run_sync(argv[0], argv, **kw).returncode
else:
    import hakurei, trio
    status = trio.run(lambda: hakurei.run(argv[0], argv, **kw)).returncode
print(f"\n@@status-of-run\n{status}", flush=True)
"""

#: ``prestarted``: ``run_sync`` through a fork server started before the caller
#: changed its state (umask, limits, signals): what a cold spawn would inherit
#: must travel with the request.
MODES = ["run_sync", "trio", "cli", "prestarted"]


def forkserver_env(mode: str) -> dict[str, str]:
    """The suite's spawner choice (its cold-start rerun), but the server for ``prestarted``."""
    value = os.environ.get("HAKUREI_FORKSERVER")
    return {} if value is None or mode == "prestarted" else {"HAKUREI_FORKSERVER": value}


class Seen:
    """The caller's report and the program's sections, from one container run."""

    def __init__(self, mode: str) -> None:
        r = subprocess.run(
            [
                sys.executable,
                "-c",
                CALLER,
                mode,
                PROBE,
                json.dumps(ARGS),
                json.dumps(ENV),
                *map(str, (UID, GID, UMASK, NOFILE, CORE)),
            ],
            capture_output=True,
            timeout=60,
            check=False,
            env={"PATH": os.environ["PATH"], **forkserver_env(mode)},
        )
        self.mode = mode
        first, _, rest = r.stdout.partition(b"\n")
        self.caller = json.loads(first)
        parts = re.split(rb"\n?@@([a-z-]+)\n", b"\n" + rest)
        self.section = {parts[i].decode(): parts[i + 1] for i in range(1, len(parts) - 1, 2)}
        status = r.returncode if mode == "cli" else int(self.section["status-of-run"])
        assert status == 0, (mode, status, r.stderr.decode(errors="replace"))

    def text(self, name: str) -> str:
        return self.section[name].decode()

    def status(self) -> dict[str, str]:
        lines = self.text("status").splitlines()
        return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


@pytest.fixture(scope="module", params=MODES)
def seen(request: pytest.FixtureRequest) -> Seen:
    return Seen(request.param)


def bit(sig: int) -> int:
    return 1 << (sig - 1)


GLIBC_INTERNAL = bit(32) | bit(33)


def test_umask_is_the_callers(seen: Seen) -> None:
    assert seen.status()["Umask"] == f"{UMASK:04o}"
    assert seen.text("newfile").strip() == f"{0o666 & ~UMASK:o}"  # 640, not 666


def test_signal_mask_is_empty_and_only_the_callers_ignored_signals_stay_ignored(
    seen: Seen,
) -> None:
    """See the module docstring: SIGUSR1 stays ignored; SIGHUP, SIGPIPE, SIGXFSZ do not."""
    st = seen.status()
    assert int(st["SigBlk"], 16) & ~GLIBC_INTERNAL == 0, st["SigBlk"]
    assert int(st["SigIgn"], 16) & ~GLIBC_INTERNAL == bit(signal.SIGUSR1), st["SigIgn"]


def test_sigpipe_is_default_so_a_pipeline_writer_dies_of_it(seen: Seen) -> None:
    """``yes | head -n 1``: head prints one line and exits 0; yes is killed by SIGPIPE."""
    assert seen.text("sigpipe").splitlines() == ["y", "head 0", f"yes {128 + signal.SIGPIPE}"]


def test_resource_limits_are_the_callers(seen: Seen) -> None:
    limits = seen.text("limits")
    assert re.search(rf"^Max open files +{NOFILE} ", limits, re.M), limits
    assert re.search(rf"^Max core file size +{CORE} ", limits, re.M), limits
    assert limits.rstrip("\n") == seen.caller["limits"].rstrip("\n")


def fd_targets(seen: Seen) -> dict[int, str]:
    out = {}
    for line in seen.text("fds").splitlines():
        m = re.search(r" (\d+) -> (.*)$", line)
        if m:
            out[int(m[1])] = m[2]
    return out


def test_fds_are_stdio_and_the_extra_file_once_at_3(seen: Seen) -> None:
    """The caller's stray inheritable pipe never arrives; its extra file arrives once, at 3.

    ``hakurei exec`` has no way to pass extra files: there the set is stdio only.
    """
    fds = fd_targets(seen)
    stray = f"pipe:[{seen.caller['stray']}]"
    assert stray not in fds.values(), fds
    if seen.mode == "cli":
        assert sorted(fds) == [0, 1, 2], fds
    else:
        assert sorted(fds) == [0, 1, 2, 3], fds
        assert fds[3] == f"pipe:[{seen.caller['extra']}]"


def test_argv_is_exact(seen: Seen) -> None:
    """Spaces, empty strings, unicode and option-like words arrive byte for byte."""
    cmdline = seen.section["cmdline"].removesuffix(b"\0").split(b"\0")
    assert cmdline == [w.encode() for w in ["/bin/sh", "-c", PROBE, *ARGS]]


def test_environment_is_exact(seen: Seen) -> None:
    """Nothing of the caller's environment leaks; ``hakurei exec`` adds only its PATH."""
    environ = seen.section["environ"].removesuffix(b"\0").split(b"\0")
    want = dict(ENV)
    if seen.mode == "cli":
        # default env: PATH, HOME, USER, LOGNAME (the caller has no TERM/LANG)
        want = {**default_env({}), **ENV}
    assert environ == [f"{k}={v}".encode() for k, v in want.items()]


def test_working_directory_is_the_requested_one(seen: Seen) -> None:
    assert seen.text("cwd").rstrip("\n") == "/usr/bin"


def test_id_maps_put_uid_and_gid_on_the_callers_own(seen: Seen) -> None:
    """uid_map maps the container uid onto the caller's uid, gid_map the gid onto its gid.

    The test user's uid differs from its gid (scripts/lib.sh), so a swap shows.
    """
    uid_map, gid_map = (line.split() for line in seen.text("maps").splitlines())
    assert seen.caller["uid"] != seen.caller["gid"], "the test user needs uid != gid"
    assert uid_map == [str(UID), str(seen.caller["uid"]), "1"]
    assert gid_map == [str(GID), str(seen.caller["gid"]), "1"]


IGNORING_SIGCHLD = r"""
import os, signal, sys
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
os.execv(sys.executable, [sys.executable, "-m", "hakurei", "exec", "--", *sys.argv[1:]])
"""


def test_cli_started_with_sigchld_ignored_still_reports_the_programs_status() -> None:
    """A parent that ignores SIGCHLD passes that on through exec (daemons do this).

    With SIGCHLD ignored the kernel reaps children itself and sends no
    SIGCHLD: init would never learn that the program exited (the container
    hung forever) and the shim's waitpid would fail.  The program still gets
    SIGCHLD at its default, like every signal init handles.
    """
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            IGNORING_SIGCHLD,
            "/bin/sh",
            "-c",
            "grep SigIgn /proc/$$/status; exit 7",
        ],
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert r.returncode == 7, r.stderr
    sig_ign = int(r.stdout.split()[1], 16) & ~GLIBC_INTERNAL
    assert sig_ign & bit(signal.SIGCHLD) == 0

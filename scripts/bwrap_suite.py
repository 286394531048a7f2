#!/usr/bin/env python3
"""Run bubblewrap's own test suite against a bwrap, with a verdict for every case.

bubblewrap's tests/test-run.sh is one long `set -e` script: its first failing case ends the
run and hides every case after it, which makes it useless for measuring a front end that passes
some cases and not others.  This harness runs it (and test-seccomp.py, test-specifying-userns.sh,
test-specifying-pidns.sh) from a temporary copy of a bubblewrap source tree, as an ordinary user,
so that a failing case fails alone:

* test-run.sh gets scripts/bwrap_suite_prelude.bash sourced into it (see there: errexit becomes
  an ERR trap that fails the current case, and the rest of that case is skipped);
* test-seccomp.py runs one test method per process, each with its own verdict;
* the two namespace-joining scripts are one case each;
* every case has a time limit: when it is exceeded, the processes the script started are killed,
  so the command they belonged to fails and the run moves on to the next case.

The result is a report (a table with the reason and the last lines of the trace for every
failure, and totals) and optionally Markdown for docs/bwrap.md and JSON for comparing runs.  The
exit status is 0 whatever the cases did; 2 means the harness itself could not do its job.
bubblewrap is another project: its files are only ever copied into a temporary directory.
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SUITE_FILES = (
    "libtest.sh",
    "libtest-core.sh",
    "test-run.sh",
    "test-seccomp.py",
    "test-specifying-userns.sh",
    "test-specifying-pidns.sh",
    "try-syscall.c",
)
PRELUDE = Path(__file__).resolve().with_name("bwrap_suite_prelude.bash")
DEFAULT_USER = "hakurei-test"
POLL = 0.5  # seconds between looks at a running script: only time limits depend on it
NS_SCRIPTS = ("test-specifying-userns.sh", "test-specifying-pidns.sh")
TAP_LINE = re.compile(r"^(not )?ok (\d+)(?: |$)")
TRACE_LINE = re.compile(r"^\++ ")
TAP_TEMPDIR = re.compile(r"/var/tmp/tap-test\.\w+")  # libtest.sh's work dir, random per run


class HarnessError(Exception):
    """The harness cannot do its job (as opposed to a case failing): exit status 2."""


@dataclass
class Case:
    """One verdict: `ok`, `FAIL` or `SKIP`; `why` says why it failed or was skipped."""

    number: int
    name: str
    verdict: str
    why: str = ""
    trace: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """The one-line reason for a table cell: what the bwrap under test said (its last
        `bwrap: ...` line, also as dumped from a file by the asserts), else the failed assertion
        or command that was recorded, else the last thing the case printed."""
        if self.why.startswith("timed out"):
            return TAP_TEMPDIR.sub("/var/tmp/tap-test.XXXXXX", self.why)
        line = re.match(r"line (\d+): ", self.why)
        where, what = (f"line {line.group(1)}: ", self.why[line.end() :]) if line else ("", "")
        said = [text.removeprefix("# ") for text in self.trace]
        said = [text.strip() for text in said if text.startswith("bwrap: ")]
        printed = [text.strip() for text in self.trace if text.strip()]
        printed = [text for text in printed if not TRACE_LINE.match(text)]
        if said:
            found = where + said[-1]
        elif what and not what.startswith("exit "):
            found = self.why
        elif printed:
            found = where + printed[-1]
        else:
            found = self.why
        return TAP_TEMPDIR.sub("/var/tmp/tap-test.XXXXXX", found)


@dataclass
class Suite:
    """The cases of one script, plus a note when the script as a whole misbehaved."""

    title: str
    cases: list[Case] = field(default_factory=list)
    note: str = ""
    incomplete: bool = False  # the script stopped or was killed before its last case

    def count(self, verdict: str) -> int:
        return sum(1 for case in self.cases if case.verdict == verdict)

    def totals(self) -> str:
        skipped = self.count("SKIP")
        runnable = len(self.cases) - skipped
        totals = f"passed {self.count('ok')} of {runnable} runnable ({skipped} skipped)"
        return totals + ("; INCOMPLETE, see the note" if self.incomplete else "")


@dataclass
class Outcome:
    """How a script run ended, as far as the harness is concerned."""

    returncode: int
    log: list[str]
    timed_out: dict[int, float]  # case number (1-based position in the run) -> limit hit
    killed_at_deadline: bool


@dataclass
class Identity:
    """Who the scripts run as: never root, since the point is the unprivileged path."""

    name: str
    uid: int
    gid: int
    groups: list[int]
    switch: bool  # the harness is root and must change to this user for each script


# --- processes ---------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (which may contain spaces)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def _start_time(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return fields[19] if fields else None


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found.extend(int(child) for child in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    stack = _children(pid)
    while stack:
        child = stack.pop()
        found.append(child)
        stack.extend(_children(child))
    return found


def _session(sid: int) -> list[int]:
    """Processes in session SID: what the script started, even if re-parented since."""
    members: list[int] = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields and fields[3] == str(sid):
                members.append(int(entry.name))
    return members


def _kill(pids: Iterable[tuple[int, str | None]]) -> None:
    """SIGSTOP then SIGKILL each (pid, start time) still alive as that same process: stopping
    first keeps a looping parent from starting a replacement child in between."""
    alive = [pid for pid, start in pids if start is not None and _start_time(pid) == start]
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for pid in alive:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


def _snapshot(pids: Iterable[int]) -> list[tuple[int, str | None]]:
    return [(pid, _start_time(pid)) for pid in pids]


def become_subreaper() -> bool:
    """Orphans of the scripts (a sandbox whose bwrap was killed, a background job's children)
    become our children rather than PID 1's: _reap_orphans can then end and reap them, and no
    zombie outlives the run where PID 1 does not reap (as in many containers)."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_child_subreaper = 36
    if libc.prctl(pr_set_child_subreaper, 1, 0, 0, 0) != 0:
        print(f"# no subreaper: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
        return False
    return True


def _reap_orphans() -> None:
    """Kill and reap every child left: once a script has ended, any child of the harness (a
    subreaper with no children of its own) is one of its orphans.  Each exit re-parents the
    dead process's children to us before waitpid reports it, so killing again after every reap
    reaches them all without polling."""
    while True:
        for child in _children(os.getpid()):
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


class Runner:
    """Starts a script as the test user and enforces its time limits."""

    def __init__(
        self, who: Identity, env: dict[str, str], case_timeout: float, reap: bool = False
    ) -> None:
        self.who = who
        self.env = env
        self.case_timeout = case_timeout
        self.reap = reap  # we are the subreaper of the scripts and have no other children

    def run(
        self,
        argv: Sequence[str],
        cwd: Path,
        log: Path,
        deadline: float,
        progress: Callable[[], int] | None = None,
    ) -> Outcome:
        """Run ARGV with stdout and stderr in LOG.  PROGRESS returns how many cases have ended
        so far; when the running case has taken case_timeout seconds, everything the script
        started is killed (the script itself lives on: the killed command fails the case).
        After DEADLINE seconds the script is killed too."""
        switch = self.who.switch
        with log.open("wb") as out:
            proc = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                umask=0o022,
                user=self.who.uid if switch else None,
                group=self.who.gid if switch else None,
                extra_groups=self.who.groups if switch else None,
            )
        started = time.monotonic()
        ended = progress() if progress else 0
        case_started = started
        timed_out: dict[int, float] = {}
        seen: dict[int, str | None] = {}
        at_deadline = False
        try:
            while True:
                try:
                    proc.wait(timeout=POLL)
                    break
                except subprocess.TimeoutExpired:
                    pass
                now = time.monotonic()
                for pid, start in _snapshot(_descendants(proc.pid)):
                    seen.setdefault(pid, start)
                if progress:
                    now_ended = progress()
                    if now_ended != ended:
                        ended, case_started = now_ended, now
                if now - started > deadline:
                    at_deadline = True
                    _kill(_snapshot([proc.pid, *_descendants(proc.pid)]))
                    proc.wait()
                    break
                if progress and now - case_started > self.case_timeout:
                    timed_out[ended + 1] = self.case_timeout
                    _kill(_snapshot(_descendants(proc.pid)))
                    case_started = now
        finally:
            # Whatever the script left running (a sandbox waiting on a fifo, a background
            # loop): its session, and anything seen descending from it that has left it.
            leftovers = _snapshot(_session(proc.pid))
            leftovers += [(pid, start) for pid, start in seen.items() if start is not None]
            _kill(leftovers)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if self.reap:
                _reap_orphans()
        text = log.read_text(errors="replace")
        return Outcome(proc.returncode, text.splitlines(), timed_out, at_deadline)


# --- the work directory --------------------------------------------------------------------


def _patch_test_run(text: str) -> str:
    """Source the prelude on the line that closes done_testing(), keeping every line number."""
    lines = text.split("\n")
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("done_testing"))
        end = next(i for i in range(start, len(lines)) if lines[i] == "}")
    except StopIteration:
        raise HarnessError("test-run.sh: cannot find the done_testing() definition") from None
    lines[end] = '}; . "${srcd}/bwrap_suite_prelude.bash"'
    return "\n".join(lines)


def prepare(source: Path, who: Identity, keep: bool, parent: Path = Path("/var/tmp")) -> Path:
    """A temporary copy of the suite, owned by the test user, with try-syscall built.  It is
    outside /tmp, as a source tree would be: test-run.sh's $RUN puts a tmpfs on /tmp."""
    tests = source / "tests"
    missing = [name for name in SUITE_FILES if not (tests / name).is_file()]
    if missing:
        raise HarnessError(f"{source}: not a bubblewrap source tree (no tests/{missing[0]})")
    work = Path(tempfile.mkdtemp(prefix="hakurei-bwsuite.", dir=parent))
    work.chmod(0o755)
    if keep:
        print(f"# keeping {work}", file=sys.stderr)
    copy = work / "tests"
    copy.mkdir()
    for name in SUITE_FILES:
        shutil.copyfile(tests / name, copy / name)
    run_sh = copy / "test-run.sh"
    run_sh.write_text(_patch_test_run(run_sh.read_text()))
    shutil.copyfile(PRELUDE, copy / PRELUDE.name)
    gcc = shutil.which("gcc")
    if gcc:
        build = subprocess.run(
            [gcc, "-O2", "-o", str(copy / "try-syscall"), str(copy / "try-syscall.c")],
            capture_output=True,
            text=True,
            check=False,
        )
        if build.returncode != 0:
            print(f"# cannot build try-syscall:\n{build.stderr}", file=sys.stderr)
    home = work / "home"
    home.mkdir(mode=0o700)
    for path in (copy, *copy.iterdir(), home):
        if who.switch:
            os.chown(path, who.uid, who.gid)
        path.chmod(0o700 if path == home else 0o755)
    return work


# --- the scripts ---------------------------------------------------------------------------


def _chunks(log: list[str]) -> dict[int, list[str]]:
    """The log lines of each test-run.sh case: those after the previous case's TAP line, up to
    its own, without the trace of the ok/ok_skip call itself."""
    chunks: dict[int, list[str]] = {}
    current: list[str] = []
    expected = 1
    for line in log:
        tap = TAP_LINE.match(line)
        if tap and int(tap.group(2)) == expected:
            while current and re.match(r"^\++ ok(_skip)?( |$)", current[-1]):
                current.pop()
            chunks[expected] = current
            current = []
            expected += 1
        else:
            current.append(line)
    chunks[expected] = current  # the case that was running when the script stopped
    return chunks


def run_test_run(runner: Runner, work: Path, deadline: float) -> Suite:
    suite = Suite("test-run.sh")
    results = work / "tests" / "results.tsv"
    results.unlink(missing_ok=True)  # the prelude appends

    def ended() -> int:
        try:
            return len(results.read_text().splitlines())
        except OSError:
            return 0

    outcome = runner.run(
        ["bash", str(work / "tests" / "test-run.sh")],
        work / "tests",
        work / "test-run.log",
        deadline,
        ended,
    )
    chunks = _chunks(outcome.log)
    rows = results.read_text().splitlines() if results.exists() else []
    for row in rows:
        number, verdict, name, why = [*row.split("\t", 3), "", "", ""][:4]
        case = Case(int(number), name, verdict, why)
        if int(number) in outcome.timed_out:
            case.why = f"timed out after {outcome.timed_out[int(number)]:g}s; then {why}"
        if verdict == "FAIL":
            case.trace = chunks.get(case.number, [])
        suite.cases.append(case)
    _remove_tap_tempdir(outcome.log)
    plan = [line for line in outcome.log if re.match(r"^1\.\.\d+", line)]
    if plan and plan[-1].startswith("1..0"):
        suite.note = f"the whole script skipped itself: {plan[-1]}"
    elif outcome.killed_at_deadline:
        suite.note = f"killed after {deadline:g}s, during case {len(rows) + 1}"
        suite.incomplete = True
    elif not plan:
        suite.incomplete = True
        tail = chunks.get(len(rows) + 1, [])[-3:]
        suite.note = f"stopped (exit {outcome.returncode}) during case {len(rows) + 1}: " + (
            " / ".join(tail) or "no output"
        )
    return suite


def _remove_tap_tempdir(log: list[str]) -> None:
    """libtest.sh removes its /var/tmp/tap-test.* directory at exit, unless the script was
    killed first: remove what it left."""
    for line in log:
        made = re.match(r"^\++ tempdir=(/var/tmp/tap-test\.\w+)$", line)
        if made and Path(made.group(1), ".testtmp").exists():
            subprocess.run(["chmod", "-R", "u+rwX", made.group(1)], check=False)
            shutil.rmtree(made.group(1), ignore_errors=True)


def run_seccomp(runner: Runner, work: Path, deadline: float) -> Suite:
    """test-seccomp.py reports one TAP case for all its tests (without tap.py): run each test
    method in its own process instead, each with its own verdict and trace."""
    suite = Suite("test-seccomp.py")
    script = work / "tests" / "test-seccomp.py"
    if not (work / "tests" / "try-syscall").exists():
        suite.note = "not run: try-syscall could not be built (is gcc installed?)"
        return suite
    names = re.findall(r"^    def (test_\w+)\(self", script.read_text(), re.MULTILINE)
    for number, name in enumerate(names, 1):
        outcome = runner.run(
            ["python3", "-u", str(script), "-v", f"Test.{name}"],
            work / "tests",
            work / f"seccomp-{name}.log",
            min(deadline, runner.case_timeout),
        )
        text = "\n".join(outcome.log)
        case = Case(number, name, "ok")
        skipped = re.search(r"\.\.\. skipped '(.*)'|^1\.\.0 # SKIP (.*)$", text, re.MULTILINE)
        if outcome.killed_at_deadline:
            case.verdict = "FAIL"
            case.why = f"timed out after {min(deadline, runner.case_timeout):g}s"
        elif skipped:
            case.verdict, case.why = "SKIP", skipped.group(1) or skipped.group(2)
        elif outcome.returncode != 0:
            case.verdict = "FAIL"
            errors = [line for line in outcome.log if re.match(r"^\w*(Error|Exception)\b", line)]
            case.why = errors[-1] if errors else f"exit {outcome.returncode}"
        if case.verdict == "FAIL":
            # unittest's summary lines say nothing the verdict does not.
            noise = re.compile(r"^(-+|=+|Ran \d+ tests? .*|FAILED .*|(not )?ok 1 - .*|\s*)$")
            case.trace = [line for line in outcome.log if not noise.match(line)]
        suite.cases.append(case)
    return suite


def run_ns_script(runner: Runner, work: Path, name: str, deadline: float) -> Suite:
    """One namespace-joining script, one case: both end with `ok - Test ...` or fail."""
    suite = Suite(name)
    outcome = runner.run(
        ["bash", str(work / "tests" / name)],
        work / "tests",
        work / f"{name}.log",
        min(deadline, runner.case_timeout),
    )
    tap = [line for line in outcome.log if re.match(r"^(not )?ok ", line)]
    case = Case(1, tap[-1].split(" - ", 1)[-1] if tap else name, "FAIL")
    skipped = [line for line in outcome.log if re.match(r"^(ok .*|1\.\.0) # SKIP", line)]
    if skipped:
        case.verdict, case.why = "SKIP", skipped[-1].split("# SKIP", 1)[1].strip()
    elif outcome.killed_at_deadline:
        case.why = f"timed out after {min(deadline, runner.case_timeout):g}s"
    elif outcome.returncode == 0 and tap and tap[-1].startswith("ok "):
        case.verdict = "ok"
    else:
        errors = [line for line in outcome.log if line.startswith("Unexpected nonzero exit")]
        case.why = errors[-1] if errors else f"exit {outcome.returncode}"
    if case.verdict == "FAIL":
        case.trace = outcome.log
    _remove_tap_tempdir(outcome.log)
    suite.cases.append(case)
    return suite


# --- reports -------------------------------------------------------------------------------


def report_text(label: str, suites: list[Suite], trace_lines: int) -> str:
    out = [f"# bubblewrap test suite against {label}"]
    for suite in suites:
        out.append(f"\n== {suite.title} ==")
        for case in suite.cases:
            out.append(f"{case.number:3}  {case.verdict:<4}  {case.name}")
            if case.verdict == "SKIP":
                continue
            if case.verdict == "FAIL":
                out.append(f"           why: {case.why}")
                out.extend(f"           | {line[:200]}" for line in case.trace[-trace_lines:])
        if suite.note:
            out.append(f"NOTE: {suite.note}")
    out.append("")
    out.extend(f"{suite.title}: {suite.totals()}" for suite in suites)
    return "\n".join(out)


def _cell(case: Case | None) -> str:
    if case is None:
        return "not run"
    if case.verdict == "ok":
        return "ok"
    if case.verdict == "SKIP" and case.why == case.name:
        return "SKIP"
    text = case.summary() if case.verdict == "FAIL" else case.why
    text = text.replace("|", "\\|").replace("`", "'")
    if len(text) > 110:
        text = text[:107] + "..."
    return f"**FAIL** {text}" if case.verdict == "FAIL" else f"SKIP ({text})"


def report_markdown(columns: list[tuple[str, list[Suite]]]) -> str:
    """One table per script: a row per case, a column per run (earlier runs first)."""
    out: list[str] = []
    titles = [suite.title for suite in columns[-1][1]]
    for title in titles:
        runs = [(label, {s.title: s for s in suites}.get(title)) for label, suites in columns]
        names = {case.number: case.name for _, suite in runs if suite for case in suite.cases}
        out.append(f"\n#### {title}\n")
        out.append("| # | case | " + " | ".join(label for label, _ in runs) + " |")
        out.append("|--:|---|" + "---|" * len(runs))
        for number in sorted(names):
            cells = []
            for _, suite in runs:
                found = {c.number: c for c in suite.cases} if suite else {}
                cells.append(_cell(found.get(number)))
            name = names[number].strip().replace("|", "\\|")
            out.append(f"| {number} | {name} | " + " | ".join(cells) + " |")
        totals = [suite.totals() if suite else "not run" for _, suite in runs]
        out.append("| | **total** | " + " | ".join(f"**{t}**" for t in totals) + " |")
        notes = [f"{label}: {suite.note}" for label, suite in runs if suite and suite.note]
        out.extend(f"\nNote: {note.replace('|', '/')}" for note in notes)
    return "\n".join(out).lstrip("\n") + "\n"


def to_json(label: str, suites: list[Suite]) -> str:
    return json.dumps({"label": label, "suites": [dataclasses.asdict(s) for s in suites]}, indent=1)


def from_json(path: Path) -> tuple[str, list[Suite]]:
    try:
        data = json.loads(path.read_text())
        suites = [
            Suite(
                s["title"],
                [Case(**c) for c in s["cases"]],
                s.get("note", ""),
                s.get("incomplete", False),
            )
            for s in data["suites"]
        ]
        return str(data["label"]), suites
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise HarnessError(f"{path}: not a results file written by --json: {e}") from None


# --- main ----------------------------------------------------------------------------------


def identity(requested: str | None) -> Identity:
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.getuid())
        if requested not in (None, me.pw_name):
            raise HarnessError(f"--user {requested}: only root can run the suite as another user")
        return Identity(me.pw_name, me.pw_uid, me.pw_gid, os.getgroups(), False)
    name = requested or DEFAULT_USER
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise HarnessError(
            f"no user {name} (scripts/bwrap-suite.sh creates {DEFAULT_USER})"
        ) from None
    if entry.pw_uid == 0:
        raise HarnessError(f"--user {name} is root: the suite measures the unprivileged path")
    return Identity(name, entry.pw_uid, entry.pw_gid, os.getgrouplist(name, entry.pw_gid), True)


def _version(runner: Runner, bwrap: str, work: Path) -> str:
    """`BWRAP --version` as the test user; a failure here (often: the user cannot reach the
    bwrap, e.g. in a venv under /root) is said now, not left to look like 64 failing cases."""
    try:
        outcome = runner.run([bwrap, "--version"], work, work / "version.log", 60)
    except OSError as e:
        raise HarnessError(f"--bwrap {bwrap}: {runner.who.name} cannot run it: {e}") from None
    first = outcome.log[0].strip() if outcome.log else ""
    if outcome.returncode == 0 and first:
        return first
    print(f"# warning: {bwrap} --version failed as {runner.who.name}: {first}", file=sys.stderr)
    return "version unknown"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bwrap-suite",
        description="Run bubblewrap's test suite against a bwrap, one verdict per case.",
    )
    parser.add_argument("source", type=Path, help="a bubblewrap source tree (v0.11.1)")
    parser.add_argument("--bwrap", default="/usr/bin/bwrap", help="the bwrap to test")
    parser.add_argument("--user", help=f"run the scripts as USER (root only; {DEFAULT_USER})")
    parser.add_argument("--label", help="column title (default: `BWRAP --version`, path)")
    parser.add_argument("--markdown", type=Path, help="write the tables to this file")
    parser.add_argument("--json", type=Path, help="write the results to this file")
    parser.add_argument(
        "--compare",
        type=Path,
        action="append",
        default=[],
        help="a --json file of an earlier run: its column comes first in --markdown",
    )
    parser.add_argument("--case-timeout", type=float, default=300, help="seconds per case")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per script")
    parser.add_argument("--trace-lines", type=int, default=8, help="trace lines per failure")
    parser.add_argument("--only", choices=("run", "seccomp", "ns"), action="append")
    parser.add_argument("--keep", action="store_true", help="keep the work dir and its logs")
    return parser.parse_args(argv)


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    try:
        earlier = [from_json(path) for path in args.compare]
        for out in (args.markdown, args.json):
            if out and not out.resolve().parent.is_dir():
                raise HarnessError(f"{out}: no such directory to write it in")
        bwrap = shutil.which(args.bwrap) if "/" not in args.bwrap else args.bwrap
        if not bwrap or not os.access(bwrap, os.X_OK):
            raise HarnessError(f"--bwrap {args.bwrap}: not an executable")
        bwrap = os.path.abspath(bwrap)
        who = identity(args.user)
        work = prepare(args.source.resolve(), who, args.keep)
    except (HarnessError, OSError) as e:
        print(f"bwrap-suite: {e}", file=sys.stderr)
        return 2
    try:
        run(args, bwrap, who, work, earlier)
    except (HarnessError, OSError) as e:
        print(f"bwrap-suite: {e}", file=sys.stderr)
        return 2
    finally:
        if not args.keep:
            subprocess.run(["chmod", "-R", "u+rwX", str(work)], check=False)
            shutil.rmtree(work, ignore_errors=True)
    return 0


def run(
    args: argparse.Namespace,
    bwrap: str,
    who: Identity,
    work: Path,
    earlier: list[tuple[str, list[Suite]]],
) -> None:
    """Run the scripts asked for from WORK and write the reports."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(work / "home"),
        "USER": who.name,
        "LOGNAME": who.name,
        "LANG": "C.UTF-8",
        "BWRAP": bwrap,
    }
    runner = Runner(who, env, args.case_timeout, reap=become_subreaper())
    label = args.label or f"{_version(runner, bwrap, work)} ({bwrap})"
    print(f"# {label}, as {who.name} (uid {who.uid}), from {work}", file=sys.stderr)
    only = set(args.only or ("run", "seccomp", "ns"))
    suites: list[Suite] = []
    if "run" in only:
        suites.append(run_test_run(runner, work, args.timeout))
    if "seccomp" in only:
        suites.append(run_seccomp(runner, work, args.timeout))
    if "ns" in only:
        suites.extend(run_ns_script(runner, work, name, args.timeout) for name in NS_SCRIPTS)
    print(report_text(label, suites, args.trace_lines))
    if args.json:
        args.json.write_text(to_json(label, suites))
    if args.markdown:
        args.markdown.write_text(report_markdown([*earlier, (label, suites)]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

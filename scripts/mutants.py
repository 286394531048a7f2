#!/usr/bin/env python3
"""Run the whole test suite once per curated mutant; report which ones it kills.

Each file ``tests/mutants/NAME.patch`` is one small, realistic bug: a unified
diff preceded by ``#`` comment lines, the first of which says which real bug
it models.  For every mutant this script copies the repository (no .git, no
build output) to a scratch directory, applies the patch there, and runs
``scripts/test.sh`` against the copy.  A mutant is

* ``killed``   when the suite fails (a test failed, or a phase timed out),
* ``survived`` when the suite passes: a bug no test notices, a finding;
* ``stale``    when the patch no longer applies to the code: regenerate it
  (it is never counted as killed or survived);
* ``lint``     when only ruff/mypy fail: the patch itself is not clean, so it
  says nothing about the tests; fix the patch.

The score is killed / (killed + survived).  Before the mutants, the unmutated
copy runs once (the baseline): if it fails, every kill would be meaningless,
so the script stops.  Only the Python standard library is used; run it as
root (test.sh runs the tests as the ordinary user ``hakurei-test``) with
Debian's ``/usr/bin/python3``.

    /usr/bin/python3 scripts/mutants.py --list
    /usr/bin/python3 scripts/mutants.py --check          # which patches are stale
    /usr/bin/python3 scripts/mutants.py --rev HEAD       # all, on a copy of HEAD
    /usr/bin/python3 scripts/mutants.py --only shim-no-cgroup-ns --no-baseline

The venv is reused between runs (test.sh reinstalls the package into it each
time); with ``-j N`` each worker gets its own (``VENV``, ``VENV-2``, ...)
because concurrent pip installs into one venv would race.  Exit status 0
only if every mutant was killed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MUTANTS = REPO / "tests" / "mutants"
DEFAULT_VENV = "/tmp/hakurei-mutants-venv"
#: never copied: VCS data, build output, caches (setuptools would install stale modules)
EXCLUDES = (
    ".git",
    ".venv",
    "build",
    "dist",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
)
LINT_PHASES = ("ruff check", "ruff format --check", "mypy --strict")
PRINT_LOCK = threading.Lock()


class Mutant:
    """One patch file: its name, the bug it models, and its diff text."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = path.name.removesuffix(".patch")
        text = path.read_text()
        comments = [ln[1:].strip() for ln in text.splitlines() if ln.startswith("#")]
        self.models = comments[0] if comments else "(no header comment)"
        self.files = re.findall(r"^\+\+\+ b/(\S+)", text, re.M)


class Result:
    def __init__(self, name: str, status: str, seconds: float, detail: str = "") -> None:
        self.name = name
        self.status = status
        self.seconds = seconds
        self.detail = detail


def say(line: str) -> None:
    with PRINT_LOCK:
        print(line, flush=True)


def load(only: list[str]) -> list[Mutant]:
    mutants = [Mutant(p) for p in sorted(MUTANTS.glob("*.patch"))]
    if only:
        known = {m.name for m in mutants}
        unknown = [n for n in only if n not in known]
        if unknown:
            sys.exit(f"mutants.py: no such mutant: {', '.join(unknown)} (see --list)")
        mutants = [m for m in mutants if m.name in only]
    return mutants


def snapshot(rev: str | None, dest: Path) -> None:
    """The pristine tree every mutant starts from: ``rev`` from git, else the working tree."""
    dest.mkdir(parents=True)
    if rev is not None:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", "--format=tar", rev],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-C", str(dest), "-xf", "-"], input=archive, check=True)
        return
    for entry in REPO.iterdir():
        if entry.name in EXCLUDES or entry.name.endswith(".egg-info"):
            continue
        if entry.is_dir():
            shutil.copytree(
                entry,
                dest / entry.name,
                symlinks=True,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
            )
        else:
            shutil.copy2(entry, dest / entry.name, follow_symlinks=False)


def apply(mutant: Mutant, tree: Path, check_only: bool) -> str | None:
    """Apply the patch to ``tree`` (exactly: no fuzz); the reason it does not apply, or None."""
    # The ceiling keeps git from mistaking an enclosing repository for this tree.
    env = dict(os.environ, GIT_CEILING_DIRECTORIES=str(tree.parent))
    cmd = ["git", "apply", "--check" if check_only else "--whitespace=nowarn", str(mutant.path)]
    r = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        return (r.stderr.strip().splitlines() or ["git apply failed"])[0]
    return None


def ensure_venv(path: str) -> None:
    """A venv test.sh can reuse: from Debian's python, readable by the test user."""
    if Path(path, "bin", "python").exists():
        return
    say(f"building venv {path}")
    subprocess.run(["/usr/bin/python3", "-m", "venv", path], check=True)
    subprocess.run(
        [f"{path}/bin/python", "-m", "pip", "install", "-q", "-U", "pip", "setuptools", "wheel"],
        check=True,
    )
    subprocess.run(["chmod", "-R", "a+rX", path], check=True)


def summary(log: str) -> dict[str, str]:
    """test.sh's summary block: phase name → status text."""
    phases: dict[str, str] = {}
    tail = log.rpartition("=== hakurei test summary ===")[2]
    for line in tail.splitlines():
        m = re.match(r"(ruff check|ruff format --check|mypy --strict|pytest as \S+)\s+(.*)", line)
        if m:
            phases[m.group(1)] = m.group(2)
    return phases


def failed_tests(log: str) -> list[str]:
    """Test ids from pytest's short summary (``FAILED id - msg`` / ``ERROR id``)."""
    return re.findall(r"^(?:FAILED|ERROR) (\S+)", log, re.M)


def run_suite(tree: Path, venv: str, args: argparse.Namespace, log_path: Path) -> tuple[int, str]:
    env = dict(
        os.environ,
        HK_VENV=venv,
        PYTEST_ARGS=args.pytest_args,
        HK_PHASE_TIMEOUT=str(args.phase_timeout),
    )
    env.pop("HK_KEEP", None)
    with open(log_path, "w") as log:
        try:
            r = subprocess.run(
                ["bash", str(tree / "scripts" / "test.sh")],
                cwd=tree,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=args.timeout,
            )
            rc = r.returncode
        except subprocess.TimeoutExpired:
            rc = -1
    return rc, log_path.read_text(errors="replace")


def classify(rc: int, log: str) -> tuple[str, str]:
    if rc == -1:
        return "killed", "the whole run timed out"
    if rc == 0:
        return "survived", ""
    phases = summary(log)
    failed = [name for name, status in phases.items() if "FAILED" in status]
    if not failed:
        return "killed", f"test.sh exit {rc} before its summary"
    if all(name in LINT_PHASES for name in failed):
        return "lint", "only " + ", ".join(failed) + " failed: fix the patch"
    tests = failed_tests(log)
    if tests:
        more = f" (+{len(tests) - 1} more)" if len(tests) > 1 else ""
        return "killed", f"by {tests[0]}{more}"
    return "killed", "; ".join(f"{n}: {phases[n]}" for n in failed)


def one(
    mutant: Mutant | None,
    pristine: Path,
    scratch: Path,
    venvs: queue.Queue[str],
    args: argparse.Namespace,
) -> Result:
    name = mutant.name if mutant else "(baseline)"
    start = time.monotonic()
    tree = scratch / "trees" / (mutant.name if mutant else "baseline")
    shutil.copytree(pristine, tree, symlinks=True)
    try:
        if mutant is not None:
            why = apply(mutant, tree, check_only=False)
            if why is not None:
                return Result(name, "stale", time.monotonic() - start, why)
        venv = venvs.get()
        try:
            rc, log = run_suite(tree, venv, args, scratch / "logs" / f"{name.strip('()')}.log")
        finally:
            venvs.put(venv)
        status, detail = classify(rc, log)
        return Result(name, status, time.monotonic() - start, detail)
    finally:
        shutil.rmtree(tree, ignore_errors=True)


def report(r: Result) -> None:
    say(f"{r.status:<9} {r.name:<36} {r.seconds:5.0f}s  {r.detail}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--list", action="store_true", help="list the mutants and what each models")
    p.add_argument(
        "--check", action="store_true", help="only check that every patch applies (no suite runs)"
    )
    p.add_argument("--only", action="append", default=[], metavar="NAME", help="run only NAME")
    p.add_argument("-j", "--jobs", type=int, default=1, help="mutants run at once (default 1)")
    p.add_argument(
        "--rev", help="test a git revision (e.g. HEAD) instead of the working tree, as committed"
    )
    p.add_argument(
        "--venv",
        default=os.environ.get("HK_VENV", DEFAULT_VENV),
        help=f"venv reused by test.sh (default $HK_VENV or {DEFAULT_VENV}; created if missing)",
    )
    p.add_argument(
        "--pytest-args", default="-x -q", help="PYTEST_ARGS for test.sh (default '-x -q')"
    )
    p.add_argument("--timeout", type=int, default=1200, help="seconds per whole suite run")
    p.add_argument("--phase-timeout", type=int, default=600, help="HK_PHASE_TIMEOUT for test.sh")
    p.add_argument("--no-baseline", action="store_true", help="skip the unmutated run")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory's logs")
    args = p.parse_args()

    mutants = load([n for item in args.only for n in item.split(",") if n])
    if args.list:
        width = max((len(m.name) for m in mutants), default=0)
        for m in mutants:
            print(f"{m.name:<{width}}  {m.models}")
        return 0
    if not mutants:
        print("mutants.py: no mutants selected", file=sys.stderr)
        return 1

    scratch = Path(tempfile.mkdtemp(prefix="hakurei-mutants."))
    (scratch / "logs").mkdir()
    (scratch / "trees").mkdir()
    pristine = scratch / "pristine"
    snapshot(args.rev, pristine)
    source = f"git revision {args.rev}" if args.rev else f"working tree of {REPO}"

    if args.check:
        stale = 0
        for m in mutants:
            tree = scratch / "trees" / m.name
            shutil.copytree(pristine, tree, symlinks=True)
            why = apply(m, tree, check_only=True)
            shutil.rmtree(tree)
            stale += why is not None
            print(f"{'stale' if why else 'applies':<9} {m.name:<36} {why or ''}")
        shutil.rmtree(scratch)
        print(f"{len(mutants) - stale}/{len(mutants)} apply to the {source}")
        return 1 if stale else 0

    if os.geteuid() != 0:
        print("mutants.py: warning: not root; test.sh will need sudo -n", file=sys.stderr)
    jobs = max(1, args.jobs)
    venvs: queue.Queue[str] = queue.Queue()
    for i in range(jobs):
        path = args.venv if i == 0 else f"{args.venv}-{i + 1}"
        ensure_venv(path)
        venvs.put(path)
    say(f"mutants: {len(mutants)} on the {source}; logs in {scratch / 'logs'}")

    started = time.monotonic()
    if not args.no_baseline:
        base = one(None, pristine, scratch, venvs, args)
        passed = base.status == "survived"  # the unmutated suite passes: nothing to kill
        report(Result(base.name, "passed" if passed else "FAILED", base.seconds, base.detail))
        if not passed:
            say("baseline: the unmutated suite fails, so no kill would mean anything; stopping")
            say(f"see {scratch / 'logs' / 'baseline.log'}")
            return 2

    results: list[Result] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(one, m, pristine, scratch, venvs, args) for m in mutants]
        for f in concurrent.futures.as_completed(futures):
            r = f.result()
            report(r)
            results.append(r)

    by = {s: [r for r in results if r.status == s] for s in ("killed", "survived", "stale", "lint")}
    counted = len(by["killed"]) + len(by["survived"])
    score = f"{len(by['killed'])}/{counted}" if counted else "0/0"
    pct = f" ({100 * len(by['killed']) // counted}%)" if counted else ""
    say("")
    say(f"score: {score} killed{pct} in {time.monotonic() - started:.0f}s on the {source}")
    for status in ("survived", "stale", "lint"):
        if by[status]:
            say(f"{status}: " + ", ".join(sorted(r.name for r in by[status])))
    shutil.rmtree(pristine, ignore_errors=True)
    if args.keep or by["survived"] or by["lint"]:
        say(f"logs kept in {scratch / 'logs'}")
    else:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0 if counted == len(results) and not by["survived"] else 1


if __name__ == "__main__":
    sys.exit(main())

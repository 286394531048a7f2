"""scripts/bwrap_suite.py gives every case of bubblewrap's test suite a verdict of its own.

bubblewrap's files never enter this repository, so a small stand-in source tree plays its
part: a test-run.sh of the same shape as the real one (``set -xeuo pipefail``, libtest-core's
``fatal`` and asserts, its own ok/ok_skip/done_testing) whose cases pass, fail at a command,
fail an assertion, skip, leave a background job behind and hang; a test-seccomp.py whose test
methods pass, fail and skip; and namespace scripts that pass and fail.  The harness runs them
exactly as it runs bubblewrap's, as the user running the tests.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

TEST_RUN = r"""#!/usr/bin/env bash

set -xeuo pipefail

srcd=$(cd $(dirname "$0") && pwd)

. ${srcd}/libtest.sh

test_count=0
ok () {
    test_count=$((test_count + 1))
    echo ok $test_count "$@"
}
ok_skip () {
    ok "# SKIP" "$@"
}
done_testing () {
    echo "1..$test_count"
}

true
ok "passes"
false
touch "$srcd/ran-after-failed-command"
ok "fails at a command"
if false; then :; fi
! true
false || true
ok "conditions and negations are not failures"
echo hello > "$srcd/out.txt"
assert_file_has_content "$srcd/out.txt" goodbye
touch "$srcd/ran-after-failed-assertion"
ok "fails an assertion"
ok_skip "nothing to test here"
sleep 1000 &
echo $! > "$srcd/job.pid"
assert_not_reached "gives up with its job still running"
ok "fails, leaving a background job"
state=$(cut -d' ' -f3 "/proc/$(cat "$srcd/job.pid")/stat" 2>/dev/null || echo gone)
test "$state" = Z || test "$state" = gone
ok "the job a failed case left is gone before the next case"
sleep 1000
ok "hangs"
ok "runs after the hang"
done_testing
"""

LIBTEST = r"""set -e
. "$(dirname "$0")/libtest-core.sh"
"""

LIBTEST_CORE = r"""fatal() {
    echo $@ 1>&2; exit 1
}
assert_not_reached () {
    fatal "$@"
}
assert_file_has_content () {
    grep -q -e "$2" "$1" || fatal "File '$1' doesn't match regexp '$2'"
}
report_err () {
    echo "Unexpected nonzero exit status $? while running: $BASH_COMMAND" >&2
}
trap report_err ERR
"""

TEST_SECCOMP = r"""import unittest


class Test(unittest.TestCase):
    def test_passes(self) -> None:
        pass

    def test_fails(self) -> None:
        self.assertEqual(1, 2)

    def test_skips(self) -> None:
        raise unittest.SkipTest("no seccomp here")


if __name__ == '__main__':
    unittest.main()
"""

NS_PASSES = 'set -xeuo pipefail\necho "1..1"\necho "ok - Test --userns"\n'
NS_FAILS = 'set -xeuo pipefail\n. "$(dirname "$0")/libtest.sh"\necho "1..1"\nfalse\n'

CASE_TIMEOUT = 5.0  # the stand-in cases take milliseconds; only "hangs" reaches this


def harness() -> ModuleType:
    """scripts/bwrap_suite.py in a checkout, or beside the suite copy scripts/test.sh makes."""
    here = Path(__file__).resolve()
    root = here.parents[2]  # the checkout, or $WORK/suite under the test command
    for scripts in (root / "scripts", root.parent / "src" / "scripts"):
        path = scripts / "bwrap_suite.py"
        if path.is_file():
            spec = importlib.util.spec_from_file_location("bwrap_suite", path)
            assert spec and spec.loader
            module = importlib.util.module_from_spec(spec)
            sys.modules["bwrap_suite"] = module  # dataclasses look their module up
            spec.loader.exec_module(module)
            return module
    raise AssertionError(f"cannot find scripts/bwrap_suite.py from {here}")  # never a skip


@pytest.fixture(scope="module")
def hs() -> ModuleType:
    return harness()


def stand_in(hs: ModuleType, top: Path) -> Path:
    """The harness's copy of the stand-in source tree, prepared as for bubblewrap's."""
    tests = top / "bubblewrap" / "tests"
    tests.mkdir(parents=True)
    files = {
        "test-run.sh": TEST_RUN,
        "libtest.sh": LIBTEST,
        "libtest-core.sh": LIBTEST_CORE,
        "test-seccomp.py": TEST_SECCOMP,
        "test-specifying-userns.sh": NS_PASSES,
        "test-specifying-pidns.sh": NS_FAILS,
        "try-syscall.c": "int main(void) { return 0; }\n",
    }
    for name, text in files.items():
        (tests / name).write_text(text)
    return Path(hs.prepare(top / "bubblewrap", me(hs), False, parent=top))


@pytest.fixture(scope="module")
def work(hs: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    made = stand_in(hs, tmp_path_factory.mktemp("bwsuite"))
    yield made
    shutil.rmtree(made, ignore_errors=True)


def me(hs: ModuleType) -> Any:
    entry = pwd.getpwuid(os.getuid())
    return hs.Identity(entry.pw_name, entry.pw_uid, entry.pw_gid, os.getgroups(), False)


def runner(hs: ModuleType, work: Path) -> Any:
    env = {"PATH": os.environ["PATH"], "HOME": str(work), "LANG": "C.UTF-8"}
    return hs.Runner(me(hs), env, CASE_TIMEOUT)


@pytest.fixture(scope="module")
def test_run(hs: ModuleType, work: Path) -> Any:
    """One run of the stand-in test-run.sh (it takes CASE_TIMEOUT: one case hangs)."""
    return hs.run_test_run(runner(hs, work), work, 60)


def test_each_test_run_case_gets_its_own_verdict_and_a_failure_ends_only_its_case(
    test_run: Any,
) -> None:
    suite = test_run
    verdicts = [(case.number, case.name, case.verdict) for case in suite.cases]
    assert verdicts == [
        (1, "passes", "ok"),
        (2, "fails at a command", "FAIL"),
        (3, "conditions and negations are not failures", "ok"),
        (4, "fails an assertion", "FAIL"),
        (5, "nothing to test here", "SKIP"),
        (6, "fails, leaving a background job", "FAIL"),
        (7, "the job a failed case left is gone before the next case", "ok"),
        (8, "hangs", "FAIL"),
        (9, "runs after the hang", "ok"),
    ]
    assert (suite.note, suite.incomplete) == ("", False)
    assert suite.totals() == "passed 4 of 8 runnable (1 skipped)"


def test_a_failed_case_runs_nothing_after_its_failure(test_run: Any, work: Path) -> None:
    assert not (work / "tests" / "ran-after-failed-command").exists()
    assert not (work / "tests" / "ran-after-failed-assertion").exists()


def test_a_failure_names_the_line_of_the_original_script_and_what_failed(
    test_run: Any,
) -> None:
    suite = test_run
    lines = TEST_RUN.split("\n")
    false_line = lines.index("false") + 1
    assert_line = next(i for i, line in enumerate(lines, 1) if "goodbye" in line)
    cases = {case.number: case for case in suite.cases}
    assert cases[2].why == f"line {false_line}: exit 1: false"
    assert cases[4].why.startswith(f"line {assert_line}: File ")
    assert cases[4].summary().endswith("doesn't match regexp 'goodbye'")
    assert any(line.startswith("+ false") for line in cases[2].trace)


def test_a_case_that_hangs_is_killed_at_its_time_limit(test_run: Any) -> None:
    suite = test_run
    hung = next(case for case in suite.cases if case.name == "hangs")
    assert hung.why.startswith(f"timed out after {CASE_TIMEOUT:g}s; then ")
    assert "exit 137: sleep 1000" in hung.why


def test_a_script_killed_at_its_deadline_is_reported_incomplete(
    hs: ModuleType, tmp_path: Path
) -> None:
    """The whole-script limit (shorter here than the hanging case's own) ends the run."""
    made = stand_in(hs, tmp_path)
    suite = hs.run_test_run(runner(hs, made), made, CASE_TIMEOUT / 2)
    assert [case.number for case in suite.cases] == list(range(1, 8))
    assert suite.incomplete
    assert suite.note == f"killed after {CASE_TIMEOUT / 2:g}s, during case 8"
    assert suite.totals().endswith("; INCOMPLETE, see the note")


def test_seccomp_tests_and_namespace_scripts_get_a_verdict_each(hs: ModuleType, work: Path) -> None:
    run = runner(hs, work)
    seccomp = hs.run_seccomp(run, work, 60)
    got = {case.name: (case.verdict, case.why) for case in seccomp.cases}
    assert got == {
        "test_passes": ("ok", ""),
        "test_fails": ("FAIL", "AssertionError: 1 != 2"),
        "test_skips": ("SKIP", "no seccomp here"),
    }
    userns = hs.run_ns_script(run, work, "test-specifying-userns.sh", 60)
    pidns = hs.run_ns_script(run, work, "test-specifying-pidns.sh", 60)
    assert [(c.name, c.verdict) for c in userns.cases] == [("Test --userns", "ok")]
    assert [(c.verdict, c.why) for c in pidns.cases] == [
        ("FAIL", "Unexpected nonzero exit status 1 while running: false")
    ]


def test_markdown_puts_an_earlier_runs_column_first(hs: ModuleType) -> None:
    before = hs.Suite("test-run.sh", [hs.Case(1, "argv0", "FAIL", "line 9: exit 1: x")])
    after = hs.Suite("test-run.sh", [hs.Case(1, "argv0", "ok")])
    text = hs.report_markdown([("old", [before]), ("new", [after])])
    assert "| # | case | old | new |" in text
    assert "| 1 | argv0 | **FAIL** line 9: exit 1: x | ok |" in text


def test_a_failure_cell_quotes_what_the_bwrap_under_test_said(hs: ModuleType) -> None:
    """An assert dumps the file it read (`# bwrap: ...`) before its own message: the cell
    shows bwrap's words, which say why; without them, the assertion."""
    why = "line 90: File 'err.txt' doesn't match regexp 'existing destination'"
    trace = ["+ ls -al err.txt", "# bwrap: Can't make symlink at /x: File exists", why[9:]]
    assert hs.Case(28, "c", "FAIL", why, trace).summary() == (
        "line 90: bwrap: Can't make symlink at /x: File exists"
    )
    assert hs.Case(28, "c", "FAIL", why, trace[2:]).summary() == why

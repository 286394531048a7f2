"""A misspelt keyword to ``run``/``run_sync``/``Container`` fails type checking.

``**params`` is ``Unpack[ParamsKw]``: mypy knows every keyword ``Params``
takes, so ``op=`` for ``ops=`` is an error before anything runs.  One mypy
run over a user's file: the real keywords check clean, each bad line errors.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

USER = """\
import hakurei, trio
from hakurei.profile import default_ops
hakurei.run_sync("/bin/true", ops=default_ops(), uid=1, fork_server=False)
hakurei.Container("/bin/true", ops=default_ops(), wait_delay=1.0, verbose=True)
async def f() -> None:
    await hakurei.run("/bin/true", ops=default_ops(), extra_files=[], hostname="x")
hakurei.run_sync("/bin/true", op=[])
hakurei.Container("/bin/true", uid="1")
async def g() -> None:
    await hakurei.run("/bin/true", waitdelay=1)
"""
BAD_LINES = {7, 8, 10}


def test_misspelt_or_mistyped_keywords_fail_type_checking_and_real_ones_pass(
    tmp_path: Path,
) -> None:
    script = tmp_path / "user.py"
    script.write_text(USER)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--cache-dir",
            str(tmp_path / "cache"),
            str(script),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    lines = {int(ln.split(":")[1]) for ln in r.stdout.splitlines() if ": error:" in ln}
    assert lines == BAD_LINES, r.stdout + r.stderr

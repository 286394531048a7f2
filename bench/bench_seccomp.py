"""What the seccomp filter costs a container start: compiling STRICT cold and cached.

Rows:

* **cold**: a fresh interpreter with an empty cache directory asks for STRICT.
  It imports pyseccomp (which runs ``ldconfig -p``), builds and exports the
  program, and writes the cache entry.  A user pays this once per libseccomp
  version and option set.
* **disk**: a fresh interpreter with that entry on disk: what every later
  ``hakurei exec`` pays.  pyseccomp must not be imported (checked).
* **memory**: the same process asks again (a program starting many
  containers).
* **compile only**: ``compile_bpf`` with pyseccomp already imported.
* **import pyseccomp**: the import alone, in a fresh interpreter.

The in-process numbers of the fresh interpreters are measured inside them
(``perf_counter`` around the import of ``hakurei.seccomp`` plus the call), so
interpreter start-up is not counted.  Run against an installed hakurei.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from hakurei import seccomp

FRESH = """
import sys, time
t = time.perf_counter()
from hakurei import seccomp
bpf, n = seccomp.filter_for(presets=seccomp.STRICT, flags=0, rules=None, retain_session=False)
dt = time.perf_counter() - t
assert n == 73 and bpf
print(dt, "pyseccomp" in sys.modules)
"""

IMPORT = """
import time
t = time.perf_counter()
import pyseccomp
print(time.perf_counter() - t, True)
"""


def fresh(code: str, cache: str) -> tuple[float, bool]:
    env = {**os.environ, "XDG_CACHE_HOME": cache}
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], env=env, capture_output=True, check=True, text=True
    ).stdout.split()
    return float(out[0]), out[1] == "True"


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def row(label: str, samples: list[float], note: str = "") -> str:
    s = sorted(samples)
    p50 = statistics.median(s) * 1e3
    p90 = s[min(len(s) - 1, int(len(s) * 0.9))] * 1e3
    return f"{label:<22} {p50:>10.3f} {p90:>10.3f} {s[0] * 1e3:>10.3f}  {note}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()

    base = tempfile.mkdtemp(prefix="hk-bench-seccomp-")
    try:
        cold, disk, imp = [], [], []
        for i in range(args.rounds):
            cache = os.path.join(base, str(i))
            dt, imported = fresh(FRESH, cache)
            assert imported, "cold run must compile"
            cold.append(dt)
            dt, imported = fresh(FRESH, cache)
            assert not imported, "disk hit imported pyseccomp"
            disk.append(dt)
            imp.append(fresh(IMPORT, cache)[0])

        os.environ["XDG_CACHE_HOME"] = os.path.join(base, "inproc")
        seccomp.cache_clear()

        def ask() -> object:
            return seccomp.filter_for(presets=seccomp.STRICT, flags=0, rules=None)

        ask()
        memory = [timed(ask) for _ in range(args.rounds * 50)]
        rules = seccomp.preset(seccomp.STRICT | seccomp.DENY_TTY, 0)
        compile_only = [timed(lambda: seccomp.compile_bpf(rules, 0)) for _ in range(args.rounds)]
    finally:
        shutil.rmtree(base)

    print(f"libseccomp {seccomp.libseccomp_version()}, python {sys.version.split()[0]}")
    print(f"{'STRICT (73 rules)':<22} {'p50 ms':>10} {'p90 ms':>10} {'min ms':>10}")
    print(row("cold (fresh process)", cold, "import + compile + write cache"))
    print(row("disk (fresh process)", disk, "import hakurei.seccomp + read cache"))
    print(row("memory", memory, "same process"))
    print(row("compile only", compile_only, "pyseccomp already imported"))
    print(row("import pyseccomp", imp, "fresh process, runs ldconfig"))


if __name__ == "__main__":
    main()

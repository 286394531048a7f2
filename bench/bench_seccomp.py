"""What the seccomp filter costs a container start: compiling STRICT in every process.

Rows:

* **fresh**: a fresh interpreter asks for STRICT: it imports
  ``hakurei.seccomp``, dlopens libseccomp by soname, compiles and exports the
  program.  This is what every ``hakurei exec`` pays (nothing is cached on
  disk: a file the user can write, a container with the user's home bound
  writable can write).  pyseccomp, ``ctypes.util`` and ``subprocess`` must not
  be imported (checked): no ``ldconfig`` run.
* **memory**: the same process asks again (a program starting many
  containers).
* **compile only**: ``compile_bpf`` with libseccomp already loaded.
* **import pyseccomp**: for comparison, what compiling through pyseccomp
  would add per process (skipped when it is not installed).

The in-process numbers of the fresh interpreters are measured inside them
(``perf_counter`` around the import of ``hakurei.seccomp`` plus the call), so
interpreter start-up is not counted.  Run against an installed hakurei.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
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
print(dt, bool({"pyseccomp", "ctypes.util", "subprocess"} & set(sys.modules)))
"""

IMPORT = """
import time
t = time.perf_counter()
try:
    import pyseccomp
except ImportError:
    print(-1, False)
else:
    print(time.perf_counter() - t, True)
"""


def fresh(code: str) -> tuple[float, bool]:
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, check=True, text=True
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

    cold, imp = [], []
    for _ in range(args.rounds):
        dt, slow = fresh(FRESH)
        assert not slow, "compiling imported pyseccomp, ctypes.util or subprocess"
        cold.append(dt)
        dt, installed = fresh(IMPORT)
        if installed:
            imp.append(dt)

    seccomp.cache_clear()

    def ask() -> object:
        return seccomp.filter_for(presets=seccomp.STRICT, flags=0, rules=None)

    ask()
    memory = [timed(ask) for _ in range(args.rounds * 50)]
    rules = seccomp.preset(seccomp.STRICT | seccomp.DENY_TTY, 0)
    compile_only = [timed(lambda: seccomp.compile_bpf(rules, 0)) for _ in range(args.rounds)]

    print(f"libseccomp {seccomp.libseccomp_version()}, python {sys.version.split()[0]}")
    print(f"{'STRICT (73 rules)':<22} {'p50 ms':>10} {'p90 ms':>10} {'min ms':>10}")
    print(row("fresh process", cold, "import hakurei.seccomp + load libseccomp + compile"))
    print(row("memory", memory, "same process"))
    print(row("compile only", compile_only, "libseccomp already loaded"))
    if imp:
        print(row("import pyseccomp", imp, "fresh process, runs ldconfig (not used)"))


if __name__ == "__main__":
    main()

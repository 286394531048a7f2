"""`hakurei exec -- /bin/true` from two installs, interleaved: is B slower than A?

    runuser -u hakurei-test -- /usr/bin/python3 bench/bench_ab.py VENV_A VENV_B [-n ROUNDS]

Each round runs both console scripts (``VENV/bin/hakurei``) once, in alternating order,
after a warm-up of 10 each.  It reports, per install, the p50 and minimum of the wall time
(posix_spawn to wait4) and the p50 of the CPU time (user + system) that ``wait4`` reports
for the whole process tree, and the medians of the per-round differences B - A.  On a
loaded machine the wall times drift with the load; the paired differences and the CPU
times stay usable.  The environment is PATH, HOME=/nonexistent, LANG and an
XDG_CACHE_HOME of this user's own (so an old hakurei's disk cache is warm, as a user's).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", help="venv A (the baseline)")
    ap.add_argument("b", help="venv B")
    ap.add_argument("-n", "--rounds", type=int, default=100)
    args = ap.parse_args()

    cache = f"/tmp/hk-bench-cache-{os.getuid()}"
    os.makedirs(cache, 0o700, exist_ok=True)
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "XDG_CACHE_HOME": cache}
    env["LANG"] = "C.UTF-8"
    null = os.open(os.devnull, os.O_RDWR)
    stdio = [(os.POSIX_SPAWN_DUP2, null, fd) for fd in (0, 1, 2)]

    def one(venv: str) -> tuple[float, float]:
        exe = os.path.join(venv, "bin", "hakurei")
        t = time.perf_counter()
        pid = os.posix_spawn(exe, [exe, "exec", "--", "/bin/true"], env, file_actions=stdio)
        _, status, ru = os.wait4(pid, 0)
        wall = time.perf_counter() - t
        if status != 0:
            raise SystemExit(f"{exe} exec -- /bin/true: wait status {status}")
        return wall, ru.ru_utime + ru.ru_stime

    for venv in (args.a, args.b):
        for _ in range(10):
            one(venv)
    res: dict[str, list[tuple[float, float]]] = {args.a: [], args.b: []}
    for i in range(args.rounds):
        for venv in (args.a, args.b) if i % 2 == 0 else (args.b, args.a):
            res[venv].append(one(venv))

    def ms(xs: list[float]) -> float:
        return statistics.median(xs) * 1e3

    for label, venv in (("A", args.a), ("B", args.b)):
        wall = [w for w, _ in res[venv]]
        cpu = [c for _, c in res[venv]]
        print(
            f"{label} {venv}: wall p50 {ms(wall):.2f} ms, min {min(wall) * 1e3:.2f} ms; "
            f"cpu p50 {ms(cpu):.2f} ms ({args.rounds} rounds)"
        )
    pairs = list(zip(res[args.a], res[args.b], strict=True))
    print(
        f"B - A, median of the paired differences: wall {ms([b[0] - a[0] for a, b in pairs]):+.2f}"
        f" ms, cpu {ms([b[1] - a[1] for a, b in pairs]):+.2f} ms"
    )


if __name__ == "__main__":
    main()

"""``hakurei kill ID [--signal SIG]``: signal a live instance's app (SIGTERM by default).

``ID`` is an instance id or a unique prefix of one (``ps`` shows 8 hex
digits).  Only a live instance is signalled, and only the process its entry
names by pid and start time (``hakurei.app.kill``), so a stale entry can
never make us signal a stranger.  The container's init forwards the signal
to the app.  Every refusal is one line and exit 125.
"""

from __future__ import annotations

import sys

from ._table import Opt, Table, UsageError, store

OPTIONS = "options"
TABLE = Table(
    "kill",
    (
        Opt(
            ("--signal", "-s"),
            ("SIG",),
            OPTIONS,
            "the signal, by name (TERM, SIGKILL) or number (default TERM)",
            act=store,
        ),
    ),
)
USAGE = "usage: hakurei kill ID [--signal SIG]"
INTRO = "Send a signal to a running app instance (see hakurei ps)."


def main(argv: list[str]) -> int:
    options: list[str] = []
    operands: list[str] = []
    i = 0
    while i < len(argv):  # options may follow ID, as with show
        arg = argv[i]
        if arg == "--":
            operands += argv[i + 1 :]
            break
        if arg in ("--signal", "-s") and i + 1 < len(argv):
            options += argv[i : i + 2]
            i += 2
            continue
        (options if arg.startswith("-") else operands).append(arg)
        i += 1
    a = TABLE.parse(options, program=False)
    if a.help:
        if sys.stdout is not None:
            sys.stdout.write(TABLE.help(USAGE, INTRO, (OPTIONS,)))
        return 0
    if len(operands) != 1:
        raise UsageError("kill: want one instance ID (see hakurei ps)")
    from ..app.instances import InstanceError, find, live
    from ..app.kill import parse_signal, send

    sig = parse_signal(a.values.get("--signal", "TERM"))
    instance = find(live(), operands[0])
    what = f"instance {instance.short}"
    if instance.app is None:
        raise InstanceError(f"{what}: its entry names no app process (see hakurei show)")
    send(instance.app, sig, what)
    return 0

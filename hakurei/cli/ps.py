"""``hakurei ps [--short] [--json]``: the live instances of this user.

Live means its monitor holds the instance lock (``Store.live()``): an
instance whose launcher was SIGKILLed is never listed, whatever its entry
says, and waits for ``hakurei gc``.  The formats are hakurei's (reference
launcher.md §4.1): a table ``Instance PID Application Uptime``; ``--short``
prints only the short ids; ``--json`` an object of states by full id, or
with ``--short`` an array of full ids on one line.
"""

from __future__ import annotations

import sys

from ._table import Opt, Table, flag

OPTIONS = "options"
TABLE = Table(
    "ps",
    (
        Opt("--short", (), OPTIONS, "only the instance ids", act=flag),
        Opt("--json", (), OPTIONS, "JSON: states by instance id (ids only with --short)", act=flag),
    ),
)
USAGE = "usage: hakurei ps [--short] [--json]"
INTRO = "List this user's running app instances (oldest first)."


def main(argv: list[str]) -> int:
    a = TABLE.parse(argv, program=False)
    if sys.stdout is None:
        return 0
    if a.help:
        sys.stdout.write(TABLE.help(USAGE, INTRO, (OPTIONS,)))
        return 0
    import time

    from ..app.instances import dump, live, ps_text, state_json

    instances = live()
    short, as_json = "--short" in a.flags, "--json" in a.flags
    if as_json and short:
        sys.stdout.write(dump([i.id for i in instances], compact=True))
    elif as_json:
        sys.stdout.write(dump({i.id: state_json(i) for i in instances}, compact=False))
    elif short:
        sys.stdout.write("".join(f"{i.short}\n" for i in instances))
    else:
        sys.stdout.write(ps_text(instances, time.time_ns()))
    return 0

"""``hakurei show CONFIG --no-store [--short] [--json]``: check a config and print it.

As hakurei's ``show --no-store``, it validates a config without running
anything (hakurei's NixOS module uses it to check configs at build time):
a bad config is one line and exit 125.  ``CONFIG`` is a file or ``-``
(stdin).  Showing a running instance by id needs the launcher's state store,
which does not exist yet, so ``--no-store`` is required for now; options may
come before or after ``CONFIG``.
"""

from __future__ import annotations

import sys

from ._table import Opt, Table, UsageError, flag

OPTIONS = "options"
TABLE = Table(
    "show",
    (
        Opt("--no-store", (), OPTIONS, "CONFIG is a config file (or -), not an instance", act=flag),
        Opt("--short", (), OPTIONS, "no filesystem section; with --json, one line", act=flag),
        Opt("--json", (), OPTIONS, "print the checked config as JSON (frozen format)", act=flag),
    ),
)
USAGE = "usage: hakurei show CONFIG|- --no-store [--short] [--json]"
INTRO = "Check an app config and print it (nothing is run)."


def main(argv: list[str]) -> int:
    options: list[str] = []
    operands: list[str] = []
    for i, arg in enumerate(argv):
        if arg == "--":
            operands += argv[i + 1 :]
            break
        (options if arg.startswith("-") and arg != "-" else operands).append(arg)
    a = TABLE.parse(options, program=False)
    if a.help:
        if sys.stdout is not None:
            sys.stdout.write(TABLE.help(USAGE, INTRO, (OPTIONS,)))
        return 0
    if len(operands) != 1:
        raise UsageError("show: want one CONFIG (a file, or - for stdin)")
    if "--no-store" not in a.flags:
        raise UsageError("show: instances need the state store, not built yet: use --no-store")
    from ..app.config import dumps, load_file
    from ..app.show import render

    config = load_file(operands[0])
    if sys.stdout is not None:
        if "--json" in a.flags:
            sys.stdout.write(dumps(config, compact="--short" in a.flags))
        else:
            sys.stdout.write(render(config, short="--short" in a.flags))
    return 0

"""``hakurei template``: print a complete, valid example app config (hakurei's command).

The example is :func:`hakurei.app.config.template`, dumped in the frozen
format, so what it prints always loads (a test holds it to that).
"""

from __future__ import annotations

import sys

from ._table import Table

TABLE = Table("template", ())
USAGE = "usage: hakurei template"
INTRO = "Print an example app config (JSON, every field) to start from."


def main(argv: list[str]) -> int:
    a = TABLE.parse(argv, program=False)
    if sys.stdout is None:
        return 0
    if a.help:
        sys.stdout.write(TABLE.help(USAGE, INTRO, ()))
        return 0
    from ..app.config import dumps, template

    sys.stdout.write(dumps(template()))
    return 0

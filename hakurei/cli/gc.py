"""``hakurei gc``: undo what dead instances left on the host, and remove them.

A dead instance is one whose monitor no longer holds its lock (SIGKILLed,
OOM-killed, a power cut before the next boot's tmpfs...).  Its undo journal
is replayed exactly as the monitor's own exit would have (``Store.gc()``):
every enablement module is imported first, because each registers the
record kinds its host actions write.  Silent on success; one line per undo
step that failed (the steps after it still ran), and exit status 1 then.
Live instances are never touched.
"""

from __future__ import annotations

import sys

from ._table import Table

TABLE = Table("gc", ())
USAGE = "usage: hakurei gc"
INTRO = "Revert and remove the state of app instances whose launcher died."


def main(argv: list[str]) -> int:
    a = TABLE.parse(argv, program=False)
    if a.help:
        if sys.stdout is not None:
            sys.stdout.write(TABLE.help(USAGE, INTRO, ()))
        return 0
    from ..app.enablements import register_all_kinds
    from ..app.instances import InstanceError
    from ..app.store import Store, StoreError
    from . import say

    register_all_kinds()
    try:
        with Store() as store:
            errors = store.gc()
    except StoreError as e:
        raise InstanceError(str(e)) from None
    for line in errors:
        say(f"gc: {line}")
    return 1 if errors else 0

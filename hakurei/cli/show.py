"""``hakurei show [ID|CONFIG] [--short] [--json] [--no-store]``: an instance, or a config.

As hakurei's ``show``:

* ``ID`` (8 to 32 hex digits: an instance id or a unique prefix, as ``ps``
  prints it) shows that *live* instance: its ``State`` section (ids, pids,
  uptime, what it was granted), then its config.  ``--json`` prints its
  state (hakurei's ``hst.State``: the config flattened in).  An entry that
  does not check is shown with its problems, and exit status 1.
* ``CONFIG`` (a file, or ``-`` for stdin; ``--no-store`` forces this reading
  for a file whose name looks like an id) validates a config without running
  anything (hakurei's NixOS module checks configs at build time this way): a
  bad config is one line and exit 125.
* no argument: where this user's state lives (``Version``, ``User``,
  ``TempDir``, ``RunDirPath``).

Options may come before or after the operand.
"""

from __future__ import annotations

import sys

from ._table import Opt, Table, UsageError, flag

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..app.instances import Instance

OPTIONS = "options"
TABLE = Table(
    "show",
    (
        Opt("--no-store", (), OPTIONS, "CONFIG is a config file (or -), not an instance", act=flag),
        Opt("--short", (), OPTIONS, "no filesystem section; with --json, one line", act=flag),
        Opt("--json", (), OPTIONS, "JSON: the instance's state, or the checked config", act=flag),
    ),
)
USAGE = "usage: hakurei show [ID|CONFIG|-] [--short] [--json] [--no-store]"
INTRO = "Show a running app instance, or check an app config and print it (nothing is run)."


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
    short, as_json = "--short" in a.flags, "--json" in a.flags
    if len(operands) > 1:
        raise UsageError("show: want one ID or CONFIG (a file, or - for stdin)")
    if not operands:
        return _show_system(as_json, short)
    operand = operands[0]
    if "--no-store" not in a.flags:
        import os

        from ..app.instances import InstanceError, find, live, looks_like_id

        if looks_like_id(operand):
            try:
                return _show_instance(find(live(), operand), as_json, short)
            except InstanceError:
                if not os.path.exists(operand):
                    raise
    from ..app.config import dumps, load_file
    from ..app.show import render

    config = load_file(operand)
    if sys.stdout is not None:
        if as_json:
            sys.stdout.write(dumps(config, compact=short))
        else:
            sys.stdout.write(render(config, short=short))
    return 0


def _show_instance(instance: Instance, as_json: bool, short: bool) -> int:
    """A live instance: its state, then its config; 1 if its entry did not check."""
    from ..app.instances import dump, state_json, state_text
    from ..app.show import render

    if sys.stdout is not None:
        if as_json:
            sys.stdout.write(dump(state_json(instance), compact=short))
        else:
            text = state_text(instance) + "\n"
            if instance.config is not None:
                text += render(instance.config, short=short)
            sys.stdout.write(text)
    return 1 if instance.problems else 0


def _show_system(as_json: bool, short: bool) -> int:
    """hakurei's ``show`` without an argument: the version and where state lives."""
    import os
    import tempfile

    from ..app.instances import dump
    from ..app.store import default_path
    from . import version

    info = {
        "version": version(),
        "user": os.getuid(),
        "temp_dir": tempfile.gettempdir(),
        "run_dir_path": default_path(),
    }
    if sys.stdout is not None:
        if as_json:
            sys.stdout.write(dump(info, compact=short))
        else:
            from ..app.instances import tabulate
            from ..errors import show

            rows = [
                ["Version:", show(str(info["version"]))],
                ["User:", str(info["user"])],
                ["TempDir:", show(str(info["temp_dir"]))],
                ["RunDirPath:", show(str(info["run_dir_path"]))],
            ]
            sys.stdout.write(tabulate(rows, padding=1))
    return 0

"""The ``hakurei`` command: dispatch to a subcommand, and a status for every way out.

Each subcommand is a module of this package, imported only when it is run
(``exec`` must stay lean: see hakurei/cli/exec.py), with one option table
from which its parsing, ``--help`` and translation come (hakurei/cli/_table.py).
The desktop launcher's subcommands (``app``, ``run``, ``ps``, ``show``, ...)
are added to :data:`COMMANDS` the same way.
"""

from __future__ import annotations

import os
import sys

from .. import _quiet_interrupt
from ..errors import EXIT_SETUP, HakureiError, describe, q, safe_line

# The console script's Ctrl-C hook is installed by the package (__init__.py);
# ``python -m hakurei`` (argv[0] is "-m" then) gets it here, before main's try.
if sys.excepthook is sys.__excepthook__:
    sys.excepthook = _quiet_interrupt

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: subcommand → its module in this package (each has ``main(argv) -> int``)
COMMANDS = {
    "app": "app",
    "bwrap": "bwrap",
    "exec": "exec",
    "gc": "gc",
    "kill": "kill",
    "ps": "ps",
    "run": "run",
    "seccomp": "seccomp",
    "show": "show",
    "template": "template",
}

USAGE = """usage: hakurei exec [OPTIONS] [--] PROGRAM [ARGS...]
       hakurei bwrap [BUBBLEWRAP OPTIONS] [--] COMMAND [ARGS...]   (bubblewrap's command line)
       hakurei app [--identifier-fd FD] [-v] CONFIG|-|FD [ARGS...]   (run an app config)
       hakurei run [--id ID] [-X] [--wayland] [--dbus] [--pulse] [OPTIONS] [-- CMD ARGS...]
       hakurei seccomp [SECCOMP OPTIONS] [--retain-session] [--format pfc|bpf|json]
       hakurei ps [--short] [--json]   (running app instances)
       hakurei show [ID|CONFIG|-] [--short] [--json] [--no-store]   (an instance, or a config)
       hakurei kill ID [--signal SIG]   (signal an app instance; TERM by default)
       hakurei gc   (revert what dead app instances left behind)
       hakurei template   (print an example app config)
       hakurei init    (internal: the container's shim; reads HAKUREI_SETUP)
       hakurei --version
"""

#: Names other code imported from the single-module CLI; loaded on first use (PEP 562).
_MOVED = {
    "OP_OPTIONS": "exec",
    "VALUE_OPTIONS": "exec",
    "build_ops": "exec",
    "exec_setup": "exec",
    "parse_exec": "exec",
    "RULES_MAX": "_table",
    "UsageError": "_table",
    "read_regular": "_table",
}


def __getattr__(name: str) -> Any:
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(__import__(f"{__name__}.{module}", fromlist=[name]), name)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("hakurei")
    except PackageNotFoundError:
        return "unknown (not installed)"


def say(msg: str) -> None:
    """``hakurei: msg`` as one line on fd 2, control bytes escaped; silent if fd 2 is gone.

    Written with os.write, not sys.stderr: that is None when the CLI was
    started with fd 2 closed, and a failed write must not become a traceback.
    """
    try:
        os.write(2, f"hakurei: {safe_line(msg)}\n".encode(errors="replace"))
    except OSError:
        pass


_WANT = "exec, bwrap, app, run, ps, show, kill, gc, seccomp or template"


def _run(argv: list[str]) -> int:
    from ._table import UsageError

    if not argv:
        raise UsageError(f"no command given (want {_WANT}; see --help)")
    if argv[0] in ("-h", "--help", "--version"):
        if sys.stdout is not None:
            sys.stdout.write(USAGE if argv[0] != "--version" else f"hakurei {version()}\n")
        return 0
    cmd, rest = argv[0], argv[1:]
    module = COMMANDS.get(cmd)
    if module is not None:
        import gc

        # No cycle collection while the CLI imports and builds the setup: its
        # objects live until exit anyway, and a full collection over every
        # module loaded so far costs ~1 ms of start-up (exec freezes them and
        # turns it back on before becoming the shim).
        gc.disable()
        try:
            run: Any = __import__(f"{__name__}.{module}", fromlist=["main"]).main
            return int(run(rest))
        finally:
            gc.enable()
    if cmd == "init":
        from ..init.shim import main as shim_main

        shim_main()
    raise UsageError(f"unknown command {q(cmd)} (want {_WANT})")


def main(argv: list[str] | None = None) -> int:
    """The console script: a status for every input and condition, never a traceback.

    Bad input is one line and 125; Ctrl-C is a silent 130; a reader that went
    away (``| head -1``) is a silent 141, as SIGPIPE would give a C program;
    anything unforeseen is still one line (and 125), never a traceback.
    """
    argv = sys.argv[1:] if argv is None else argv
    try:
        status = _run(argv)
        if sys.stdout is not None:
            sys.stdout.flush()  # here, so a broken pipe is caught below, not at exit
        return status
    except HakureiError as e:
        say(str(e))
        return e.status
    except BrokenPipeError:
        _drop_stdout()
        return 141
    except OSError as e:
        say(describe(e))
        return EXIT_SETUP
    except KeyboardInterrupt:
        _drop_stdout()
        return 130
    except RecursionError:  # deeply nested JSON, say
        say("input nested too deeply")
        return EXIT_SETUP
    except ValueError as e:  # text that is not UTF-8, say
        say(describe(e))
        return EXIT_SETUP
    except Exception as e:  # a bug, still one line
        say(f"internal error: {type(e).__name__}: {describe(e)}")
        return EXIT_SETUP


def _drop_stdout() -> None:
    """Point fd 1 at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)
    except OSError:
        pass

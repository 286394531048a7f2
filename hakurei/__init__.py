"""hakurei: unprivileged Linux containers for Python.

This module is the API map.  Names are loaded lazily (PEP 562) because init
imports ``hakurei.init`` and ``hakurei.ops`` for every container and the CLI
must not pay for trio: importing ``hakurei`` itself costs nothing.
"""

import os as _os
import sys as _sys


def _quiet_interrupt(tp: type[BaseException], value: BaseException, tb: object) -> None:
    """Ctrl-C before ``hakurei.cli.main``'s try (while modules import): 130, no traceback."""
    if issubclass(tp, KeyboardInterrupt):
        _os._exit(130)
    _sys.__excepthook__(tp, value, tb)  # type: ignore[arg-type]


# The console script imports this package first, and a KeyboardInterrupt in
# any import before main's try would print a traceback; so the hook goes in
# here, as the package's first statement (no ``from __future__``: importing
# that module is itself such a window).  Only for the console script, whose
# argv[0] is its path: a program that imports the library keeps its own.
_argv0 = str((getattr(_sys, "argv", None) or [""])[0])  # embedders may have no argv
if _argv0.rpartition("/")[2] == "hakurei" and _sys.excepthook is _sys.__excepthook__:
    _sys.excepthook = _quiet_interrupt

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .container import Container, run
    from .errors import (
        EXIT_NOEXEC,
        EXIT_NOTFOUND,
        EXIT_SETUP,
        HakureiError,
        MountError,
        OpError,
        ProgramError,
        ServerLostError,
        SetupError,
        StartError,
    )
    from .forkserver import prestart
    from .ops import Ops
    from .params import Params
    from .results import Completed, ContainerExitError
    from .sync import run_sync

_LAZY = {
    "Container": "container",
    "run": "container",
    "run_sync": "sync",
    "prestart": "forkserver",
    "Completed": "results",
    "ContainerExitError": "results",
    "Params": "params",
    "Ops": "ops",
    "EXIT_NOEXEC": "errors",
    "EXIT_NOTFOUND": "errors",
    "EXIT_SETUP": "errors",
    "HakureiError": "errors",
    "MountError": "errors",
    "OpError": "errors",
    "ProgramError": "errors",
    "ServerLostError": "errors",
    "SetupError": "errors",
    "StartError": "errors",
}

__all__ = [
    "Completed",
    "Container",
    "ContainerExitError",
    "EXIT_NOEXEC",
    "EXIT_NOTFOUND",
    "EXIT_SETUP",
    "HakureiError",
    "MountError",
    "OpError",
    "Ops",
    "Params",
    "ProgramError",
    "ServerLostError",
    "SetupError",
    "StartError",
    "run",
    "prestart",
    "run_sync",
]


def __getattr__(name: str) -> object:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'hakurei' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value

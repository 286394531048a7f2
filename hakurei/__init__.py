"""hakurei: unprivileged Linux containers for Python.

This module is the API map.  Names are loaded lazily (PEP 562) because init
imports ``hakurei.init`` and ``hakurei.ops`` for every container and the CLI
must not pay for trio: importing ``hakurei`` itself costs nothing.
"""

from __future__ import annotations

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
        SetupError,
        StartError,
    )
    from .launch import Completed, ContainerExitError, Params, run_sync, standby
    from .ops import Ops

_LAZY = {
    "Container": "container",
    "run": "container",
    "run_sync": "launch",
    "standby": "launch",
    "Completed": "launch",
    "ContainerExitError": "launch",
    "Params": "launch",
    "Ops": "ops",
    "EXIT_NOEXEC": "errors",
    "EXIT_NOTFOUND": "errors",
    "EXIT_SETUP": "errors",
    "HakureiError": "errors",
    "MountError": "errors",
    "OpError": "errors",
    "ProgramError": "errors",
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
    "SetupError",
    "StartError",
    "run",
    "run_sync",
    "standby",
]


def __getattr__(name: str) -> object:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'hakurei' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value

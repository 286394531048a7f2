"""Every enablement by its config name, imported only when used.

``gc`` imports them all before replaying a journal (each registers the undo
kinds its host actions write); a launch imports only those its config enables.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .enable import Enablement

#: config name → (module under hakurei.app, class)
ENABLEMENTS: dict[str, tuple[str, str]] = {
    "wayland": ("wayland", "Wayland"),
    "x11": ("x11", "X11"),
    "dbus": ("dbus", "DBus"),
    "pulse": ("pulse", "Pulse"),
}


def load(name: str) -> Enablement:
    """A fresh instance of the enablement called ``name``."""
    module, cls = ENABLEMENTS[name]
    enablement: Enablement = getattr(importlib.import_module(f"{__package__}.{module}"), cls)()
    return enablement


def register_all_kinds() -> None:
    """Import every enablement module that exists, so its journal kinds are registered."""
    for module, _ in ENABLEMENTS.values():
        try:
            importlib.import_module(f"{__package__}.{module}")
        except ModuleNotFoundError as e:
            if e.name != f"{__package__}.{module}":
                raise

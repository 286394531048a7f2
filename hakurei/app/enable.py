"""What an enablement is: a host half that does reversible work, a container half it grants.

Each enablement (X11, PulseAudio, D-Bus, direct Wayland) is one module in
``hakurei/app/`` with one class implementing ``Enablement``:

* ``check(session)`` reads the host (environment, sockets) and the config and
  raises ``EnableError`` with one line when the app cannot get the service;
  it changes nothing, so a refused config leaves the host as it was.  The
  monitor calls every enablement's ``check`` before the first host action.
* ``prepare(session)`` does the host work.  Every action that leaves
  something behind is preceded by an undo record
  (``session.journal.record(kind, ...)``, fsynced before it returns), so a
  launcher SIGKILLed at any instruction leaves nothing that ``hakurei gc``
  cannot undo.  Revert is only ever the journal's replay (the monitor's own
  exit and ``gc`` run the same code), so an enablement registers the journal
  kinds it needs (``journal.register``) and keeps no revert logic elsewhere.
  It returns a ``Grant``: the ops and environment the container gets.
  Helpers that must live as long as the app (the D-Bus proxy) are started
  in ``session.nursery`` and die with the launcher.

Paths: ``session.instance_dir`` is the instance's private host directory
(0700, inside the state store); sockets and files the app gets are made
there and bound into the container.  Inside, the app's runtime directory is
``session.runtime`` (``/run/user/<uid>``, a private 0700 tmpfs the monitor's
plan makes), its uid is the caller's (D-Bus clients insist).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import HakureiError

if TYPE_CHECKING:
    import trio

    from ..ops import Op
    from .journal import Journal
    from .records import Config


class EnableError(HakureiError):
    """The app cannot get a service it asks for; one line that says why (exit 125)."""


@dataclass
class Grant:
    """What the container half of an enablement adds to the app's container."""

    ops: list[Op] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    #: one line each, for ``-v`` and ``show``: which mode was chosen and why
    notes: list[str] = field(default_factory=list)


@dataclass
class Session:
    """One launch as an enablement sees it."""

    config: Config
    #: the launcher's own environment (DISPLAY, WAYLAND_DISPLAY, XDG_RUNTIME_DIR, ...)
    host_env: Mapping[str, str]
    #: instance id (32 hex), also in names an enablement creates on the host
    instance_id: str
    #: the instance's private host directory (absolute path) and an fd of it
    instance_dir: str
    instance_dir_fd: int
    #: the app's runtime directory inside the container: /run/user/<uid>
    runtime: str
    uid: int
    gid: int
    journal: Journal
    #: for helpers that live as long as the app; cancelled when the app is gone
    nursery: trio.Nursery | None = None
    #: ``-v`` lines (silent otherwise: success prints nothing)
    log: Callable[[str], None] = lambda line: None
    #: facts one enablement learns that another needs (e.g. the X display number)
    facts: dict[str, Any] = field(default_factory=dict)


class Enablement(Protocol):
    """One host service an app can be given."""

    #: the config's enablement name ("x11", "pulse", "dbus", "wayland")
    name: str

    def check(self, session: Session) -> None:
        """Raise ``EnableError`` if the app cannot get the service; touch nothing."""

    async def prepare(self, session: Session) -> Grant:
        """Do the host work (each action journaled first) and say what the app gets."""
        ...

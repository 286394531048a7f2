"""A filtering Wayland proxy: a confined client sees only the globals a normal app needs.

No Wayland compositor in Debian 12 offers ``wp_security_context_manager_v1``,
so the launcher cannot ask the compositor to restrict a client.  Instead the
app connects to this proxy, which opens its own connection to the compositor
per client and forwards every message and fd in order, except that:

- ``wl_registry.global`` events for interfaces not on the allowlist are
  dropped (and their ``global_remove``), so the client never sees them;
- a ``wl_registry.bind`` to a name the client was not shown gets a
  ``wl_display.error`` back and the client is disconnected;
- nothing from a client reaches anything but the one configured upstream.

The allowlist and the reason for each entry: :mod:`.allow`.  The wire format
and its limits: :mod:`.wire`.  The filter's state: :mod:`.filter`.  The
event loop, fd passing and bounds: :mod:`.loop`.  The command line:
:mod:`.__main__` (``python -m hakurei.app.wlproxy``).

It is stdlib only and single-threaded, so it can run alone in a small
container of its own; it holds no state worth keeping and exits when killed.
What it does not protect against: an allowed global's own abuse (e.g. an
app that keeps the screen on with idle-inhibit, or floods its own surfaces),
and anything the compositor itself gets wrong for an allowed interface.
"""

from __future__ import annotations

from .allow import DEFAULT_ALLOW
from .filter import Filter, Refusal
from .loop import Proxy
from .wire import WireError

__all__ = ["DEFAULT_ALLOW", "Filter", "Proxy", "Refusal", "WireError"]

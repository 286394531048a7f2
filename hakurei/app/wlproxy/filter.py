"""The registry filter: which globals one client sees, and which binds it may make.

One :class:`Filter` per client connection.  It sees every message in order
(the proxy calls it before forwarding) but acts on only four:

- ``wl_display.get_registry`` (client): its new_id becomes a registry id.
  wl_registry has no destructor, so an id stays a registry for the life of
  the connection; a client that reuses a live id is killed by the compositor.
- ``wl_registry.global`` (compositor, on a registry id): forwarded only if
  the interface is allowed; the name is remembered as shown (with its
  interface) or hidden.
- ``wl_registry.global_remove``: dropped for hidden names, so the client
  never learns they existed.
- ``wl_registry.bind`` (client, on a registry id): allowed only for a shown
  name with the same interface; anything else (a hidden name, a name never
  advertised, a different interface) is a :class:`Refusal`.  A shown name
  stays bindable after its ``global_remove``: binding a just-removed global is
  a legal race that the compositor resolves, and libwayland never reuses names.
"""

from __future__ import annotations

from . import wire

#: A client asking for more registries than this is not a toolkit.
MAX_REGISTRIES = 1024


class Refusal(Exception):
    """The client tried to bind a global it was not shown: tell it, then drop it."""

    def __init__(self, registry: int, name: int) -> None:
        super().__init__(f"bind to global {name}, which this client was not shown")
        self.registry = registry
        self.name = name

    def error_message(self) -> bytes:
        """The ``wl_display.error`` the client gets before the proxy hangs up."""
        text = f"invalid global {self.name}: not offered to this client (hakurei Wayland filter)"
        return wire.display_error(self.registry, wire.ERROR_INVALID_OBJECT, text.encode())


class Filter:
    """Registry state of one client connection."""

    __slots__ = ("allow", "hidden", "registries", "shown")

    def __init__(self, allow: frozenset[bytes]) -> None:
        self.allow = allow
        self.registries: set[int] = set()
        self.shown: dict[int, bytes] = {}
        self.hidden: set[int] = set()

    def from_client(self, obj: int, opcode: int, msg: bytes) -> None:
        """Check one request; raise :class:`Refusal` or :class:`wire.WireError` to drop it."""
        if obj == wire.DISPLAY_ID:
            if opcode == wire.DISPLAY_GET_REGISTRY:
                if len(self.registries) >= MAX_REGISTRIES:
                    raise wire.WireError(f"more than {MAX_REGISTRIES} registries")
                self.registries.add(wire.new_id(msg))
        elif obj in self.registries and opcode == wire.REGISTRY_BIND:
            name, interface, _version, _new = wire.bind(msg)
            if self.shown.get(name) != interface:
                raise Refusal(obj, name)

    def from_server(self, obj: int, opcode: int, msg: bytes) -> bool:
        """Whether to forward one event (a malformed registry event raises WireError)."""
        if obj not in self.registries:
            return True
        if opcode == wire.REGISTRY_GLOBAL:
            name, interface, _version = wire.global_(msg)
            if interface in self.allow:
                self.shown[name] = interface
                return True
            self.hidden.add(name)
            return False
        if opcode == wire.REGISTRY_GLOBAL_REMOVE:
            return wire.global_remove(msg) not in self.hidden
        return True

    def wants_client(self, obj: int) -> bool:
        """Whether a request to ``obj`` needs :meth:`from_client` (the hot path skips it)."""
        return obj == wire.DISPLAY_ID or obj in self.registries

"""Op destinations are normalised when the op is built (issue 6, item 2).

Init resolves each destination inside the container's root, but ``..`` is
settled before that, lexically, when the op is made: ``/a/../b`` is ``/b``
(and ``str(op)``, ``-v`` and the wire show ``/b``), while a ``..`` that would
climb above ``/`` can never mean anything inside the container and is a
setup error (``OpError``: one line, exit 125) before anything is spawned.
The same holds for an op decoded from a setup record built by other means.
Link *contents* are not destinations: they stay exactly as given.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hakurei.errors import HakureiError, OpError
from hakurei.ops import (
    REGISTRY,
    Bind,
    Dev,
    Link,
    Mkdir,
    Op,
    Ops,
    Overlay,
    Place,
    Proc,
    Remount,
    Tmpfs,
)

#: every op with a destination: (builder from a destination, name of the field holding it)
DESTINATIONS: dict[str, tuple[Callable[[str], Op], str]] = {
    "mkdir": (lambda d: Mkdir(d, 0o755), "path"),
    "tmpfs": (lambda d: Tmpfs(d), "target"),
    "symlink": (lambda d: Link(d, "/anywhere"), "target"),
    "bind": (lambda d: Bind("/usr", d), "target"),
    "place": (lambda d: Place(d, b"x"), "path"),
    "proc": (lambda d: Proc(d), "target"),
    "dev": (lambda d: Dev(d), "target"),
    "overlay": (lambda d: Overlay(d, ["/a", "/b"]), "target"),
    "remount": (lambda d: Remount(d, 1), "target"),
}

NORMALISED = [
    ("/a/../b", "/b"),
    ("/a/b/..", "/a"),
    ("/a/./b/", "/a/b"),
    ("/a//b", "/a/b"),
    ("//a/b", "/a/b"),
    ("/rw/x/../../etc/y", "/etc/y"),
]

CLIMBING = [
    "/..",
    "/../host/tmp/x",
    "/a/../../host/tmp/x",
    "/rw/../../host",
    "/rw/" + "../" * 12 + "host/tmp",
    "/./../x",
]


@pytest.mark.parametrize("tag", DESTINATIONS)
@pytest.mark.parametrize(("given", "normal"), NORMALISED)
def test_destination_is_normalised_when_the_op_is_built(tag: str, given: str, normal: str) -> None:
    build, field = DESTINATIONS[tag]
    op = build(given)
    assert getattr(op, field) == normal
    assert op == build(normal)
    assert op.to_wire()[field] == normal
    shown = str(op)
    assert f'"{normal}"' in shown, shown
    assert ".." not in shown and "//" not in shown, shown


@pytest.mark.parametrize("tag", DESTINATIONS)
@pytest.mark.parametrize("given", CLIMBING)
def test_destination_climbing_above_the_root_is_refused(tag: str, given: str) -> None:
    build, _ = DESTINATIONS[tag]
    with pytest.raises(OpError):
        build(given)


@pytest.mark.parametrize("tag", DESTINATIONS)
def test_decoded_destination_climbing_above_the_root_is_refused(tag: str) -> None:
    """A setup record made by other means gets the same answer as the builder."""
    build, field = DESTINATIONS[tag]
    wire = build("/x").to_wire()
    wire[field] = "/../host/tmp/x"
    with pytest.raises(OpError):
        REGISTRY[build("/x").TAG].from_wire(wire)


def test_builder_chain_normalises_and_refuses_too() -> None:
    ops = Ops().mkdir("/a/../b").tmpfs("/t/./u/").bind("/usr", "/x/../usr").place("/p/../q", b"")
    assert [str(op) for op in ops] == [
        str(Mkdir("/b")),
        str(Tmpfs("/t/u")),
        str(Bind("/usr", "/usr")),
        str(Place("/q", b"")),
    ]
    with pytest.raises(HakureiError):
        Ops().mkdir("/../host/tmp/x")


def test_link_contents_are_not_a_destination() -> None:
    """``--symlink ../../x /l``: the contents mean something to the program, kept verbatim."""
    for contents in ("../../x", "/a/../b", "..", "a//b/./"):
        assert Link("/l", contents).linkname == contents

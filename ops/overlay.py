"""Overlay op: an overlayfs made of host directories (reference §7.12).

Three shapes share one op, told apart by ``upper`` and ``work``:

* both set: a writable overlay whose changes land in the host ``upper``;
* ``upper == "/"`` and ``work is None``: *ephemeral*, the upper and work
  directories are made fresh in init's private intermediate root, so changes
  vanish with the container;
* both ``None``: read-only, which overlayfs only accepts with two or more
  lower layers.

The mount gets flags 0, not nosuid/nodev: that is what the reference does,
and overlayfs in a user namespace refuses nothing here that would need them.
"""

from __future__ import annotations

from ..errors import OpError, OpStateError, OverlayArgumentError
from ._mount import mount_on
from .base import ABS_LIST, ABS_OPT, DEST, SYSROOT, Op, State, q, register, to_host

#: what ``upper`` holds, with ``work`` unset, to ask for an ephemeral overlay
EPHEMERAL_UPPER = "/"


def escape_overlay(s: str) -> str:
    """Make ``s`` safe as one overlayfs option value (Go ``EscapeOverlayDataSegment``).

    overlayfs splits its options on ``,`` and the lowerdir list on ``:``, and
    reads ``\\`` as the escape character, so a path containing any of them
    would otherwise be cut into several (wrong) paths.  The kernel reads the
    option string only up to a NUL, so nothing after one could be meant.
    """
    s = s.partition("\0")[0]
    return s.replace("\\", "\\\\").replace(",", "\\,").replace(":", "\\:")


@register
class Overlay(Op):
    TAG = "overlay"
    PREFIX = "mounting"
    FIELDS = (
        ("target", DEST),
        ("lower", ABS_LIST),
        ("upper", ABS_OPT),
        ("work", ABS_OPT),
    )

    __slots__ = ("_ephemeral", "_lower", "_upper", "_work", "lower", "target", "upper", "work")

    def __init__(
        self, target: str, lower: list[str], upper: str | None = None, work: str | None = None
    ) -> None:
        self.target = target
        self.lower = lower
        self.upper = upper
        self.work = work
        self._init_derived()
        self.validate()

    def _init_derived(self) -> None:
        #: escaped host-view paths, filled by early
        self._lower: list[str] = []
        self._upper = ""
        self._work = ""
        self._ephemeral = False

    def check(self) -> None:
        # A work dir without an upper dir has no meaning to overlayfs; every
        # other combination is judged in early/apply, as the reference does.
        if self.work is not None and self.upper is None:
            raise OpError(f"{self.TAG}: work is set but upper is not")

    def early(self, st: State) -> None:
        self._init_derived()
        k = st.k
        if self.work is None and self.upper is not None:
            if self.upper != EPHEMERAL_UPPER:
                raise OverlayArgumentError(f"upperdir has unexpected value {q(self.upper)}")
            self._ephemeral = True
        if not self._ephemeral:
            if (self.upper is None) != (self.work is None):
                raise OpStateError("overlay")
            if self.upper is not None:
                self._upper = escape_overlay(to_host(k.realpath(self.upper)))
            if self.work is not None:
                self._work = escape_overlay(to_host(k.realpath(self.work)))
        self._lower = [escape_overlay(to_host(k.realpath(p))) for p in self.lower]

    def apply(self, st: State) -> None:
        k = st.k
        upper, work = self._upper, self._work
        if self._ephemeral:
            # Made here, in init's own tmpfs, never seen by the host: no
            # resolving or escaping needed, and the names are ours.
            upper = st.tmpname("overlay.upper.")
            k.mkdir(upper, 0o700)
            work = st.tmpname("overlay.work.")
            k.mkdir(work, 0o700)

        options: list[str] = []
        if not upper and not work:
            if len(self.lower) < 2:
                raise OverlayArgumentError("readonly overlay requires at least two lowerdir")
        else:
            if not self.lower:
                raise OverlayArgumentError("overlay requires at least one lowerdir")
            options += (f"upperdir={upper}", f"workdir={work}")
        # userxattr: the only way an unprivileged overlay may store whiteouts
        options += ("lowerdir=" + ":".join(self._lower), "userxattr")
        fd = k.mkdir_in(SYSROOT, self.target, st.parent_perm, st.parent_perm)
        try:
            mount_on(st, fd, self.target, "overlay", "overlay", 0, ",".join(options))
        finally:
            k.close(fd)

    def __str__(self) -> str:
        return f"overlay on {q(self.target)} with {len(self.lower)} layers"

"""Wayland: the app's own compositor socket, in the safest mode the compositor allows.

Three modes (reference launcher.md §2.2; issue 8), chosen in ``check``:

* **security-context** (the default where the compositor offers
  ``wp_security_context_manager_v1``): a listening socket of the instance's
  own, handed to the compositor through the protocol with the app id and
  instance id; the compositor hides privileged globals from its clients and
  stops listening when the launcher exits (``wlsecurity.py``).
* **filtering proxy** (the default everywhere else, which on Debian 12 is
  everywhere): the app's socket is served by ``python -m hakurei.app.wlproxy``
  in a container of ours (``helper.py``), which connects each client to the
  compositor and hides every global not on its allowlist (``wlproxy/allow.py``
  says why each is or is not; the config's ``wayland.allow`` adds names).
* **direct** (only with ``direct_wayland: true``): the compositor's own
  socket, so the app is an ordinary client and gets every global it offers:
  on wlroots compositors ``zwlr_screencopy_manager_v1`` (read what other
  windows show), ``zwlr_data_control_manager_v1`` (the clipboard without
  focus), virtual keyboard/pointer (type into other windows).  Hence a loud
  warning at every launch.

The compositor socket is found exactly as libwayland's
``wl_display_connect(NULL)`` finds it: ``WAYLAND_DISPLAY`` unset means
``wayland-0``; an absolute value is the path itself; anything else is taken
relative to ``XDG_RUNTIME_DIR``, which must then be set and absolute.
(``WAYLAND_SOCKET``, an inherited fd, is not something a launcher can hand
on; it is ignored.)  Inside, the app finds its socket as ``wayland-0`` in its
own runtime directory.

Host actions: direct has none.  security-context makes the socket
``<instance>/wayland`` (a ``remove`` record first) and keeps the close pipe's
write end open in a nursery task; the kernel closes it when the launcher
exits by any path, so the compositor-side listener never outlives it.  The
proxy makes the same socket (listening, in the launcher, so the app can
connect as soon as it starts) and a ``kill`` record for the proxy's
container before it runs; the container dies with the launcher too.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Mapping

import trio

from ..errors import describe, safe_line, show
from ..ops import Ops
from .enable import EnableError, Grant, Session

#: The name the app sees, relative to its own XDG_RUNTIME_DIR.
INSIDE_NAME = "wayland-0"

#: One line on stderr at every direct launch: what the app can do with the socket.
WARNING = (
    "hakurei: warning: direct Wayland: {app} is an ordinary client of your compositor "
    "and can use every protocol it offers: read other windows' contents (screencopy) "
    "and the clipboard, and inject input (virtual keyboard/pointer) where offered\n"
)

#: The listening socket a security context gets, in the instance directory.
SECURE_NAME = "wayland"


def socket_path(host_env: Mapping[str, str]) -> str:
    """The compositor socket a Wayland client started with ``host_env`` connects to.

    ``EnableError`` when libwayland would fail before connecting (a relative
    name with no usable ``XDG_RUNTIME_DIR``).
    """
    name = host_env.get("WAYLAND_DISPLAY")
    if name is None:
        name = "wayland-0"
    if name.startswith("/"):
        return name
    runtime = host_env.get("XDG_RUNTIME_DIR")
    if not runtime or not runtime.startswith("/"):
        what = "not set" if not runtime else f"not absolute ({show(runtime)})"
        raise EnableError(
            f"wayland: XDG_RUNTIME_DIR is {what}, so the compositor socket "
            f"{show(name)} cannot be found"
        )
    return f"{runtime.rstrip('/')}/{name}"


def check_socket(path: str) -> None:
    """``EnableError`` unless ``path`` is (through symlinks) a unix socket."""
    try:
        st = os.stat(path)
    except OSError as e:
        reason = "does not exist" if isinstance(e, FileNotFoundError) else os.strerror(e.errno or 0)
        raise EnableError(
            f"wayland: compositor socket {show(path)}: {reason} (is a Wayland compositor "
            "running, and WAYLAND_DISPLAY right?)"
        ) from None
    if not stat.S_ISSOCK(st.st_mode):
        raise EnableError(f"wayland: {show(path)} is not a socket")


#: Where the proxy's container has the compositor socket.
PROXY_UPSTREAM = "/run/wayland-upstream"
#: The proxy's entry: the directories holding hakurei come first in argv, up to ``--``.
_PROXY_CODE = (
    "import sys;i=sys.argv.index('--');sys.path[0:0]=sys.argv[1:i];"
    "from hakurei.app.wlproxy.__main__ import main;main(sys.argv[i+1:])"
)


def proxy_command() -> tuple[str, str, list[str]]:
    """The proxy's interpreter (resolved, so a venv's link is not needed), code and path."""
    import sys

    import hakurei

    python = os.path.realpath(sys.executable)
    package = os.path.dirname(os.path.dirname(os.path.abspath(hakurei.__file__)))
    return python, _PROXY_CODE, [package]


def proxy_ops(upstream: str, python: str, dirs: list[str]) -> Ops:
    """The proxy's filesystem: its interpreter, stdlib and hakurei, and the compositor socket."""
    import sys

    from ..std import MS_RDONLY
    from .helper import base_ops

    ops = base_ops(programs=(python,), dirs=(sys.base_prefix, *dirs))
    ops.bind(upstream, PROXY_UPSTREAM)
    return ops.remount("/", MS_RDONLY)


def say(line: str) -> None:
    try:
        os.write(2, f"hakurei: {safe_line(line)}\n".encode(errors="replace"))
    except OSError:
        pass


class Wayland:
    """The app's Wayland socket at ``<runtime>/wayland-0``, in the mode ``check`` chose."""

    name = "wayland"

    def __init__(self) -> None:
        #: "security-context" or "direct", once checked
        self.mode = ""

    def check(self, session: Session) -> None:
        path = socket_path(session.host_env)
        check_socket(path)
        if session.config.direct_wayland:
            self.mode = "direct"
            return
        from . import wlsecurity
        from .wlclient import WaylandError

        try:
            secure = wlsecurity.offered(path)
        except WaylandError as e:
            raise EnableError(f"wayland: {e}") from None
        self.mode = "security-context" if secure else "proxy"

    async def prepare(self, session: Session) -> Grant:
        if not self.mode:
            self.check(session)
        path = socket_path(session.host_env)
        if self.mode == "direct":
            check_socket(path)  # again: it may have gone since
            return self.direct(session, path)
        if self.mode == "proxy":
            return await self.proxied(session, path)
        return await self.secure(session, path)

    def direct(self, session: Session, path: str) -> Grant:
        app = show(session.config.id) if session.config.id else "the app"
        try:
            os.write(2, WARNING.format(app=app).encode(errors="replace"))
        except OSError:
            pass  # no stderr: the note below still records it
        note = f"wayland: direct, the compositor socket {show(path)} (direct_wayland is set)"
        return self.grant(path, session, note)

    async def secure(self, session: Session, path: str) -> Grant:
        from . import wlsecurity
        from .wlclient import WaylandError

        mine = os.path.join(session.instance_dir, SECURE_NAME)
        session.journal.record("remove", path=SECURE_NAME)
        app_id = session.config.id or f"app.hakurei.{session.instance_id[:8]}"
        try:
            close_w = await trio.to_thread.run_sync(
                wlsecurity.create_listener, path, mine, app_id, session.instance_id
            )
        except WaylandError as e:
            raise EnableError(f"wayland: security context: {e}") from None

        async def hold() -> None:
            """The close pipe's write end, open exactly while the app may connect."""
            try:
                await trio.sleep_forever()
            finally:
                os.close(close_w)

        if session.nursery is None:
            os.close(close_w)
            raise EnableError("wayland: security context needs the launcher's nursery")
        session.nursery.start_soon(hold)
        note = (
            f"wayland: security-context, app id {show(app_id)}, through {show(path)} "
            "(the compositor offers wp_security_context_v1)"
        )
        return self.grant(mine, session, note)

    async def proxied(self, session: Session, path: str) -> Grant:
        if session.nursery is None:
            raise EnableError("wayland: the proxy needs the launcher's nursery")
        mine = os.path.join(session.instance_dir, SECURE_NAME)
        session.journal.record("remove", path=SECURE_NAME)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            listener.bind(mine)
            listener.listen(64)
            await session.nursery.start(self._proxy, session, path, listener.fileno())
        except OSError as e:
            raise EnableError(f"wayland: cannot listen at {show(mine)}: {describe(e)}") from None
        finally:
            listener.close()  # the proxy has its own copy
        allowed = ", ".join(session.config.wayland_allow)
        extra = f", also allowing {allowed}" if allowed else ""
        note = (
            f"wayland: filtering proxy to {show(path)}{extra} "
            "(the compositor offers no wp_security_context_v1)"
        )
        return self.grant(mine, session, note)

    async def _proxy(
        self,
        session: Session,
        upstream: str,
        listen_fd: int,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run the proxy in its container until cancelled (the app has ended)."""
        from ..container import Container
        from ..errors import HakureiError, StartError
        from ..std import EVERYDAY
        from .journal import starttime

        args = ["--listen-fd", "3", "--upstream", PROXY_UPSTREAM]
        for name in session.config.wayland_allow:
            args += ["--allow", name]
        python, code, dirs = proxy_command()
        container = Container(
            python,
            [python, "-I", "-S", "-c", code, *dirs, "--", *args],
            extra_files=[listen_fd],
            stderr=2,
            ops=proxy_ops(upstream, python, dirs),
            env={},
            uid=session.uid,
            gid=session.gid,
            hostname="hakurei-wayland",
            seccomp_presets=EVERYDAY,
            wait_delay=2.0,
            process_group=True,
        )
        try:
            async with container:
                assert container.pid is not None
                start = starttime(container.pid)
                if start is not None:
                    session.journal.record("kill", pid=container.pid, starttime=start)
                try:
                    await container.serve()
                except StartError as e:
                    raise EnableError(f"wayland: cannot start the proxy: {e}") from None
                task_status.started()
                try:
                    status = await container.wait()
                except HakureiError as e:
                    say(f"wayland: the proxy: {e}")
                    return
                if status != 0:
                    say(f"wayland: the proxy exited with status {status}")
        except StartError as e:
            raise EnableError(f"wayland: cannot start the proxy: {e}") from None

    @staticmethod
    def grant(source: str, session: Session, note: str) -> Grant:
        return Grant(
            ops=list(Ops().bind(source, f"{session.runtime}/{INSIDE_NAME}")),
            env={"WAYLAND_DISPLAY": INSIDE_NAME, "XDG_SESSION_TYPE": "wayland"},
            notes=[note],
        )

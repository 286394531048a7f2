"""The launcher: one trio process that starts the app, grants it host services, and undoes them.

``launch(Launch(config, ...))`` is ``hakurei app`` and ``hakurei run``.  It
runs, in this order (docs/launcher.md, "Process model", says why):

1. ``Store.gc()``: dead instances (a launcher SIGKILLed earlier) are reverted
   before anything new is made;
2. each enabled enablement is loaded and ``check``ed: a refusal is one line
   and exit 125 with nothing on the host touched;
3. ``Store().create()``: the instance dir, its lock held for this process's
   whole life (liveness), and the undo journal;
4. the container is started with the plan (``plan.py``); its init blocks
   reading its setup record, so nothing runs yet;
5. a ``kill`` record for it (pid + start time) goes into the journal before
   anything else, so a later ``gc`` can always end it;
6. the instance entry (``ps``/``show``/``kill`` read it);
7. each enablement's ``prepare`` (every host action journaled first), then
   the entry again with their notes;
8. ``Container.amend``: the grants' ops, then the read-only remounts, and
   the grants' environment;
9. ``serve``: init builds the container and starts the app; the instance id
   goes to ``--identifier-fd``;
10. wait; SIGINT, SIGTERM and SIGHUP cancel the wait, which sends the app
    SIGINT, and SIGKILL after ``wait_delay`` (``Container``'s own cancel);
11. the helpers (D-Bus proxy) are cancelled, the journal is replayed
    (``Instance.revert``, the same code ``gc`` runs), each failed undo step
    one line on stderr;
12. the exit status is the app's (128+n for a signal); 125 for a bad config
    or a failed setup; 128+n for a signal that came before the app ran.

Silent on success; ``verbose`` prints each step.  For the crash tests,
``HAKUREI_MONITOR_KILL_AT=N`` makes the launcher SIGKILL itself at its N-th
step (``Steps``): a step counter, not a timer, so every point is reachable.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from ..container import _unwrapped
from ..errors import HakureiError, StartError, safe_line
from . import enablements as _enablements
from .enable import EnableError, Enablement, Grant, Session
from .journal import Journal, starttime
from .plan import Plan, plan
from .records import Config
from .store import Instance, Store, StoreError

#: Order of the host work, as hakurei's: wayland, x11, pulse, dbus.
ORDER = ("wayland", "x11", "pulse", "dbus")
#: Signals forwarded to the app (as its cancel: SIGINT, then SIGKILL after wait_delay).
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
KILL_AT_ENV = "HAKUREI_MONITOR_KILL_AT"


class LaunchError(HakureiError):
    """The launch cannot go on: one line, exit 125 (after reverting what was done)."""


class SetupFailed(LaunchError):
    """The container's init refused its setup; it printed why on the app's stderr already."""


@dataclass
class Launch:
    """One ``hakurei app``/``run``: the checked config and how to run it."""

    config: Config
    #: appended to ``container.argv`` (``hakurei app CONFIG ARGS``)
    extra_args: Sequence[str] = ()
    verbose: bool = False
    #: write ``<id>\\n`` here once the app runs, then close it
    identifier_fd: int | None = None
    #: the launcher's environment (None: ``os.environ``)
    host_env: Mapping[str, str] | None = None
    #: where the state store lives (None: ``store.default_path``)
    store_path: str | None = None
    #: stdin, stdout, stderr of the app
    stdio: tuple[int, int, int] = (0, 1, 2)
    #: ``-v`` lines and failed undo steps go here
    say: Callable[[str], None] = field(default=lambda line: _say(line))


def _say(line: str) -> None:
    try:
        os.write(2, f"hakurei: {safe_line(line)}\n".encode(errors="replace"))
    except OSError:
        pass


class Steps:
    """Names each step for ``-v``, and dies at step N when the crash tests ask."""

    def __init__(self, log: Callable[[str], None], kill_at: int) -> None:
        self.log = log
        self.kill_at = kill_at
        self.count = 0

    def __call__(self, what: str) -> None:
        self.count += 1
        if self.count == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        self.log(what)


def _kill_at(env: Mapping[str, str]) -> int:
    text = env.get(KILL_AT_ENV, "")
    return int(text) if text.isdigit() else 0


def load_enablements(config: Config) -> list[Enablement]:
    """The enabled enablements, in ``ORDER``; one that is not built is an ``EnableError``."""
    out = []
    for name in ORDER:
        if not getattr(config.enablements, name):
            continue
        module = f"{_enablements.__package__}.{_enablements.ENABLEMENTS[name][0]}"
        try:
            out.append(_enablements.load(name))
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            raise EnableError(f"{name}: not available in this build") from None
    return out


def check_identifier_fd(fd: int | None) -> None:
    """A bad ``--identifier-fd`` is refused before anything is done."""
    if fd is None:
        return
    try:
        if fd < 3:
            raise OSError
        os.fstat(fd)
    except OSError:
        raise LaunchError("cannot write identifier: bad file descriptor") from None
    os.set_inheritable(fd, False)  # never the app's


def write_identifier(fd: int, id: str) -> None:
    """``<id>\\n`` to ``fd``, then close it; a reader that went away is not the app's problem."""
    try:
        data = f"{id}\n".encode()
        while data:
            data = data[os.write(fd, data) :]
    except OSError:
        pass
    finally:
        os.close(fd)


def _entry(
    launch: Launch,
    p: Plan,
    names: list[str],
    notes: list[str],
    app: tuple[int, int],
    launcher_start: int,
) -> dict[str, Any]:
    return {
        "config": launch.config.to_json(),
        "argv": list(p.args),
        "enablements": names,
        "notes": notes,
        "app": {"pid": app[0], "starttime": app[1]},
        "launcher": {"pid": os.getpid(), "starttime": launcher_start},
    }


def launch(launch: Launch) -> int:
    """Run the app to its end and undo every host change; its exit status (see the module)."""
    return trio.run(_main, launch)


class Stop(list[int]):
    """The first signal that stopped the launch (empty: none), as the watcher saw it.

    ``app_has_terminal``: the app runs and shares the terminal (``tty``), in
    its foreground group as the launcher is, so a Ctrl-C reached it directly:
    the launcher does not stop it for that (a SIGTERM or SIGHUP still does).
    """

    app_has_terminal = False


async def _main(launch: Launch) -> int:
    try:
        return await _watched(launch)
    except BaseExceptionGroup as group:  # the nurseries' wrapping, not ours to show
        raise _unwrapped(group) from None


async def _watched(launch: Launch) -> int:
    env = dict(os.environ if launch.host_env is None else launch.host_env)
    log = launch.say if launch.verbose else (lambda line: None)
    step = Steps(log, _kill_at(os.environ))
    got = Stop()
    with trio.open_signal_receiver(*FORWARDED) as signals:
        async with trio.open_nursery() as watcher:
            life = trio.CancelScope()

            async def watch() -> None:
                async for signum in signals:
                    if signum == signal.SIGINT and got.app_has_terminal:
                        # In the terminal's foreground group the app got this
                        # Ctrl-C itself, and is the one to decide what it means.
                        log("got SIGINT: the app has the terminal and got it too")
                        continue
                    if not got:
                        got.append(signum)
                        log(f"got {signal.Signals(signum).name}: stopping the app")
                    life.cancel()

            watcher.start_soon(watch)
            try:
                return await _launch(launch, env, log, step, life, got)
            finally:
                watcher.cancel_scope.cancel()
    raise AssertionError("unreachable")  # pragma: no cover


async def _launch(
    launch: Launch,
    env: dict[str, str],
    log: Callable[[str], None],
    step: Steps,
    life: trio.CancelScope,
    got: Stop,
) -> int:
    config = launch.config
    check_identifier_fd(launch.identifier_fd)
    try:
        store = Store(launch.store_path)
    except StoreError as e:
        raise LaunchError(str(e)) from None
    with store:
        step("collecting dead instances")
        # A dead instance may have been made with any enablement, whatever this config asks:
        # its journal's kinds must be known before replay, as for ``hakurei gc``.
        _enablements.register_all_kinds()
        for line in store.gc():
            launch.say(f"gc: {line}")
        step("checking enablements")
        chosen = load_enablements(config)
        names = [enablement.name for enablement in chosen]
        uid, gid = os.getuid(), os.getgid()
        p = plan(config, env, uid, gid, extra_args=launch.extra_args, hide=(store.path,))
        session_probe = Session(
            config=config,
            host_env=env,
            instance_id="",
            instance_dir="",
            instance_dir_fd=-1,
            runtime=p.runtime,
            uid=uid,
            gid=gid,
            journal=Journal(-1),  # check() changes nothing: a record would fail (EBADF)
            log=log,
        )
        for enablement in chosen:
            enablement.check(session_probe)
        launcher_start = starttime(os.getpid()) or 0
        if got:  # stopped before anything was made
            return 128 + got[0]
        step("creating the instance")
        try:
            instance = store.create()
        except (StoreError, OSError) as e:
            raise LaunchError(f"cannot create the instance: {e}") from None
        status: int | None = None
        failure: BaseException | None = None
        try:
            status = await _run_instance(
                launch, p, chosen, names, instance, env, log, step, life, got, launcher_start
            )
        except BaseExceptionGroup as group:
            failure = _unwrapped(group)
        except (HakureiError, OSError) as e:
            failure = e
        finally:
            step("reverting")
            for line in instance.revert():
                launch.say(f"cannot revert: {line}")
        if failure is not None:
            raise failure
        assert status is not None
        return status


async def _run_instance(
    launch: Launch,
    p: Plan,
    chosen: list[Enablement],
    names: list[str],
    instance: Instance,
    env: dict[str, str],
    log: Callable[[str], None],
    step: Steps,
    life: trio.CancelScope,
    got: Stop,
    launcher_start: int,
) -> int:
    """Steps 4 to 10 of the module docstring, for one instance that is created and locked."""
    from ..container import Container

    step(f"instance {instance.id}")
    container = Container(
        stdin=launch.stdio[0],
        stdout=launch.stdio[1],
        stderr=launch.stdio[2],
        fork_server=False,  # one container: the shim is our child, its pid in the journal
        # The shim in a process group of its own (unless the app keeps the
        # terminal): a terminal's Ctrl-C then reaches the launcher alone, and
        # the app gets its one SIGINT, not that and the shim's relay of it too.
        process_group=not p.retain_session,
        verbose=launch.verbose,
        **p.container_kwargs(),
    )
    ran = False
    with life:
        async with container:
            pid = container.pid
            assert pid is not None
            start = starttime(pid)
            if start is None:  # our unreaped child: its /proc entry stays until we reap
                raise LaunchError(f"cannot read the start time of process {pid}")
            instance.journal.record("kill", pid=pid, starttime=start)
            step("container started, waiting for its setup")
            app = (pid, start)
            instance.write_entry(_entry(launch, p, names, [], app, launcher_start))
            session = Session(
                config=launch.config,
                host_env=env,
                instance_id=instance.id,
                instance_dir=instance.path,
                instance_dir_fd=instance.dir_fd,
                runtime=p.runtime,
                uid=p.uid,
                gid=p.gid,
                journal=instance.journal,
                log=log,
            )
            async with trio.open_nursery() as helpers:
                session.nursery = helpers
                grants: list[Grant] = []
                for e in chosen:
                    step(f"preparing {e.name}")
                    grants.append(await e.prepare(session))
                notes = [n for g in grants for n in g.notes]
                for note in notes:
                    log(note)
                instance.write_entry(_entry(launch, p, names, notes, app, launcher_start))
                ops = [op for g in grants for op in g.ops] + list(p.tail)
                grant_env: dict[str, str] = {}
                for g in grants:
                    grant_env.update(g.env)
                step("amending the container")
                container.amend(ops=ops, env=grant_env)
                step("serving the setup")
                ran = True  # from here the container's own status says how it ended
                try:
                    await container.serve()
                except StartError as e:
                    raise SetupFailed(str(e)) from None
                if launch.identifier_fd is not None:
                    write_identifier(launch.identifier_fd, instance.id)
                    launch.identifier_fd = None
                step("app running")
                got.app_has_terminal = p.retain_session  # tty: a shared foreground group
                await container.wait()
                helpers.cancel_scope.cancel()
    if launch.identifier_fd is not None:
        os.close(launch.identifier_fd)  # the app never ran: the reader sees EOF, no id
        launch.identifier_fd = None
    status = container.returncode
    if not ran or status is None or (got and not container.program_started):
        # Stopped before the app ran (before the setup was sent, or while it was
        # being sent or built): a shell's status for the signal, not the
        # container's 128+SIGUSR2 for a cancelled setup.
        return 128 + (got[0] if got else signal.SIGKILL)
    step(f"app exited with status {status}")
    return status


__all__ = ["Launch", "LaunchError", "SetupFailed", "Steps", "launch", "load_enablements"]
